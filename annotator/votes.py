"""Combining several sampled answers (``--votes K``) into one label set per item."""

from __future__ import annotations

from collections import Counter
from typing import Any

from annotator.taxonomy import Dimension


def combine_votes(votes: list[dict[str, Any]], dims: list[Dimension]) -> tuple[dict, dict, dict]:
    """Majority label per dimension; confidence = vote share; the distribution is kept.

    Single-label: the most frequent label (ties go to the label voted first). Multi-label: the
    labels named by more than half the votes, ordered by mean position (at least ``min`` labels,
    topped up by frequency); confidence = share of votes naming the first label.
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
        conf[dim.id] = counts[chosen[0]] / n if chosen else (
            sum(1 for v in votes if not v[dim.id]) / n)
        dist[dim.id] = dict(counts)
    return labels, conf, dist

