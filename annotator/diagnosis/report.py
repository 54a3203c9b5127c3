"""``annotator slices report``: reviewed eval labels + per-sample results -> findings with verdicts.

Writes ``OUT.json`` (the contract: ``overall``, ``gate``, ``join``, ``findings`` sorted by
severity, every shown slice), ``OUT.md`` and ``OUT.html`` (one self-contained page). Labels pass
the review gate first (confirmed/corrected only unless ``allow_unreviewed``, which every output
records). Ids that do not join are counted both ways and shown.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from annotator.accounting import write_json_atomic
from annotator.diagnosis.results import Results, read_results
from annotator.diagnosis.slices import Items, SliceStat, enumerate_slices, slice_stats
from annotator.diagnosis.verdict import Finding, diagnosis_config, find
from annotator.errors import InputError
from annotator.gate import gate
from annotator.stats import bootstrap_mean_ci, wilson
from annotator.store import read_table
from annotator.taxonomy import load_taxonomy

EXAMPLES = 10


class SliceReport(BaseModel):
    """Everything ``OUT.json`` holds."""

    report_id: str = ""
    created: str
    labels: str
    results: list[str]
    baseline: list[str] | None
    metric: str
    binary: bool
    taxonomy_version: str
    settings: dict[str, Any]
    gate: dict[str, Any]
    join: dict[str, Any]
    overall: dict[str, Any]
    findings: list[Finding]
    slices: list[SliceStat]
    heatmap: dict[str, Any]
    intervention: dict[str, Any] | None = None


def out_paths(out: str | Path) -> dict[str, Path]:
    """``OUT.json``, ``OUT.md``, ``OUT.html`` for ``-o OUT`` (a trailing suffix is dropped)."""
    base = Path(out)
    if base.suffix in (".json", ".md", ".html"):
        base = base.with_suffix("")
    return {ext: base.with_name(f"{base.name}.{ext}") for ext in ("json", "md", "html")}


def _labels(path: str | Path, allow_unreviewed: bool, kind_dims: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    try:
        table = read_table(path).to_pandas()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the labels table: {exc}") from None
    missing = [c for c in ["id", *kind_dims] if c not in table.columns]
    if missing:
        raise InputError(f"{path}: field {missing[0]!r}: missing (an eval labels table from `annotator label` "
                         "or `annotator review pull`)")
    if "kind" in table.columns:
        table = table[table["kind"].fillna("eval") == "eval"]
    passed, record = gate(table, allow_unreviewed=allow_unreviewed)
    return passed, record.model_dump()


def _join(labels: pd.DataFrame, now: Results, before: Results | None) -> tuple[list[str], dict[str, Any]]:
    lab, res = set(labels["id"].astype(str)), set(now.frame["id"])
    matched = sorted(lab & res)
    info: dict[str, Any] = {
        "labels": len(lab), "results": len(res), "matched": len(matched),
        "labels_without_results": len(lab - res), "results_without_labels": len(res - lab),
        "examples_labels_without_results": sorted(lab - res)[:EXAMPLES],
        "examples_results_without_labels": sorted(res - lab)[:EXAMPLES],
        "duplicate_result_ids": now.duplicates,
    }
    if before is not None:
        info["baseline_matched"] = len(set(matched) & set(before.frame["id"]))
    if not matched:
        raise InputError(f"no result id matches a labels id ({len(lab)} labels, {len(res)} results; e.g. labels "
                         f"{info['examples_labels_without_results'][:3]}, results "
                         f"{info['examples_results_without_labels'][:3]}): label the same benchmark file, "
                         "or pass --id-field when docs carry an id")
    return matched, info


def _as_labels(value: Any) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    return [] if value is None or value != value else [str(value)]


def build_items(labels: pd.DataFrame, ids: list[str], dims: list[str], now: Results,
                before: Results | None) -> Items:
    """Aligned items for the matched ids."""
    rows = labels.assign(id=labels["id"].astype(str)).drop_duplicates("id").set_index("id").loc[ids]
    as_list = [[_as_labels(val) for val in rows[d]] for d in dims]
    item_labels = [{d: as_list[j][i] for j, d in enumerate(dims)} for i in range(len(ids))]
    score = now.frame.set_index("id").loc[ids, "score"].to_numpy(dtype=float)
    base = None
    if before is not None:
        base = before.frame.set_index("id")["score"].reindex(ids).to_numpy(dtype=float)
    binary = now.binary and (before is None or before.binary)
    return Items(ids=ids, labels=item_labels, score=score, baseline=base, binary=binary)


def _overall(items: Items, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(items), "rate": round(float(items.score.mean()), 4)}
    out["ci"] = wilson(int(items.score.sum()), len(items)) if items.binary else bootstrap_mean_ci(items.score, seed)
    if items.baseline is not None:
        keep = ~np.isnan(items.baseline)
        out["baseline_n"] = int(keep.sum())
        if keep.any():
            diff = items.score[keep] - items.baseline[keep]
            out.update(baseline_rate=round(float(items.baseline[keep].mean()), 4), delta=round(float(diff.mean()), 4),
                       delta_ci=bootstrap_mean_ci(diff, seed))
    else:
        out["baseline_rate"] = None
    return out


def heatmap(items: Items, rows: str, cols: str) -> dict[str, Any]:
    """Every (row label, column label) cell with n, rate and (with a baseline) delta."""
    cells: dict[tuple[str, str], list[int]] = {}
    for i, labels in enumerate(items.labels):
        for r in labels.get(rows) or []:
            for c in labels.get(cols) or []:
                cells.setdefault((r, c), []).append(i)
    out = []
    for (r, c), idx in sorted(cells.items()):
        arr = np.array(idx)
        cell: dict[str, Any] = {"row": r, "col": c, "n": len(idx), "rate": round(float(items.score[arr].mean()), 4)}
        if items.baseline is not None:
            before = items.baseline[arr]
            keep = ~np.isnan(before)
            cell["delta"] = round(float((items.score[arr][keep] - before[keep]).mean()), 4) if keep.any() else None
        out.append(cell)
    return {"rows": rows, "cols": cols, "cells": out}


def analyse(labels: str | Path, results: list[str | Path], *, baseline: list[str | Path] | None = None,
            allow_unreviewed: bool = False, id_field: str | None = None, metric: str | None = None, k: int = 1,
            lm_eval_filter: str | None = None, min_n: int = 10, alpha: float = 0.05, max_dims: int = 4,
            taxonomy_path: str | None = None, seed: int = 0) -> tuple[SliceReport, Items]:
    """Compute the report (nothing written)."""
    taxonomy = load_taxonomy(taxonomy_path)
    dims = [d.id for d in taxonomy.dimensions("eval")]
    table, gate_record = _labels(labels, allow_unreviewed, dims)
    opts = {"id_field": id_field, "metric": metric, "k": k, "lm_eval_filter": lm_eval_filter}
    now = read_results(list(results), **opts)
    before = read_results(list(baseline), **opts) if baseline else None
    ids, join = _join(table, now, before)
    items = build_items(table, ids, dims, now, before)
    members = enumerate_slices(items, dims, max_dims)
    stats = slice_stats(items, members, min_n=min_n, alpha=alpha, seed=seed)
    cfg = diagnosis_config()
    findings = find(items, stats, members, dims, cfg, alpha)
    shown = sorted(stats, key=lambda s: (len(s.slice), -s.severity, -s.n))
    report = SliceReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"), labels=str(labels),
        results=now.files, baseline=before.files if before else None, metric=now.metric, binary=items.binary,
        taxonomy_version=taxonomy.version,
        settings={"min_n": min_n, "alpha": alpha, "max_dims": max_dims, "k": k, "seed": seed,
                  "allow_unreviewed": allow_unreviewed},
        gate=gate_record, join=join, overall=_overall(items, seed), findings=findings, slices=shown,
        heatmap=heatmap(items, cfg["heatmap"]["rows"], cfg["heatmap"]["cols"]))
    blob = report.model_dump_json(exclude={"created", "report_id"})
    report.report_id = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return report, items


def markdown(report: SliceReport) -> str:
    """``OUT.md``: overall, join, gate, findings with evidence tables."""
    o = report.overall
    lines = [f"# Slice report {report.report_id}", "",
             f"Metric `{report.metric}` over {o['n']} items: rate {o['rate']:.3f} "
             f"(95% CI {o['ci'][0]:.3f}-{o['ci'][1]:.3f})"
             + (f", baseline {o['baseline_rate']:.3f}, delta {o['delta']:+.3f}" if o.get("baseline_rate") is not None
                else "") + ".", "",
             f"Join: {report.join['matched']} matched; {report.join['labels_without_results']} labels without "
             f"results; {report.join['results_without_labels']} results without labels. Gate: "
             f"{report.gate['rows_out']} of {report.gate['rows_in']} label rows passed"
             + (" (**unreviewed labels allowed**)" if report.gate["allow_unreviewed"] else " (reviewed only)") + ".",
             "", f"## Findings ({len(report.findings)})", ""]
    if not report.findings:
        lines.append("No slice is significantly weak (Benjamini–Hochberg, "
                     f"alpha {report.settings['alpha']}, slices with n >= {report.settings['min_n']}).")
    for i, f in enumerate(report.findings, 1):
        name = ", ".join(f"{d}={v}" for d, v in f.slice.items())
        lines += [f"### {i}. {name} — **{f.verdict}**", "",
                  f"n {f.n}, rate {f.rate:.3f}" + (f", baseline {f.baseline_rate:.3f}, delta {f.delta:+.3f}"
                                                   if f.delta is not None else "")
                  + f", {f.kind.replace('_', ' ')}, p {f.p_value:.2g}, q {f.q_value:.2g}, items lost {f.severity:.1f}.",
                  "", f.reason, "",
                  f"| dimension | label | n in | {f.evidence['measure']} in | n out | {f.evidence['measure']} out "
                  "| shows deficit | holds outside |", "|---|---|---|---|---|---|---|---|"]
        for r in f.evidence["rows"]:
            lines.append(f"| {r['dimension']} | {r['label']} | {r['n_in']} | {_f(r['value_in'])} | {r['n_out']} | "
                         f"{_f(r['value_out'])} | {'yes' if r['shows_deficit'] else 'no'} | "
                         f"{'-' if r['holds_outside'] is None else 'yes' if r['holds_outside'] else 'no'} |")
        if f.explains:
            lines += ["", "Explains: " + "; ".join(", ".join(f"{d}={v}" for d, v in e["slice"].items())
                                                   + f" (n {e['n']})" for e in f.explains)]
        lines.append("")
    if report.intervention:
        lines += ["## Intervention", "", report.intervention["summary"], ""]
    return "\n".join(lines) + "\n"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_report(report: SliceReport, out: str | Path) -> dict[str, Path]:
    """Write OUT.json, OUT.md and OUT.html."""
    from annotator.diagnosis.html import render

    paths = out_paths(out)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths["json"], json.loads(report.model_dump_json()))
    paths["md"].write_text(markdown(report), encoding="utf-8")
    paths["html"].write_text(render(report), encoding="utf-8")
    return paths


def slices_report(labels: str | Path, results: list[str | Path], out: str | Path, *,
                  plan: str | Path | None = None, **options: Any) -> tuple[SliceReport, dict[str, Path]]:
    """``annotator slices report``: analyse, evaluate a plan when given, write OUT.json/.md/.html."""
    report, items = analyse(labels, results, **options)
    if plan is not None:
        from annotator.diagnosis.ledger import evaluate_plan

        report.intervention = evaluate_plan(items, plan, report.report_id, seed=options.get("seed", 0))
    return report, write_report(report, out)
