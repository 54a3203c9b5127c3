"""Findings: weak slices explained away, each with a data / non-data / inconclusive verdict.

Weak slices are taken by severity (items lost: ``n × |effect|``; fewer dimensions first on a
tie). A weak slice becomes a finding unless an earlier finding explains it: once that finding's
items are removed, what is left of the slice is no longer weak (p >= alpha, unadjusted, or too
few items). Explained slices are listed under the finding's ``explains``. The verdict rules,
and the dimension roles they use, are data in ``schemas/diagnosis.yaml``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, Field

from annotator.diagnosis.slices import Items, SliceStat, below_test, describe, effect_of, regression_test
from annotator.resources import resource_path

Verdict = Literal["data", "non-data", "inconclusive"]


class EvidenceRow(BaseModel):
    """One label of one dimension: inside the finding and among the other items."""

    dimension: str
    label: str
    n_in: int
    value_in: float | None
    n_out: int
    value_out: float | None
    shows_deficit: bool
    holds_outside: bool | None


class Finding(BaseModel):
    """A weak slice that no stronger finding explains, with its verdict and evidence."""

    slice: dict[str, str]
    n: int
    rate: float
    baseline_rate: float | None
    delta: float | None
    ci: tuple[float, float]
    delta_ci: tuple[float, float] | None
    p_value: float
    q_value: float
    kind: str
    effect: float
    severity: float
    verdict: Verdict
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    explains: list[dict[str, Any]] = Field(default_factory=list)


@lru_cache(maxsize=4)
def diagnosis_config(path: str | None = None) -> dict[str, Any]:
    """The diagnosis settings (``schemas/diagnosis.yaml`` unless another file is given)."""
    file = Path(path) if path else resource_path("schemas") / "diagnosis.yaml"
    return yaml.safe_load(file.read_text(encoding="utf-8"))


def _remaining_p(items: Items, rest: np.ndarray, kind: str, exclude: np.ndarray) -> float:
    if len(rest) < 2:
        return 1.0
    if kind == "regressed":
        return regression_test(items, rest)
    keep = np.setdiff1d(np.arange(len(items)), np.setdiff1d(exclude, rest))  # rest vs items outside both
    sub = Items(ids=[items.ids[i] for i in keep], labels=[items.labels[i] for i in keep], score=items.score[keep],
                baseline=None, binary=items.binary)
    position = {j: i for i, j in enumerate(keep)}
    p, rest_rate = below_test(sub, np.array([position[j] for j in rest]))
    return p if rest_rate == rest_rate and items.score[rest].mean() < rest_rate else 1.0


def evidence_rows(items: Items, inside: np.ndarray, kind: str, dims: list[str], effect: float,
                  share: float) -> tuple[float, list[EvidenceRow]]:
    """Reference value (items outside the finding) and per-label rows for every dimension."""
    outside = np.setdiff1d(np.arange(len(items)), inside)
    reference, _ = effect_of(items, outside, kind)
    rows = []
    for dim in dims:
        labels = sorted({lab for i in inside for lab in items.labels[i].get(dim) or []})
        for label in labels:
            has = np.array([i for i in range(len(items)) if label in (items.labels[i].get(dim) or [])])
            v_in, n_in = effect_of(items, np.intersect1d(has, inside), kind)
            v_out, n_out = effect_of(items, np.intersect1d(has, outside), kind)
            rows.append(EvidenceRow(
                dimension=dim, label=label, n_in=n_in, value_in=_r(v_in), n_out=n_out, value_out=_r(v_out),
                shows_deficit=bool(n_in and v_in - reference <= share * effect),
                holds_outside=None if n_out == 0 or reference != reference
                else bool(v_out - reference > share * effect)))
    return reference, rows


def _r(value: float) -> float | None:
    return None if value != value else round(value, 4)


def _pooled_outside(items: Items, inside: np.ndarray, dim: str, labels: set[str], kind: str) -> tuple[float, int]:
    outside = set(range(len(items))) - set(inside.tolist())
    pool = np.array(sorted(i for i in outside if labels & set(items.labels[i].get(dim) or [])))
    return effect_of(items, pool, kind) if len(pool) else (float("nan"), 0)


def judge(items: Items, stat: SliceStat, inside: np.ndarray, dims: list[str], cfg: dict[str, Any]) -> tuple[
        Verdict, str, dict[str, Any]]:
    """Verdict, reason and evidence of one finding."""
    share, min_group = float(cfg["share"]), int(cfg["min_group"])
    reference, rows = evidence_rows(items, inside, stat.kind or "below_overall", dims, stat.effect, share)
    evidence = {"measure": "delta" if stat.kind == "regressed" else "rate", "reference": _r(reference),
                "rows": [r.model_dump() for r in rows]}
    keys = set(stat.slice)
    big = [r for r in rows if r.n_in >= min_group]
    name = describe(stat.slice)
    if keys <= set(cfg["format_dimensions"]):
        rule = cfg["non_data"]
        spread = {d: sorted(r.label for r in big if r.dimension == d and r.shows_deficit) for d in rule["spread_over"]}
        narrow = [d for d, labs in spread.items() if len(labs) < 2]
        if narrow:
            where = ", ".join(f"{d}: {', '.join(spread[d]) or 'none'}" for d in narrow)
            return "inconclusive", f"{name}: the deficit is not spread over unrelated content ({where})", evidence
        held = rule["holds_outside"]
        labels = {r.label for r in big if r.dimension == held}
        value, n = _pooled_outside(items, inside, held, labels, stat.kind or "")
        if n < min_group:
            return "inconclusive", f"{name}: too few items outside it with the same {held} labels to compare", evidence
        if value - reference <= share * stat.effect:
            return "inconclusive", (f"{name}: items with the same {held} labels are weak outside it too "
                                    f"({value:.2f} vs {reference:.2f}); the format alone does not explain it"), evidence
        return "non-data", (f"{name}: the deficit spans {len(spread[rule['spread_over'][0]])} "
                            f"{rule['spread_over'][0]} and {len(spread[rule['spread_over'][-1]])} "
                            f"{rule['spread_over'][-1]} labels, while {n} items with the same {held} labels "
                            f"outside it hold ({value:.2f} vs reference {reference:.2f}): a format, termination "
                            "or template problem, not missing data"), evidence
    if keys <= set(cfg["content_dimensions"]):
        across = cfg["data"]["consistent_across"]
        groups = [r for r in big if r.dimension == across]
        if not groups:
            return "inconclusive", f"{name}: too few items per {across} to check consistency", evidence
        missing = [r.label for r in groups if not r.shows_deficit]
        if missing:
            return "inconclusive", (f"{name}: the deficit does not show in {across} {', '.join(missing)}; "
                                    "it may be a format problem"), evidence
        value, n = _pooled_outside(items, inside, across, {r.label for r in groups}, stat.kind or "")
        if n < min_group:
            return "inconclusive", (f"{name}: no items outside it share its {across} labels, so a format "
                                    "cause cannot be ruled out"), evidence
        if value - reference <= share * stat.effect:
            return "inconclusive", (f"{name}: {across} {', '.join(r.label for r in groups)} is weak outside it "
                                    f"too ({value:.2f} vs {reference:.2f}); check the format first"), evidence
        return "data", (f"{name}: the deficit holds in every {across} present "
                        f"({', '.join(r.label for r in groups)}) while other items with the same {across} hold "
                        f"({value:.2f} vs reference {reference:.2f}): a content gap that data can address"), evidence
    return "inconclusive", (f"{name}: defined by both format and content dimensions; "
                            "no single cause separates them"), evidence


def find(items: Items, stats: list[SliceStat], members: dict[tuple, np.ndarray], dims: list[str],
         cfg: dict[str, Any], alpha: float = 0.05) -> list[Finding]:
    """Turn weak slices into findings (sorted by severity), explaining away confounded ones."""
    weak = sorted((s for s in stats if s.weak), key=lambda s: (-s.severity, s.dims, describe(s.slice)))
    found: list[tuple[Finding, np.ndarray]] = []
    for stat in weak:
        inside = members[tuple(stat.slice.items())]
        explained = False
        for finding, f_idx in found:
            rest = np.setdiff1d(inside, f_idx)
            p = _remaining_p(items, rest, stat.kind or "", np.union1d(inside, f_idx))
            if p >= alpha:
                finding.explains.append({"slice": stat.slice, "n": stat.n, "effect": round(stat.effect, 4),
                                         "left_after_removing": int(len(rest)), "p_left": round(p, 4)})
                explained = True
                break
        if explained:
            continue
        verdict, reason, evidence = judge(items, stat, inside, dims, cfg)
        p, q = ((stat.p_regressed, stat.q_regressed) if stat.kind == "regressed" else (stat.p_below, stat.q_below))
        found.append((Finding(
            slice=stat.slice, n=stat.n, rate=round(stat.rate, 4), baseline_rate=stat.baseline_rate,
            delta=stat.delta, ci=stat.ci, delta_ci=stat.delta_ci, p_value=float(p or 0.0), q_value=float(q or 0.0),
            kind=stat.kind or "", effect=round(stat.effect, 4), severity=stat.severity, verdict=verdict,
            reason=reason, evidence=evidence), inside))
    return [f for f, _ in found]
