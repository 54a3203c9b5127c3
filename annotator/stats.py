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


def _resampled_means(arr: Any, rng: Any, resamples: int) -> Any:
    """Means of ``resamples`` bootstrap resamples of ``arr``, in flat memory.

    Indices are drawn in blocks of about two million, so memory does not grow with the number of
    values; the draws are those of one block.
    """
    import numpy as np

    block = max(1, 2_000_000 // arr.size)
    return np.concatenate([arr[rng.integers(0, arr.size, size=(min(block, resamples - start), arr.size))].mean(axis=1)
                           for start in range(0, resamples, block)])


def bootstrap_mean_ci(values: Any, seed: int = 0, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (numpy array of per-item values), in flat memory."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (0.0, 1.0)
    if arr.size == 1 or np.all(arr == arr[0]):
        return (float(arr[0]), float(arr[0]))
    means = _resampled_means(arr, np.random.default_rng(seed), resamples)
    tail = (1 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def bootstrap_difference_ci(a: Any, b: Any, seed: int = 0, resamples: int = 1000,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` for two independent samples, in flat memory."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diffs = _resampled_means(x, rng, resamples) - _resampled_means(y, rng, resamples)
    tail = (1 - level) / 2
    return (float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail)))


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Share ``n`` places among strata: one each while places last, the rest by size (largest remainder)."""
    total = sum(sizes.values())
    if total <= n:
        return dict(sizes)
    floor = dict.fromkeys(sizes, 1) if n >= len(sizes) else dict.fromkeys(sizes, 0)
    left = {k: v - floor[k] for k, v in sizes.items()}
    room, spare = n - sum(floor.values()), sum(left.values())
    exact = {k: room * v / spare if spare else 0.0 for k, v in left.items()}
    out = {k: floor[k] + min(left[k], int(x)) for k, x in exact.items()}
    for k in sorted(sizes, key=lambda k: (-(exact[k] - int(exact[k])), -sizes[k], k)):
        if sum(out.values()) >= n:
            break
        if out[k] < sizes[k]:
            out[k] += 1
    return out


class StratifiedReservoir:
    """A seeded sample of ``n`` items from a stream, spread over strata in proportion to their sizes.

    Each stratum keeps a uniform reservoir (Algorithm R) of up to ``n`` items while the stream goes
    by, so memory holds ``n`` items per stratum however long the stream; :meth:`draw` then shares
    the ``n`` places out by :func:`allocate` and takes that many from each reservoir. The same
    stream and seed draw the same sample.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        import random

        self.n = n
        self.rng = random.Random(seed)
        self.buckets: dict[str, list[Any]] = {}
        self.seen: dict[str, int] = {}  # items offered per stratum

    def add(self, stratum: str, item: Any) -> None:
        """Offer one item of ``stratum``."""
        count = self.seen.get(stratum, 0) + 1
        self.seen[stratum] = count
        bucket = self.buckets.setdefault(stratum, [])
        if len(bucket) < self.n:
            bucket.append(item)
        else:
            j = self.rng.randrange(count)
            if j < self.n:
                bucket[j] = item

    def draw(self) -> dict[str, list[Any]]:
        """Stratum -> its share of the sample (strata in sorted order)."""
        quota = allocate(self.seen, self.n)
        return {key: self.rng.sample(bucket, min(quota[key], len(bucket)))
                for key, bucket in sorted(self.buckets.items())}
