"""Slices: every single label and every combination up to the full four-dimension slice.

An item belongs to a slice when it carries each of the slice's labels; a multi-label dimension
(solving operations) counts for each of its labels. Per slice: n, rate (mean per-item score),
a 95% interval (Wilson for 0/1 results, bootstrap otherwise) and two tests, each controlled by
Benjamini–Hochberg across all slices with at least ``min_n`` items:

* **below overall** — the slice against the items outside it (Fisher's exact test for 0/1
  results, Welch's t-test otherwise);
* **regressed** (with a baseline) — the same items before and after (exact McNemar test for
  0/1 results, paired t-test otherwise), with a paired bootstrap interval of the delta.

A slice is weak when either test is significant (q < alpha) in the bad direction; when both
are, it counts as ``regressed`` (the question a baseline asks), with the delta as its effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import stats as st

from annotator.stats import benjamini_hochberg, bootstrap_mean_ci, wilson


@dataclass
class Items:
    """The joined items, aligned: labels per item, scores now and (NaN if absent) at the baseline."""

    ids: list[str]
    labels: list[dict[str, list[str]]]
    score: np.ndarray
    baseline: np.ndarray | None
    binary: bool

    def __len__(self) -> int:
        return len(self.ids)


class SliceStat(BaseModel):
    """Figures of one slice."""

    slice: dict[str, str]
    n: int
    rate: float
    ci: tuple[float, float]
    rest_rate: float | None = None
    baseline_rate: float | None = None
    delta: float | None = None
    delta_ci: tuple[float, float] | None = None
    p_below: float | None = None
    q_below: float | None = None
    p_regressed: float | None = None
    q_regressed: float | None = None
    weak: bool = False
    kind: str | None = None
    effect: float = 0.0
    severity: float = 0.0

    @property
    def dims(self) -> int:
        """How many dimensions define the slice."""
        return len(self.slice)


def enumerate_slices(items: Items, dims: list[str], max_dims: int = 4) -> dict[tuple[tuple[str, str], ...], np.ndarray]:
    """Slice key (sorted ``(dimension, label)`` pairs, in dimension order) -> item indices."""
    members: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for i, labels in enumerate(items.labels):
        for size in range(1, min(max_dims, len(dims)) + 1):
            for subset in combinations(dims, size):
                choices = [labels.get(d) or [] for d in subset]
                for combo in product(*choices):
                    members.setdefault(tuple(zip(subset, combo, strict=True)), []).append(i)
    return {key: np.array(sorted(set(idx))) for key, idx in members.items()}


def below_test(items: Items, inside: np.ndarray) -> tuple[float, float]:
    """(p, rest rate): the slice against every item outside it."""
    mask = np.zeros(len(items), dtype=bool)
    mask[inside] = True
    a, b = items.score[mask], items.score[~mask]
    if len(b) == 0:
        return 1.0, float("nan")
    if items.binary:
        table = [[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]]
        return float(st.fisher_exact(table).pvalue), float(b.mean())
    if len(a) < 2 or len(b) < 2:
        return 1.0, float(b.mean())
    if a.std() == 0 and b.std() == 0:
        return (1.0 if a.mean() == b.mean() else 0.0), float(b.mean())
    return float(st.ttest_ind(a, b, equal_var=False).pvalue), float(b.mean())


def paired(items: Items, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores now and before for the items of ``inside`` present in both runs."""
    assert items.baseline is not None
    now, before = items.score[inside], items.baseline[inside]
    keep = ~np.isnan(before)
    return now[keep], before[keep]


def regression_test(items: Items, inside: np.ndarray) -> float:
    """P of the paired change of the slice's items (exact McNemar for 0/1 results)."""
    now, before = paired(items, inside)
    if len(now) == 0:
        return 1.0
    if items.binary:
        lost = int(((before == 1) & (now == 0)).sum())
        gained = int(((before == 0) & (now == 1)).sum())
        return 1.0 if lost + gained == 0 else float(st.binomtest(gained, lost + gained, 0.5).pvalue)
    diff = now - before
    if len(diff) < 2 or np.all(diff == diff[0]):
        return 1.0 if np.all(diff == 0) else 0.0
    return float(st.ttest_rel(now, before).pvalue)


def slice_stats(items: Items, members: dict[tuple[tuple[str, str], ...], np.ndarray], *, min_n: int = 10,
                alpha: float = 0.05, seed: int = 0) -> list[SliceStat]:
    """Figures and tests of every slice with at least ``min_n`` items (smaller ones are hidden)."""
    out: list[SliceStat] = []
    for key, inside in members.items():
        if len(inside) < min_n:
            continue
        scores = items.score[inside]
        rate = float(scores.mean())
        ci = wilson(int(scores.sum()), len(scores)) if items.binary else bootstrap_mean_ci(scores, seed)
        p_below, rest = below_test(items, inside)
        stat = SliceStat(slice=dict(key), n=len(inside), rate=rate, ci=ci, p_below=p_below,
                         rest_rate=None if rest != rest else rest)
        if items.baseline is not None:
            now, before = paired(items, inside)
            if len(now):
                stat.baseline_rate = float(before.mean())
                stat.delta = float((now - before).mean())
                stat.delta_ci = bootstrap_mean_ci(now - before, seed)
                stat.p_regressed = regression_test(items, inside)
        out.append(stat)
    for family in ("below", "regressed"):
        tested = [s for s in out if getattr(s, f"p_{family}") is not None]
        for s, q in zip(tested, benjamini_hochberg([getattr(s, f"p_{family}") for s in tested]), strict=True):
            setattr(s, f"q_{family}", q)
    for s in out:
        flagged: list[tuple[float, str, float]] = []
        if s.q_below is not None and s.q_below < alpha and s.rest_rate is not None and s.rate < s.rest_rate:
            flagged.append((s.q_below, "below_overall", s.rate - s.rest_rate))
        if s.q_regressed is not None and s.q_regressed < alpha and s.delta is not None and s.delta < 0:
            flagged.append((s.q_regressed, "regressed", s.delta))
        if flagged:  # with a baseline, a regression is the finding; else being below the rest
            _, s.kind, s.effect = flagged[-1] if flagged[-1][1] == "regressed" else flagged[0]
            s.weak = True
            s.severity = round(-s.effect * s.n, 6)
    return out


def effect_of(items: Items, inside: np.ndarray, kind: str, reference: np.ndarray | None = None) -> tuple[float, int]:
    """(value, n) of a group: its mean score (``below_overall``) or mean paired delta (``regressed``)."""
    if len(inside) == 0:
        return float("nan"), 0
    if kind == "regressed":
        now, before = paired(items, inside)
        return (float((now - before).mean()) if len(now) else float("nan")), len(now)
    return float(items.score[inside].mean()), len(inside)


def describe(key: dict[str, str] | Any) -> str:
    """``background=school_math, solving_operation=arithmetic``."""
    return ", ".join(f"{d}={v}" for d, v in dict(key).items())
