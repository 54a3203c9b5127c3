"""Slice diagnosis: eval results joined with reviewed labels, weak slices, data / non-data verdicts.

``results`` reads per-sample results (lm-eval sample logs, tables), ``responses`` reads what the
model wrote (failure states: runaway, truncated, no answer), ``slices`` measures every slice,
``verdict`` turns weak slices into findings with verdicts, ``ledger`` measures whether a sampling
plan helped the slices it targeted, ``report`` (``annotator slices report``) writes JSON, Markdown
and a self-contained HTML page (``html``).

May import from ``annotator.review`` (the gate), ``annotator.labeling``, ``annotator.llm`` and
the shared modules.
"""
