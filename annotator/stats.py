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


def pass_at_k(n: int, c: float, k: int) -> float:
    """Unbiased pass@k of one item with ``c`` correct out of ``n`` samples (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    c = int(round(c))
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini–Hochberg q-values (step-up, monotone), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        q[i] = min(1.0, running)
    return q


def bootstrap_mean_ci(values: Any, seed: int = 0, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (numpy array of per-item values).

    Resamples are drawn in blocks of about two million indices, so memory stays flat however many
    values there are (the draws are the same as in one block).
    """
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (0.0, 1.0)
    if arr.size == 1 or np.all(arr == arr[0]):
        return (float(arr[0]), float(arr[0]))
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // arr.size)
    means = np.concatenate([arr[rng.integers(0, arr.size, size=(min(block, resamples - start), arr.size))].mean(axis=1)
                            for start in range(0, resamples, block)])
    tail = (1 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))
