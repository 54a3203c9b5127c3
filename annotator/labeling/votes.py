"""From answers to an annotation.

One answer (confidences clipped into 0..1 and flagged), or several sampled answers
(``--votes K``) combined into one label set per item.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from annotator.records import Annotation, Item
from annotator.taxonomy import Dimension


def assemble(item: Item, answers: list[dict[str, Any] | None], *, dims: list[Dimension], error: str | None,
             cached: bool, flags: list[str] | None = None, subset: str = "",
             evidence: dict[str, list[str]] | None = None, **meta: str) -> Annotation:
    """The annotation of one item from its answers (one per vote; None where a vote failed).

    Args:
        item: the item.
        answers: one validated answer per vote, None where none came.
        dims: the kind's dimensions.
        error: why an answer is missing.
        cached: every answer came from the cache.
        flags: what was flagged while answering (an answer the record contradicted, re-asked).
        subset: the record's subset.
        evidence: dimension -> the labels the record admits.
        **meta: ``kind``, ``labeler``, ``taxonomy_version``, ``prompt_version``.
    """
    base = {"id": item.id, "source": item.source, "subset": subset, "evidence": evidence or {},
            "text": item.text, "fields": item.fields, **meta}
    asked = list(flags or [])
    if any(v is None for v in answers):
        return Annotation(**base, status="failed", error=error or "no answer", flags=asked)
    votes: list[dict[str, Any]] = [v for v in answers if v is not None]
    if len(votes) == 1:
        answer = votes[0]
        conf, repaired = clipped({d.id: answer[f"{d.id}_confidence"] for d in dims
                                  if f"{d.id}_confidence" in answer})
        return Annotation(**base, status="ok", labels={d.id: answer[d.id] for d in dims}, confidence=conf,
                          rationale=answer.get("rationale", ""), cached=cached, flags=asked + repaired)
    labels, conf, dist = combine_votes(votes, dims)
    return Annotation(**base, status="ok", labels=labels, confidence=conf, votes=dist,
                      rationale=votes[0].get("rationale", ""), cached=cached, flags=asked)


def clipped(confidence: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Confidences clipped into 0..1, and a flag for each one that was outside."""
    flags = [f"{dim}_confidence {value:g} clipped" for dim, value in confidence.items() if not 0.0 <= value <= 1.0]
    return {dim: min(1.0, max(0.0, value)) for dim, value in confidence.items()}, flags


def combine_votes(votes: list[dict[str, Any]], dims: list[Dimension]) -> tuple[dict, dict, dict]:
    """Majority label per dimension; confidence = vote share; the distribution is kept.

    Single-label: the most frequent label (ties go to the label voted first). Multi-label: the
    labels named by more than half the votes, ordered by mean position (at least ``min`` labels,
    topped up by frequency); confidence = share of votes that agree with it as a whole: the same
    label set (compared as sets) with the same primary (first) label, so ``[arithmetic,
    algebraic_manipulation]`` against ``[arithmetic]``, or a reversed primary, is a disagreement.
    """
    labels: dict[str, Any] = {}
    conf: dict[str, float] = {}
    dist: dict[str, dict[str, int]] = {}
    n = len(votes)
    for dim in dims:
        if not dim.multi:
            counts = Counter(v[dim.id] for v in votes)
            order = {lab: i for i, lab in reversed(list(enumerate(v[dim.id] for v in votes)))}
            best = max(counts, key=lambda lab: (counts[lab], -order[lab]))
            labels[dim.id], conf[dim.id] = best, counts[best] / n
            dist[dim.id] = dict(counts)
            continue
        counts = Counter(lab for v in votes for lab in v[dim.id])
        positions: dict[str, list[int]] = {}
        for v in votes:
            for pos, lab in enumerate(v[dim.id]):
                positions.setdefault(lab, []).append(pos)
        mean_pos = {lab: sum(p) / len(p) for lab, p in positions.items()}
        chosen = [lab for lab in counts if counts[lab] > n / 2]
        lo = dim.min if dim.min is not None else 1
        for lab, _ in counts.most_common():
            if len(chosen) >= lo:
                break
            if lab not in chosen:
                chosen.append(lab)
        chosen.sort(key=lambda lab: (mean_pos[lab], -counts[lab]))
        chosen = chosen[: dim.max] if dim.max else chosen
        labels[dim.id] = chosen
        conf[dim.id] = sum(1 for v in votes if set(v[dim.id]) == set(chosen)
                           and (not chosen or (v[dim.id] or [None])[0] == chosen[0])) / n
        dist[dim.id] = dict(counts)
    return labels, conf, dist

