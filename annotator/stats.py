"""Agreement and interval statistics shared by label quality, review and slice diagnosis.

Plain Python (no Argilla, no pandas): accuracy, macro-F1, Cohen's kappa, Jaccard, nominal
Krippendorff's alpha and the Wilson score interval.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any


def accuracy(ref: list[str], pred: list[str]) -> float:
    """Share of equal pairs."""
    return sum(r == p for r, p in zip(ref, pred, strict=True)) / len(ref) if ref else 0.0


def macro_f1(ref: list[str], pred: list[str]) -> float:
    """Unweighted mean F1 over every label seen in the reference or the predictions."""
    labels = sorted(set(ref) | set(pred))
    scores = []
    for lab in labels:
        tp = sum(r == lab and p == lab for r, p in zip(ref, pred, strict=True))
        fp = sum(r != lab and p == lab for r, p in zip(ref, pred, strict=True))
        fn = sum(r == lab and p != lab for r, p in zip(ref, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def cohen_kappa(ref: list[str], pred: list[str]) -> float:
    """(p_o - p_e) / (1 - p_e); 1.0 when both raters use one identical label throughout."""
    n = len(ref)
    if not n:
        return 0.0
    p_o = accuracy(ref, pred)
    cr, cp = Counter(ref), Counter(pred)
    p_e = sum(cr[lab] * cp[lab] for lab in cr) / (n * n)
    return 1.0 if p_e == 1 else (p_o - p_e) / (1 - p_e)


def jaccard(a: list[str], b: list[str]) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def krippendorff_alpha(units: list[list[Any]]) -> float | None:
    """Nominal Krippendorff's alpha over units with two or more values (None if there are none)."""
    units = [u for u in units if len(u) >= 2]
    if not units:
        return None
    coincidence: Counter = Counter()
    for values in units:
        m = len(values)
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidence[(a, b)] += 1 / (m - 1)
    totals: Counter = Counter()
    for (a, _), w in coincidence.items():
        totals[a] += w
    n = sum(totals.values())
    observed = sum(w for (a, b), w in coincidence.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b) / (n - 1)
    return 1.0 if expected == 0 else 1.0 - observed / expected


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
