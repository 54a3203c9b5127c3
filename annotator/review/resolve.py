"""Reviewers' answers -> one review status and the labels that go on (no Argilla import).

The resolution rules (also in the README, section "Human review in Argilla"):

* Only ``submitted`` and ``discarded`` answers count; drafts are ignored.
* No counted answer: ``pending``. Only discards: ``discarded``.
* Some reviewers submitted and others discarded: ``conflict`` (the record is disputed; a label
  is trusted only when nobody who read it wanted it thrown away).
* A submitted answer that breaks the taxonomy (more or fewer labels than a dimension allows,
  or a primary operation that is not among the selected ones) makes the record ``invalid``;
  ``flags`` says whose answer and why. The reviewer fixes the answer in Argilla and the next
  pull picks it up.
* Otherwise each dimension is decided by majority over the submitted answers; a tie on any
  dimension is a ``conflict``. The record is ``confirmed`` when every decided label equals the
  LLM's suggestion, else ``corrected``.

Multi-label answers are compared as sets, never in stored order: Argilla's UI stores a
multi-label answer in the question's label order, not in click order. The order of an
``ordered_list`` dimension comes from the optional ``<dimension>_primary`` question (preselected
with the LLM's first label) and otherwise from the suggestion: labels the LLM also proposed
keep its order, new ones follow in taxonomy order. So an untouched submit is ``confirmed``.
A primary answer outside the selected labels is ignored when it is the untouched preselection
(the reviewer removed that label), and flagged otherwise.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from annotator.records import ReviewStatus
from annotator.taxonomy import Dimension


class Resolution(BaseModel):
    """The outcome of one record's review.

    Attributes:
        status: the review status (see the module docstring for the rules).
        labels: dimension -> the human label(s) for passing records, else the LLM's suggestion.
        answers: reviewer -> dimension -> canonical submitted value (for agreement figures).
        flags: why a record is ``conflict`` or ``invalid``, one line each.
    """

    status: ReviewStatus
    labels: dict[str, Any]
    answers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)


def primary_question(dim: Dimension) -> str | None:
    """Name of the optional "which comes first" question of an ordered dimension, else None."""
    return f"{dim.id}_primary" if dim.cardinality == "ordered_list" else None


def canonical(dim: Dimension, value: Any, llm: Any, primary: str | None = None) -> tuple[Any, list[str]]:
    """One answer of one dimension in canonical form, plus the taxonomy rules it breaks."""
    if not dim.multi:
        return value, []
    labels = list(dict.fromkeys(value or []))
    problems = []
    low = dim.min if dim.min is not None else 1
    if dim.max is not None and len(labels) > dim.max:
        problems.append(f"{dim.id} has {len(labels)} labels; the taxonomy allows at most {dim.max}")
    if len(labels) < low:
        problems.append(f"{dim.id} has {len(labels)} labels; the taxonomy needs at least {low}")
    suggested = list(llm or [])
    rank = {label: i for i, label in enumerate(suggested)}
    declared = {label: i for i, label in enumerate(dim.label_ids)}
    labels.sort(key=lambda x: (0, rank[x]) if x in rank else (1, declared.get(x, len(declared))))
    if primary and dim.cardinality == "ordered_list":
        if primary in labels:
            labels.remove(primary)
            labels.insert(0, primary)
        elif not (suggested and primary == suggested[0]):
            problems.append(f"{dim.id}_primary {primary!r} is not among the selected {dim.id} labels")
    return labels, problems


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def resolve(answers: dict[str, dict[str, Any]], llm: dict[str, Any], dims: list[Dimension]) -> Resolution:
    """Resolve one record: ``answers`` maps reviewer -> ``{"status": ..., <question>: value}``."""
    submitted = {who: a for who, a in answers.items() if a.get("status") == "submitted"}
    discarded = sorted(who for who, a in answers.items() if a.get("status") == "discarded")
    canon: dict[str, dict[str, Any]] = {}
    flags: list[str] = []
    for who, answer in sorted(submitted.items()):
        canon[who] = {}
        for dim in dims:
            if answer.get(dim.id) is None:
                continue
            primary_name = primary_question(dim)
            value, problems = canonical(dim, answer[dim.id], llm.get(dim.id),
                                        answer.get(primary_name) if primary_name else None)
            canon[who][dim.id] = value
            flags += [f"{who}: {p}" for p in problems]
    if not submitted:
        return Resolution(status="discarded" if discarded else "pending", labels=dict(llm))
    if discarded:
        flags.insert(0, f"disputed: submitted by {', '.join(sorted(submitted))}; discarded by {', '.join(discarded)}")
        return Resolution(status="conflict", labels=dict(llm), answers=canon, flags=flags)
    if flags:
        return Resolution(status="invalid", labels=dict(llm), answers=canon, flags=flags)
    decided: dict[str, Any] = {}
    for dim in dims:
        counts = Counter(_key(a[dim.id]) for a in canon.values() if dim.id in a)
        if not counts:
            decided[dim.id] = llm.get(dim.id)
            continue
        ranked = counts.most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            top = ranked[0][1]
            tied = " vs ".join(f"{list(v) if isinstance(v, tuple) else v} ({n})" for v, n in ranked if n == top)
            flags.append(f"{dim.id}: tie between {tied}")
        best = ranked[0][0]
        decided[dim.id] = list(best) if isinstance(best, tuple) else best
    if flags:
        return Resolution(status="conflict", labels=dict(llm), answers=canon, flags=flags)
    same = all(_key(decided[d.id]) == _key(llm.get(d.id)) for d in dims)
    return Resolution(status="confirmed" if same else "corrected", labels=decided, answers=canon)
