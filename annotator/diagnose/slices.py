"""Slices: every single label and every combination up to ``max_dims`` dimensions, tested relatively.

An item belongs to a slice when it carries each of the slice's labels; a multi-label dimension
(solving operations) counts for each of its labels. Besides the taxonomy's four dimensions, an
item carries ``response`` (the state of what the model wrote in the run under diagnosis, see
:mod:`annotator.diagnose.responses`) and, when several benchmarks are diagnosed together,
``task``.

Scores are compared on the **chance-adjusted** scale ``(s - chance) / (1 - chance)`` (``chance``
in ``schemas/diagnosis.yaml``: yes/no answers are right half the time, k options 1/k), so a
format whose answers are often right by luck does not make the others look weak. Per slice:
n, rate (the raw mean score) with a 95% interval (Wilson for 0/1 results, normal otherwise),
and tests of the slice **against the items outside it**, each under Benjamini–Hochberg control
across the slices with at least ``min_n`` items:

* ``below`` — its adjusted score against the rest's, now (and at the baseline, for ``standing``);
* ``regressed`` (with a baseline) — its paired change against the change of the rest: a
  benchmark-wide shift moves both, so only a slice that changed *worse than the rest* is
  regressed. ``delta`` is the slice's own raw change; ``relative`` its adjusted change minus the
  rest's.

All three are two-sided z tests of a difference of means in which each item's variance is that
of the compared population's items at the same chance level (for 0/1 results without chance
correction: the pooled two-proportion test), computed from per-stratum sums, so 100k items and
tens of thousands of slices take seconds. A 0/1 slice of fewer than 30 items gets an exact
binomial test instead: its successes against the chance-corrected rate the rest's skill predicts.
A weak slice's ``kind`` says which question it answers: ``regressed`` (changed
worse than the rest), ``standing`` (below the rest at both checkpoints: a persistent weakness),
``below_overall`` (no baseline: below the rest). Slices holding at least ``max_share`` of the
items are the benchmark itself: shown, never weak.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats as st

from annotator.stats import benjamini_hochberg, wilson

Key = tuple[tuple[str, str], ...]
EXACT_BELOW = 30  # 0/1 slices smaller than this get an exact binomial test instead of the z test
_OPTION = re.compile(r"(?m)^\s*\(?([A-Z])[.)]\s")


def count_options(text: Any) -> int | None:
    """Lettered options in an item's text (``A. ...`` or ``(A) ...`` lines, consecutive from A)."""
    if not isinstance(text, str):
        return None
    letters = {m.group(1) for m in _OPTION.finditer(text)}
    k = 0
    while chr(ord("A") + k) in letters:
        k += 1
    return k if k >= 2 else None


def chance_of(labels: dict[str, list[str]], options: int | None, rules: dict[str, Any]) -> float:
    """The chance level of one item from its output constraint (``chance:`` rules) and option count."""
    for label in labels.get("output_constraint") or []:
        rule = rules.get(label)
        if rule == "options":
            k = options if isinstance(options, (int, float)) and options == options else None
            return 1.0 / k if k else 0.0
        if isinstance(rule, (int, float)):
            return float(rule)
    return 0.0


@dataclass
class Items:
    """The joined items, aligned: labels, raw and chance-adjusted scores, response states.

    ``baseline`` and ``baseline_state`` are NaN / ``None`` where the baseline has no result.
    """

    ids: list[str]
    labels: list[dict[str, list[str]]]
    score: np.ndarray
    baseline: np.ndarray | None
    binary: bool
    chance: np.ndarray | None = None
    task: np.ndarray | None = None
    state: np.ndarray | None = None
    baseline_state: np.ndarray | None = None
    length: np.ndarray | None = None
    repetition: np.ndarray | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def _adjust(self, values: np.ndarray) -> np.ndarray:
        if self.chance is None:
            return values
        return (values - self.chance) / (1.0 - self.chance)

    @property
    def adjusted(self) -> np.ndarray:
        """Chance-adjusted score now."""
        if "now" not in self._cache:
            self._cache["now"] = self._adjust(self.score)
        return self._cache["now"]

    @property
    def adjusted_baseline(self) -> np.ndarray | None:
        """Chance-adjusted score at the baseline (NaN where absent)."""
        if self.baseline is None:
            return None
        if "before" not in self._cache:
            self._cache["before"] = self._adjust(self.baseline)
        return self._cache["before"]

    @property
    def strata(self) -> np.ndarray:
        """Each item's chance level as a stratum code (0, 1, ...)."""
        if "strata" not in self._cache:
            chance = self.chance if self.chance is not None else np.zeros(len(self))
            self._cache["strata"] = np.unique(np.round(chance, 4), return_inverse=True)[1].astype(int)
        return self._cache["strata"]

    @property
    def change(self) -> np.ndarray | None:
        """Chance-adjusted paired change (NaN where the baseline has no result)."""
        before = self.adjusted_baseline
        return None if before is None else self.adjusted - before


class SliceStat(BaseModel):
    """Figures of one slice."""

    slice: dict[str, str]
    n: int
    rate: float
    ci: tuple[float, float]
    rest_rate: float | None = None
    adjusted: float | None = None
    adjusted_rest: float | None = None
    adjusted_before: float | None = None
    adjusted_before_rest: float | None = None
    baseline_rate: float | None = None
    delta: float | None = None
    delta_ci: tuple[float, float] | None = None
    rest_delta: float | None = None
    relative: float | None = None
    p_below: float | None = None
    q_below: float | None = None
    p_below_before: float | None = None
    q_below_before: float | None = None
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


def enumerate_slices(items: Items, dims: list[str], max_dims: int = 4,
                     universe: np.ndarray | None = None) -> dict[Key, np.ndarray]:
    """Slice key (``(dimension, label)`` pairs, in dimension order) -> sorted item indices.

    Only items in ``universe`` (indices; all items if None) are considered. Built with one
    merge per dimension subset, so the cost grows with the memberships, not with slices x items.
    """
    pool = np.arange(len(items)) if universe is None else universe
    longs = {}
    for d in dims:
        pairs = [(int(i), lab) for i in pool for lab in dict.fromkeys(items.labels[i].get(d) or [])]
        longs[d] = pd.DataFrame(pairs, columns=["item", d])
    members: dict[Key, np.ndarray] = {}
    for size in range(1, min(max_dims, len(dims)) + 1):
        for subset in combinations(dims, size):
            frame = longs[subset[0]]
            for d in subset[1:]:
                frame = frame.merge(longs[d], on="item")
            if frame.empty:
                continue
            item = frame["item"].to_numpy()
            for labels, pos in frame.groupby(list(subset), sort=False).indices.items():
                labels = labels if isinstance(labels, tuple) else (labels,)
                members[tuple(zip(subset, labels, strict=True))] = np.sort(item[pos])
    return members


def z_test(x_in: np.ndarray, x_all: np.ndarray, strata_in: np.ndarray | None = None,
           strata_all: np.ndarray | None = None) -> tuple[float, float, float]:
    """(mean inside, mean of the rest, two-sided p): the inside values against the rest of ``x_all``.

    ``x_in`` must be a subset of ``x_all`` (both without NaN). Each item's variance is that of the
    items of ``x_all`` in its stratum (its chance level: an adjusted yes/no answer varies more than
    a number), so the test is neither fooled by a small slice of zeros nor by a slice of
    high-chance items.
    """
    n_in, n_all = len(x_in), len(x_all)
    n_out = n_all - n_in
    if n_in == 0 or n_out <= 0:
        return (float(x_in.mean()) if n_in else math.nan), math.nan, 1.0
    s_all, s_in = float(x_all.sum()), float(x_in.sum())
    m_in, m_out = s_in / n_in, (s_all - s_in) / n_out
    if strata_all is None or strata_in is None:
        strata_all, strata_in = np.zeros(n_all, dtype=int), np.zeros(n_in, dtype=int)
    size = int(strata_all.max()) + 1
    count_all = np.bincount(strata_all, minlength=size).astype(float)
    sums = np.bincount(strata_all, weights=x_all, minlength=size)
    squares = np.bincount(strata_all, weights=x_all * x_all, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(count_all > 1, (squares - sums * sums / np.maximum(count_all, 1)) / np.maximum(count_all - 1, 1),
                       0.0)
    count_in = np.bincount(strata_in, minlength=size).astype(float)
    spread = float((count_in * var).sum()) / n_in ** 2 + float(((count_all - count_in) * var).sum()) / n_out ** 2
    if spread <= 0:
        return m_in, m_out, 1.0 if m_in == m_out else 0.0
    z = (m_in - m_out) / math.sqrt(spread)
    return m_in, m_out, float(2 * st.norm.sf(abs(z)))


def _normal_ci(values: np.ndarray) -> tuple[float, float]:
    if len(values) < 2:
        v = float(values.mean()) if len(values) else math.nan
        return (v, v)
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values))
    mean = float(values.mean())
    return (round(mean - half, 4), round(mean + half, 4))


class Population:
    """The items one family of tests compares against (all items, or those left after set-asides)."""

    def __init__(self, items: Items, universe: np.ndarray) -> None:
        self.items, self.universe = items, universe
        self.stratum = items.strata
        self.now = items.adjusted[universe]
        change = items.change
        if change is not None:
            paired = ~np.isnan(change[universe])
            self.paired = universe[paired]
            self.change = change[self.paired]
            self.before = items.adjusted_baseline[self.paired]  # type: ignore[index]
        else:
            self.paired = None

    def test(self, inside: np.ndarray, measure: str) -> tuple[float, float, float]:
        """(mean in, mean of the rest, p) of ``measure`` (``now``, ``before``, ``change``) for ``inside``."""
        items, strata = self.items, self.stratum
        if measure == "now":
            got = z_test(items.adjusted[inside], self.now, strata[inside], strata[self.universe])
            return self._exact(got, items.score[inside], items.chance, inside)
        assert self.paired is not None and items.change is not None
        keep = inside[np.isin(inside, self.paired, assume_unique=True)]
        values = items.change[keep] if measure == "change" else items.adjusted_baseline[keep]  # type: ignore[index]
        got = z_test(values, self.change if measure == "change" else self.before, strata[keep], strata[self.paired])
        return got if measure == "change" else self._exact(got, items.baseline[keep], items.chance, keep)  # type: ignore[index]

    def _exact(self, got: tuple[float, float, float], raw: np.ndarray, chance: np.ndarray | None,
               inside: np.ndarray) -> tuple[float, float, float]:
        """Small 0/1 slices: an exact binomial test of the slice's successes at the rest's skill."""
        m_in, m_out, p = got
        if not self.items.binary or len(raw) >= EXACT_BELOW or m_out != m_out:
            return got
        c = chance[inside] if chance is not None else np.zeros(len(inside))
        expected = float(np.clip(c + (1 - c) * m_out, 0, 1).mean())
        return m_in, m_out, float(st.binomtest(int(raw.sum()), len(raw), expected).pvalue)


def slice_stats(items: Items, members: dict[Key, np.ndarray], *, min_n: int = 10, alpha: float = 0.05,
                max_share: float = 0.9, universe: np.ndarray | None = None) -> list[SliceStat]:
    """Figures and relative tests of every slice with at least ``min_n`` items (smaller ones are hidden)."""
    universe = np.arange(len(items)) if universe is None else universe
    pop = Population(items, universe)
    out: list[SliceStat] = []
    too_big = max_share * len(universe)
    for key, inside in members.items():
        if len(inside) < min_n:
            continue
        scores = items.score[inside]
        rate = float(scores.mean())
        ci = wilson(int(scores.sum()), len(scores)) if items.binary else _normal_ci(scores)
        m_in, m_out, p = pop.test(inside, "now")
        rest = items.score[np.setdiff1d(universe, inside, assume_unique=True)]
        stat = SliceStat(slice=dict(key), n=len(inside), rate=round(rate, 4), ci=ci,
                         rest_rate=round(float(rest.mean()), 4) if len(rest) else None,
                         adjusted=_r(m_in), adjusted_rest=_r(m_out), p_below=p)
        if pop.paired is not None:
            keep = inside[~np.isnan(items.baseline[inside])]  # type: ignore[index]
            if len(keep):
                raw = items.score[keep] - items.baseline[keep]  # type: ignore[index]
                stat.baseline_rate = round(float(items.baseline[keep].mean()), 4)  # type: ignore[index]
                stat.delta = round(float(raw.mean()), 4)
                stat.delta_ci = _normal_ci(raw)
                c_in, c_out, stat.p_regressed = pop.test(inside, "change")
                stat.relative = _r(c_in - c_out) if c_out == c_out else None
                outside = np.setdiff1d(pop.paired, keep, assume_unique=True)
                if len(outside):
                    stat.rest_delta = round(float((items.score[outside] - items.baseline[outside]).mean()), 4)  # type: ignore[index]
                b_in, b_out, stat.p_below_before = pop.test(inside, "before")
                stat.adjusted_before, stat.adjusted_before_rest = _r(b_in), _r(b_out)
        if len(inside) >= too_big:
            stat.p_below = stat.p_regressed = stat.p_below_before = None  # the benchmark itself: not tested
        out.append(stat)
    for family in ("below", "below_before", "regressed"):
        tested = [s for s in out if getattr(s, f"p_{family}") is not None]
        for s, q in zip(tested, benjamini_hochberg([getattr(s, f"p_{family}") for s in tested]), strict=True):
            setattr(s, f"q_{family}", q)
    for s in out:
        classify(s, alpha, pop.paired is not None)
    return out


def classify(s: SliceStat, alpha: float, with_baseline: bool) -> None:
    """Set ``weak``, ``kind``, ``effect`` (chance-adjusted) and ``severity`` (items lost) of one slice."""
    below = (s.q_below is not None and s.q_below < alpha and s.adjusted is not None
             and s.adjusted_rest is not None and s.adjusted < s.adjusted_rest)
    if with_baseline:
        if s.q_regressed is not None and s.q_regressed < alpha and s.relative is not None and s.relative < 0:
            s.kind, s.effect = "regressed", s.relative
        elif (below and s.q_below_before is not None and s.q_below_before < alpha
              and s.adjusted_before is not None and s.adjusted_before_rest is not None
              and s.adjusted_before < s.adjusted_before_rest):
            s.kind, s.effect = "standing", (s.adjusted or 0) - (s.adjusted_rest or 0)
    elif below:
        s.kind, s.effect = "below_overall", (s.adjusted or 0) - (s.adjusted_rest or 0)
    if s.kind:
        s.weak = True
        s.effect = round(s.effect, 4)
        s.severity = round(-s.effect * s.n, 4)


def _r(value: float) -> float | None:
    return None if value != value else round(float(value), 4)


def describe(key: dict[str, str] | Any) -> str:
    """``background=school_math, solving_operation=arithmetic``."""
    return ", ".join(f"{d}={v}" for d, v in dict(key).items())
