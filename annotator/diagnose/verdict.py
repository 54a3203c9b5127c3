"""Findings: weak slices explained away, each with a data / non-data / inconclusive verdict.

Two passes, so one comparison can yield both kinds of verdict:

1. **What the model wrote.** Slices of the ``response`` dimension (the run's response states;
   with several benchmarks, per task too). A weak slice of a failure state (``runaway``,
   ``no_answer``, ``buried``) is a ``non-data`` finding with the check for that state
   (termination, extraction, answer form), the baseline's states for the same items in its
   evidence. A significant rise of the share of runaway or no-answer responses is a finding
   (kind ``response_shift``) even when the score barely moved.
2. **What the items are about.** The items of pass-1 findings are set aside; every label slice is
   tested again on the items left (within each task when tasks are not comparable). Weak slices
   are taken by severity (items lost beyond the rest: ``n × |effect|``; fewer dimensions first on
   a tie); one becomes a finding unless an earlier finding explains it: with that finding's items
   removed, what is left of the slice is no longer weak against the items outside both. Explained
   slices are listed under the finding's ``explains``.

The verdict rules for label slices, and the dimension roles they use, are data in
``schemas/diagnosis.yaml``; every comparison is on the chance-adjusted scale (see
:mod:`annotator.diagnose.slices`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats as st

from annotator.config import resource_path
from annotator.diagnose.slices import Items, Key, Population, SliceStat, describe, enumerate_slices, slice_stats
from annotator.io import load_yaml
from annotator.stats import benjamini_hochberg

Verdict = Literal["data", "non-data", "inconclusive"]
CHECK_WORD = {"runaway": "termination", "no_answer": "extraction", "buried": "the answer form"}


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
    rest_rate: float | None = None
    rest_delta: float | None = None
    defined_by: Literal["response", "labels"] = "labels"
    checks: list[str] = Field(default_factory=list)
    lost: int | None = None
    gained: int | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    explains: list[dict[str, Any]] = Field(default_factory=list)


@lru_cache(maxsize=4)
def diagnosis_config(path: str | None = None) -> dict[str, Any]:
    """The diagnosis settings (``schemas/diagnosis.yaml`` unless another file is given)."""
    file = Path(path) if path else resource_path("schemas") / "diagnosis.yaml"
    return load_yaml(file.read_text(encoding="utf-8"))


def measure_of(kind: str) -> str:
    """Which per-item value a finding of ``kind`` is measured on."""
    return "change" if kind == "regressed" else "now"


def _values(items: Items, idx: np.ndarray, measure: str) -> np.ndarray:
    values = (items.change if measure == "change" else items.adjusted)[idx]  # type: ignore[index]
    return values[~np.isnan(values)]


def _mean(items: Items, idx: np.ndarray, measure: str) -> tuple[float, int]:
    values = _values(items, idx, measure)
    return (float(values.mean()) if len(values) else float("nan")), len(values)


def _r(value: float) -> float | None:
    return None if value != value else round(value, 4)


def lost_gained(items: Items, idx: np.ndarray) -> tuple[int | None, int | None]:
    """Items right at the baseline and wrong now, and the other way round (0/1 results only)."""
    if items.baseline is None or not items.binary:
        return None, None
    before, now = items.baseline[idx], items.score[idx]
    return int(((before == 1) & (now == 0)).sum()), int(((before == 0) & (now == 1)).sum())


class Judge:
    """Evidence and verdicts within one population of items."""

    def __init__(self, items: Items, universe: np.ndarray, dims: list[str], cfg: dict[str, Any]) -> None:
        self.items, self.universe, self.dims, self.cfg = items, universe, dims, cfg
        self.index: dict[tuple[str, str], np.ndarray] = {}
        for i in universe:
            for d in dims:
                for lab in items.labels[i].get(d) or []:
                    self.index.setdefault((d, lab), []).append(int(i))  # type: ignore[attr-defined]
        self.index = {k: np.array(v) for k, v in self.index.items()}

    def evidence(self, inside: np.ndarray, measure: str, effect: float) -> tuple[float, list[EvidenceRow]]:
        """Reference value (items outside the finding) and per-label rows for every dimension."""
        share = float(self.cfg["share"])
        outside = np.setdiff1d(self.universe, inside)
        reference, _ = _mean(self.items, outside, measure)
        rows = []
        for dim in self.dims:
            labels = sorted({lab for i in inside for lab in self.items.labels[i].get(dim) or []})
            for label in labels:
                has = self.index.get((dim, label), np.array([], dtype=int))
                v_in, n_in = _mean(self.items, np.intersect1d(has, inside), measure)
                v_out, n_out = _mean(self.items, np.intersect1d(has, outside), measure)
                rows.append(EvidenceRow(
                    dimension=dim, label=label, n_in=n_in, value_in=_r(v_in), n_out=n_out, value_out=_r(v_out),
                    shows_deficit=bool(n_in and v_in - reference <= share * effect),
                    holds_outside=None if n_out == 0 or reference != reference
                    else bool(v_out - reference > share * effect)))
        return reference, rows

    def _pooled_outside(self, inside: np.ndarray, dim: str, labels: set[str], measure: str) -> tuple[float, int]:
        pool = [self.index[(dim, lab)] for lab in labels if (dim, lab) in self.index]
        if not pool:
            return float("nan"), 0
        return _mean(self.items, np.setdiff1d(np.unique(np.concatenate(pool)), inside), measure)

    def _control(self, inside: np.ndarray, dim: str, labels: set[str], measure: str, reference: float,
                 effect: float) -> tuple[float, int, str | None]:
        """The control group (items outside the finding sharing its ``dim`` labels): value, n, why it fails."""
        value, n = self._pooled_outside(inside, dim, labels, measure)
        word = "change" if measure == "change" else "adjusted score"
        if n < int(self.cfg["min_group"]):
            return value, n, f"too few items outside it with the same {dim} labels to compare"
        if value - reference <= float(self.cfg["share"]) * effect:
            return value, n, (f"items with the same {dim} labels are weak outside it too ({word} {value:+.2f} "
                              f"against {reference:+.2f} for all other items)")
        return value, n, None

    def labels(self, stat: SliceStat, inside: np.ndarray) -> tuple[Verdict, str, dict[str, Any]]:
        """Verdict, reason and evidence of a finding defined by taxonomy labels."""
        cfg = self.cfg
        min_group = int(cfg["min_group"])
        measure = measure_of(stat.kind or "")
        reference, rows = self.evidence(inside, measure, stat.effect)
        word = "change" if measure == "change" else "adjusted score"
        evidence = {"measure": "adjusted delta" if measure == "change" else "adjusted rate",
                    "reference": _r(reference),
                    "rows": [r.model_dump() for r in rows]}
        keys = set(stat.slice) - {"task"}
        big = [r for r in rows if r.n_in >= min_group]
        name = describe(stat.slice)
        if keys <= set(cfg["format_dimensions"]):
            rule = cfg["non_data"]
            spread = {d: sorted(r.label for r in big if r.dimension == d and r.shows_deficit)
                      for d in rule["spread_over"]}
            narrow = [d for d, labs in spread.items() if len(labs) < 2]
            if narrow:
                where = ", ".join(f"{d}: {', '.join(spread[d]) or 'none'}" for d in narrow)
                return "inconclusive", f"{name}: the deficit is not spread over unrelated content ({where})", evidence
            held = rule["holds_outside"]
            value, n, why = self._control(inside, held, {r.label for r in big if r.dimension == held}, measure,
                                          reference, stat.effect)
            if why:
                return "inconclusive", f"{name}: {why}; the format alone does not explain it", evidence
            return "non-data", (f"{name}: the deficit spans {len(spread[rule['spread_over'][0]])} "
                                f"{rule['spread_over'][0]} and {len(spread[rule['spread_over'][-1]])} "
                                f"{rule['spread_over'][-1]} labels, while the {n} items with the same {held} labels "
                                f"outside it do as well as the rest ({word} {value:+.2f}, all other items "
                                f"{reference:+.2f}): a format, termination or template problem, "
                                "not missing data"), evidence
        if keys <= set(cfg["content_dimensions"]):
            across = cfg["data"]["consistent_across"]
            groups = [r for r in big if r.dimension == across]
            if not groups:
                return "inconclusive", f"{name}: too few items per {across} to check consistency", evidence
            missing = [r.label for r in groups if not r.shows_deficit]
            if missing:
                return "inconclusive", (f"{name}: the deficit does not show in {across} {', '.join(missing)}; "
                                        "it may be a format problem"), evidence
            value, n, why = self._control(inside, across, {r.label for r in groups}, measure, reference, stat.effect)
            if why:
                return "inconclusive", f"{name}: {why}; a format cause cannot be ruled out", evidence
            return "data", (f"{name}: the deficit holds in every {across} present "
                            f"({', '.join(r.label for r in groups)}), while the other {n} items with the same {across} "
                            f"do as well as the rest ({word} {value:+.2f}, all other items {reference:+.2f}): "
                            "a content gap that data can address"), evidence
        return "inconclusive", (f"{name}: defined by both format and content dimensions; "
                                "no single cause separates them"), evidence


def _explained_by(items: Items, universe: np.ndarray, inside: np.ndarray, found_idx: np.ndarray, kind: str,
                  alpha: float) -> tuple[bool, int, float]:
    rest = np.setdiff1d(inside, found_idx)
    if len(rest) < 2:
        return True, len(rest), 1.0
    others = np.setdiff1d(universe, np.setdiff1d(np.union1d(inside, found_idx), rest))
    m_in, m_out, p = Population(items, others).test(rest, measure_of(kind))
    weak = p < alpha and m_out == m_out and m_in < m_out
    return not weak, len(rest), p


def _checks(cfg: dict[str, Any], stat_slice: dict[str, str]) -> list[str]:
    checks = cfg["checks"]
    out = [checks[d][v] for d, v in stat_slice.items() if isinstance(checks.get(d), dict) and v in checks[d]]
    return out or [checks["default"]]


def _finding(stat: SliceStat, verdict: Verdict, reason: str, evidence: dict[str, Any], items: Items,
             inside: np.ndarray, cfg: dict[str, Any], defined_by: str) -> Finding:
    if stat.kind == "regressed":
        p, q = stat.p_regressed, stat.q_regressed
    else:
        p, q = stat.p_below, stat.q_below
    lost, gained = lost_gained(items, inside)
    return Finding(
        slice=stat.slice, n=stat.n, rate=round(stat.rate, 4), baseline_rate=stat.baseline_rate, delta=stat.delta,
        ci=stat.ci, delta_ci=stat.delta_ci, p_value=float(p or 0.0), q_value=float(q or 0.0), kind=stat.kind or "",
        effect=round(stat.effect, 4), severity=stat.severity, verdict=verdict, reason=reason,
        rest_rate=stat.rest_rate, rest_delta=stat.rest_delta, defined_by=defined_by,  # type: ignore[arg-type]
        checks=_checks(cfg, stat.slice) if verdict == "non-data" else [], lost=lost, gained=gained, evidence=evidence)


def _state_table(items: Items, inside: np.ndarray) -> dict[str, dict[str, int]]:
    """Baseline state -> count for the finding's items (what the same items looked like before)."""
    if items.baseline_state is None:
        return {}
    out: dict[str, int] = {}
    for s in items.baseline_state[inside]:
        out[str(s)] = out.get(str(s), 0) + 1
    return {"baseline_states": dict(sorted(out.items(), key=lambda kv: -kv[1]))}


def shift_tests(items: Items, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Share of each watched failure state now and at the baseline, on the items with both responses."""
    if items.state is None or items.baseline_state is None:
        return []
    both = np.array([a != "n/a" and b not in ("n/a", "None", None) for a, b in zip(items.state, items.baseline_state,
                                                                                     strict=True)])
    if both.sum() == 0:
        return []
    out = []
    for state in cfg["response_shift"]["states"]:
        now, before = items.state[both] == state, items.baseline_state[both] == state
        b, c = int((now & ~before).sum()), int((before & ~now).sum())
        p = 1.0 if b + c == 0 else float(st.binomtest(b, b + c, 0.5).pvalue)
        out.append({"state": state, "n": int(both.sum()), "share": round(float(now.mean()), 4),
                    "baseline_share": round(float(before.mean()), 4), "became": b, "recovered": c, "p": p})
    for row, q in zip(out, benjamini_hochberg([r["p"] for r in out]), strict=True):
        row["q"] = q
    return out


def find(items: Items, dims: list[str], cfg: dict[str, Any], *, min_n: int = 10, alpha: float = 0.05,
         max_dims: int = 4, comparable: bool = True) -> tuple[list[Finding], list[SliceStat], dict[str, Any]]:
    """Both passes: findings sorted by pass then severity, every shown slice, and the set-aside record."""
    rdim = cfg["response_dimension"]
    failures = set(cfg["failure_states"])
    everyone = np.arange(len(items))
    findings: list[tuple[Finding, np.ndarray]] = []
    shown: list[SliceStat] = []
    max_share = float(cfg["max_share"])
    tasks = "task" in dims
    # pass 1: response states
    if items.state is not None and (items.state != "n/a").any():
        rdims = [rdim, "task"] if tasks else [rdim]
        members = {k: v for k, v in enumerate_slices(items, rdims, 2).items() if any(d == rdim for d, _ in k)}
        stats = slice_stats(items, members, min_n=min_n, alpha=alpha, max_share=1.01)
        shown += stats
        judge = Judge(items, everyone, [d for d in dims if d != rdim], cfg)
        for stat in sorted((s for s in stats if s.weak and s.slice[rdim] in failures),
                           key=lambda s: (-s.severity, s.dims)):
            inside = members[tuple(stat.slice.items())]
            if any(_explained_by(items, everyone, inside, idx, stat.kind or "", alpha)[0] for _, idx in findings):
                continue
            state = stat.slice[rdim]
            reference, rows = judge.evidence(inside, measure_of(stat.kind or ""), stat.effect)
            measure = "adjusted delta" if stat.kind == "regressed" else "adjusted rate"
            evidence = {"measure": measure, "reference": _r(reference),
                        "rows": [r.model_dump() for r in rows], **_state_table(items, inside)}
            reason = _response_reason(items, stat, inside, state)
            findings.append((_finding(stat, "non-data", reason, evidence, items, inside, cfg, "response"), inside))
        for row in shift_tests(items, cfg):
            rise = row["share"] - row["baseline_share"]
            if row["q"] >= alpha or rise < float(cfg["response_shift"]["min_rise"]):
                continue
            inside = np.flatnonzero(items.state == row["state"])
            existing = next((f for f, _ in findings if f.slice == {rdim: row["state"]}), None)
            if existing is not None:
                existing.evidence["shift"] = row
                continue
            stat = next((s for s in stats if s.slice == {rdim: row["state"]}), None)
            if stat is None:
                continue
            stat = stat.model_copy(update={"kind": "response_shift", "effect": round(-rise, 4),
                                           "severity": round(rise * row["n"], 4), "p_below": row["p"],
                                           "q_below": row["q"]})
            reason = (f"response={row['state']}: {row['share']:.1%} of the responses now against "
                      f"{row['baseline_share']:.1%} at the baseline ({row['became']} items became {row['state']}, "
                      f"{row['recovered']} recovered; q {row['q']:.2g}), whatever the score did. Not a data "
                      f"problem: check {CHECK_WORD.get(row['state'], 'the format')} first.")
            shift = _finding(stat, "non-data", reason, {"shift": row, **_state_table(items, inside)}, items, inside,
                             cfg, "response")
            narrower = [(f, idx) for f, idx in findings if f.slice.get(rdim) == row["state"]]
            shift.explains = [{"slice": f.slice, "n": f.n, "effect": f.effect} for f, _ in narrower]
            gone = {id(f) for f, _ in narrower}
            findings = [(f, idx) for f, idx in findings if id(f) not in gone] + [(shift, inside)]
    aside = np.unique(np.concatenate([idx for _, idx in findings])) if findings else np.array([], dtype=int)
    left = np.setdiff1d(everyone, aside)
    label_dims = [d for d in dims if d != rdim]
    per_task = tasks and not comparable  # metrics differ: every label slice stays within one task
    groups = [left[items.task[left] == t] for t in sorted(set(items.task[left]))] if per_task else [left]  # type: ignore[index]
    gdims = [d for d in label_dims if d != "task"] if per_task else label_dims
    pass2: list[tuple[Finding, np.ndarray]] = []
    for universe in groups:
        members = enumerate_slices(items, gdims, max_dims, universe)
        stats = slice_stats(items, members, min_n=min_n, alpha=alpha, max_share=max_share, universe=universe)
        if per_task and len(universe):
            task = str(items.task[universe[0]])  # type: ignore[index]
            for s in stats:
                s.slice = {"task": task, **s.slice}
            members = {(("task", task), *k): v for k, v in members.items()}
        shown += stats
        pass2 += _label_findings(items, universe, stats, members, gdims, cfg, alpha)
    pass2.sort(key=lambda fi: (-fi[0].severity, len(fi[0].slice)))
    record = {"set_aside": int(len(aside)), "left": int(len(left)),
              "by": [{"slice": f.slice, "n": f.n} for f, _ in findings]}
    ordered = sorted(findings, key=lambda fi: -fi[0].severity) + pass2
    return [f for f, _ in ordered], shown, record


def _label_findings(items: Items, universe: np.ndarray, stats: list[SliceStat], members: dict[Key, np.ndarray],
                    dims: list[str], cfg: dict[str, Any], alpha: float) -> list[tuple[Finding, np.ndarray]]:
    weak = sorted((s for s in stats if s.weak), key=lambda s: (-s.severity, s.dims, describe(s.slice)))
    judge = Judge(items, universe, dims, cfg)
    found: list[tuple[Finding, np.ndarray]] = []
    for stat in weak:
        inside = members[tuple(stat.slice.items())]
        explained = False
        for finding, f_idx in found:
            gone, left, p = _explained_by(items, universe, inside, f_idx, stat.kind or "", alpha)
            if gone:
                finding.explains.append({"slice": stat.slice, "n": stat.n, "effect": round(stat.effect, 4),
                                         "left_after_removing": left, "p_left": round(p, 4)})
                explained = True
                break
        if explained:
            continue
        verdict, reason, evidence = judge.labels(stat, inside)
        found.append((_finding(stat, verdict, reason, evidence, items, inside, cfg, "labels"), inside))
    return found


def _response_reason(items: Items, stat: SliceStat, inside: np.ndarray, state: str) -> str:
    what = {"runaway": "did not stop (they loop or run to the length limit)",
            "no_answer": "stopped without an answer the benchmark could extract",
            "buried": "hold the right answer in a form the scoring missed"}.get(state, state)
    share = stat.n / max(len(items), 1)
    text = f"{stat.n} responses ({share:.1%}) {what}: they score {stat.rate:.3f}"
    if stat.kind == "regressed" and stat.baseline_rate is not None:
        text += (f", {stat.baseline_rate:.3f} at the baseline (change {stat.delta:+.3f}, against "
                 f"{stat.rest_delta:+.3f} for the other items)") if stat.rest_delta is not None else ""
    elif stat.rest_rate is not None:
        text += f" against {stat.rest_rate:.3f} for the other items"
    if items.baseline_state is not None:
        same = int((items.baseline_state[inside] == state).sum())
        text += f"; {same} of them were {state} at the baseline too"
    if items.length is not None:
        med_in = np.nanmedian(items.length[inside]) if len(inside) else float("nan")
        other = np.setdiff1d(np.arange(len(items)), inside)
        med_out = np.nanmedian(items.length[other]) if len(other) else float("nan")
        if med_in == med_in and med_out == med_out:
            text += f"; median length {med_in:.0f} characters against {med_out:.0f}"
    return text + f". Not a data problem: check {CHECK_WORD.get(state, 'the format')} first."
