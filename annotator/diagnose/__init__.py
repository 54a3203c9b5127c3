"""Closing the loop: slice diagnosis of eval results, data-vs-non-data verdicts, sampling plans.

``report`` (``annotator slices report``) joins reviewed eval labels with per-sample results
(``results``), measures every slice (``slices``), turns weak slices into findings with verdicts
(``verdict``) and writes JSON, Markdown and a self-contained HTML page (``html``); ``plan``
(``annotator map``) turns data findings into corpus categories and a sampling manifest;
``ledger`` measures whether a plan helped the slices it targeted.
"""
