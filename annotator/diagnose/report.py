"""``annotator slices report``: reviewed eval labels + per-sample results -> findings with verdicts.

Writes ``OUT.json`` (the contract: ``benchmarks`` (one row per task: metric, n, rate, baseline
rate, delta, items lost and gained, response states), ``headline`` (what the report says, in one
sentence), ``overall`` (pooled only where the tasks' metrics are comparable; the benchmark-wide
shift decomposed into items lost and gained by response state and by finding), ``responses``
(states per run side by side, length and repetition distributions, a few trimmed examples),
``gate``, ``join``, ``findings``, every shown slice), ``OUT.md`` and ``OUT.html`` (one
self-contained page). Labels pass the review gate first (confirmed/corrected only unless
``allow_unreviewed``, which every output records). Ids that do not join are counted both ways.

Several benchmarks are diagnosed at once: ``labels`` takes several tables or directories (only
the columns the diagnosis uses are read, so tables with differently typed input columns combine),
and results from several tasks carry ``task`` as a slice dimension. Tasks are *comparable* when
every one is scored 0/1 (fractions of items right, whatever the metric is called); otherwise no
rate pools tasks: ``overall.rate`` is null and every label slice stays within one task.
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

from annotator.diagnose.responses import NA, STATES
from annotator.diagnose.results import Fields, Results, read_results
from annotator.diagnose.slices import Items, SliceStat, chance_of, count_options
from annotator.diagnose.verdict import Finding, diagnosis_config, find, lost_gained
from annotator.errors import InputError
from annotator.io import find_files, records, write_json_atomic, write_text_atomic
from annotator.records import Reject
from annotator.review.gate import gate
from annotator.stats import bootstrap_mean_ci, wilson
from annotator.taxonomy import load_taxonomy

EXAMPLES = 10
LABEL_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".jsonl.zst", ".csv")
LABEL_COLUMNS = ("id", "kind", "status", "review_status", "source", "options")


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
    headline: str = ""
    benchmarks: list[dict[str, Any]] = []
    gate: dict[str, Any]
    join: dict[str, Any]
    overall: dict[str, Any]
    responses: dict[str, Any] = {}
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


def read_labels(paths: list[str | Path], dims: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Several labels tables (or directories of them) as one frame of the columns the diagnosis uses.

    Raises:
        InputError: an unreadable file, or a table without ``id`` or a dimension (file and field named).
    """
    files = find_files(paths, LABEL_SUFFIXES, "labels table")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    repeated = 0
    wanted = (*LABEL_COLUMNS, *dims)
    for path in files:
        first = True
        for where, rec in records(path):
            if isinstance(rec, Reject):
                raise InputError(f"{where}: {rec.reason}")
            if first:
                missing = [c for c in ["id", *dims] if c not in rec]
                if missing:
                    raise InputError(f"{path}: field {missing[0]!r}: missing (an eval labels table from "
                                     "`annotator label` or `annotator review pull`)")
                first = False
            item_id = str(rec["id"])
            if item_id in seen:
                repeated += 1
                continue
            seen.add(item_id)
            row = {k: rec.get(k) for k in wanted}
            row["id"] = item_id
            if "status" not in rec:  # a table without a status column: every row is a label (as the gate reads one)
                row["status"] = "ok"
            row["options"] = count_options(rec.get("text"))  # the text itself is not kept
            rows.append(row)
    if not rows:
        raise InputError(f"no labels in {', '.join(map(str, files))}")
    frame = pd.DataFrame(rows, columns=list(wanted))
    for col in ("kind", "status", "review_status"):
        if frame[col].isna().all():
            frame = frame.drop(columns=col)
    return frame, {"files": [str(f) for f in files], "repeated_ids": repeated}


def _labels(paths: list[str | Path], allow_unreviewed: bool, dims: list[str]) -> tuple[pd.DataFrame, dict[str, Any],
                                                                                       dict[str, Any]]:
    table, info = read_labels(paths, dims)
    if "kind" in table.columns:
        table = table[table["kind"].fillna("eval") == "eval"]
    passed, record = gate(table, allow_unreviewed=allow_unreviewed)
    return passed, record.model_dump(), info


def _join(labels: pd.DataFrame, now: Results, before: Results | None) -> tuple[list[str], dict[str, Any]]:
    lab, res = set(labels["id"].astype(str)), set(now.frame["id"])
    matched = sorted(lab & res)
    info: dict[str, Any] = {
        "labels": len(lab), "results": len(res), "matched": len(matched),
        "labels_without_results": len(lab - res), "results_without_labels": len(res - lab),
        "examples_labels_without_results": sorted(lab - res)[:EXAMPLES],
        "examples_results_without_labels": sorted(res - lab)[:EXAMPLES],
        "duplicate_result_ids": now.duplicates, "skipped_files": now.skipped,
    }
    if before is not None:
        info["baseline_matched"] = len(set(matched) & set(before.frame["id"]))
        info["baseline_skipped_files"] = before.skipped
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


def build_items(labels: pd.DataFrame, ids: list[str], dims: list[str], now: Results, before: Results | None,
                cfg: dict[str, Any] | None = None) -> Items:
    """Aligned items for the matched ids: labels (plus ``response`` and ``task``), scores, chance, states."""
    cfg = cfg or diagnosis_config()
    rows = labels.assign(id=labels["id"].astype(str)).drop_duplicates("id").set_index("id").loc[ids]
    as_list = [[_as_labels(val) for val in rows[d]] for d in dims]
    item_labels = [{d: as_list[j][i] for j, d in enumerate(dims)} for i in range(len(ids))]
    res = now.frame.set_index("id").loc[ids]
    source = rows["source"] if "source" in rows.columns else pd.Series([None] * len(ids), index=rows.index)
    task = np.array([str(t) if t is not None and t == t else (str(s) if s is not None and s == s else "all")
                     for t, s in zip(res["task"], source, strict=True)], dtype=object)
    state = res["state"].to_numpy(dtype=object)
    rdim = cfg["response_dimension"]
    several = len(set(task)) > 1
    for i, labels_i in enumerate(item_labels):
        if state[i] != NA:
            labels_i[rdim] = [str(state[i])]
        if several:
            labels_i["task"] = [task[i]]
    options = rows["options"] if "options" in rows.columns else [None] * len(ids)
    chance = np.array([chance_of(lab, k, cfg["chance"]) for lab, k in zip(item_labels, options, strict=True)])
    base = base_state = None
    if before is not None:
        prior = before.frame.set_index("id").reindex(ids)
        base = prior["score"].to_numpy(dtype=float)
        base_state = prior["state"].fillna(NA).to_numpy(dtype=object)
    binary = now.binary and (before is None or before.binary)
    return Items(ids=ids, labels=item_labels, score=res["score"].to_numpy(dtype=float), baseline=base, binary=binary,
                 chance=chance, task=task, state=state, baseline_state=base_state,
                 length=res["length"].to_numpy(dtype=float), repetition=res["repetition"].to_numpy(dtype=float))


def comparable(items: Items) -> bool:
    """Whether tasks may pool into one rate: one task, or every task scored 0/1."""
    return len(set(items.task)) <= 1 or items.binary  # type: ignore[arg-type]


def _rate_block(items: Items, idx: np.ndarray, seed: int) -> dict[str, Any]:
    score = items.score[idx]
    out: dict[str, Any] = {"n": int(len(idx)), "rate": round(float(score.mean()), 4)}
    out["ci"] = wilson(int(score.sum()), len(score)) if items.binary else bootstrap_mean_ci(score, seed)
    if items.baseline is not None:
        before = items.baseline[idx]
        keep = ~np.isnan(before)
        out["baseline_n"] = int(keep.sum())
        if keep.any():
            diff = score[keep] - before[keep]
            out.update(baseline_rate=round(float(before[keep].mean()), 4), delta=round(float(diff.mean()), 4),
                       delta_ci=bootstrap_mean_ci(diff, seed))
            lost, gained = lost_gained(items, idx[keep])
            if lost is not None:
                out.update(lost=lost, gained=gained)
    else:
        out["baseline_rate"] = None
    return out


def state_counts(states: np.ndarray | None) -> dict[str, int]:
    """Count of every response state (``n/a`` last)."""
    if states is None:
        return {}
    values, counts = np.unique(states.astype(str), return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return {s: int(found[s]) for s in (*STATES, NA) if s in found}


def benchmarks(items: Items, now: Results, seed: int) -> list[dict[str, Any]]:
    """One row per task: metric, rates, change, items lost/gained, response states now and before."""
    out = []
    for task in sorted(set(items.task)):  # type: ignore[arg-type]
        idx = np.flatnonzero(items.task == task)
        row = {"task": task, "metric": now.metrics.get(task) or now.metrics.get("") or now.metric,
               **_rate_block(items, idx, seed), "states": state_counts(items.state[idx])}  # type: ignore[index]
        if items.baseline_state is not None:
            row["baseline_states"] = state_counts(items.baseline_state[idx])
        out.append(row)
    return out


def _decompose(items: Items, findings: list[Finding], members: dict[str, np.ndarray]) -> dict[str, Any]:
    """Items lost and gained, by response state (now and before) and by finding."""
    if items.baseline is None or not items.binary:
        return {}
    keep = ~np.isnan(items.baseline)
    lost = keep & (items.baseline == 1) & (items.score == 0)
    gained = keep & (items.baseline == 0) & (items.score == 1)
    out: dict[str, Any] = {"lost": int(lost.sum()), "gained": int(gained.sum()), "net": int(gained.sum() - lost.sum())}
    out["by_state"] = {s: {"lost": int((lost & (items.state == s)).sum()),
                           "gained": int((gained & (items.state == s)).sum())} for s in state_counts(items.state)}
    if items.baseline_state is not None:
        out["by_baseline_state"] = {s: {"lost": int((lost & (items.baseline_state == s)).sum()),
                                        "gained": int((gained & (items.baseline_state == s)).sum())}
                                    for s in state_counts(items.baseline_state)}
    out["by_finding"] = [{"slice": f.slice, "lost": int(lost[idx].sum()), "gained": int(gained[idx].sum())}
                         for f, idx in ((f, members[_name(f)]) for f in findings)]
    return out


def _name(f: Finding) -> str:
    return ", ".join(f"{d}={v}" for d, v in f.slice.items())


def _histogram(values: np.ndarray, edges: list[float]) -> list[int]:
    values = values[~np.isnan(values)]
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return [int(c) for c in counts]


def responses_block(items: Items, now: Results, before: Results | None) -> dict[str, Any]:
    """States per run side by side (with their rates), length and repetition distributions, examples."""
    if items.state is None or (items.state == NA).all():
        return {}
    runs: dict[str, Any] = {"now": state_counts(items.state)}
    rates = {"now": {s: round(float(items.score[items.state == s].mean()), 4) for s in runs["now"]}}
    if items.baseline_state is not None:
        runs["baseline"] = state_counts(items.baseline_state)
        have = ~np.isnan(items.baseline)  # type: ignore[arg-type]
        rates["baseline"] = {s: round(float(items.baseline[have & (items.baseline_state == s)].mean()), 4)  # type: ignore[index]
                             for s in runs["baseline"] if (have & (items.baseline_state == s)).any()}
    length_edges = [0, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 1e9]
    rep_edges = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0001]
    dist: dict[str, Any] = {"length_edges": length_edges[:-1], "repetition_edges": rep_edges[:-1],
                            "now": {"length": _histogram(items.length, length_edges),  # type: ignore[arg-type]
                                    "repetition": _histogram(items.repetition, rep_edges)}}  # type: ignore[arg-type]
    if before is not None:
        prior = before.frame.set_index("id").reindex(items.ids)
        dist["baseline"] = {"length": _histogram(prior["length"].to_numpy(dtype=float), length_edges),
                            "repetition": _histogram(prior["repetition"].to_numpy(dtype=float), rep_edges)}
    task_of = dict(zip(items.ids, items.task, strict=True))  # type: ignore[arg-type]
    examples = {s: [{**e, "task": task_of[e["id"]]} for e in rows if e["id"] in task_of][:3]
                for s, rows in now.examples.items() if s != NA}
    return {"states": runs, "rates": rates, "distribution": dist, "examples": examples,
            "medians": {s: float(np.nanmedian(items.length[items.state == s]))  # type: ignore[index]
                        for s in runs["now"] if s != NA}}


def headline(report: SliceReport) -> str:
    """The report in one sentence: what fell (or is weak), what the model wrote, where, how many items."""
    o = report.overall
    where = "; ".join(f"{b['task']} {b['rate']:.3f}" + (f" vs {b['baseline_rate']:.3f}" if b.get("baseline_rate")
                                                          is not None else "") for b in report.benchmarks[:4])
    parts = [f"{o['n']} items ({where})"]
    if o.get("lost") is not None:
        parts.append(f"{o['lost']} items lost and {o['gained']} gained")
    resp = [f for f in report.findings if f.defined_by == "response"]
    data = [f for f in report.findings if f.verdict == "data"]
    other = [f for f in report.findings if f.defined_by == "labels" and f.verdict != "data"]
    if resp:
        parts.append("not data: " + ", ".join(
            f"{f.n} {f.slice.get('response')} responses" + (f" in {f.slice['task']}" if "task" in f.slice else "")
            + (f" ({f.lost} of the lost items)" if f.lost is not None else "") for f in resp[:3]))
    if data:
        parts.append("data: " + ", ".join(f"{_name(f)} ({f.kind}, n {f.n}, {f.effect:+.2f})" for f in data[:3]))
    if other:
        parts.append(f"{len(other)} other finding(s) ({', '.join(sorted({f.verdict for f in other}))})")
    if not report.findings:
        parts.append("no slice is weak against the rest and no response failure stands out")
    return "; ".join(parts) + "."


def analyse(labels: str | Path | list[str | Path], results: list[str | Path], *,
            baseline: list[str | Path] | None = None, allow_unreviewed: bool = False, id_field: str | None = None,
            metric: str | None = None, k: int = 1, lm_eval_filter: str | None = None, min_n: int = 10,
            alpha: float = 0.05, max_dims: int = 4, taxonomy_path: str | None = None, seed: int = 0,
            fields: Fields | None = None) -> tuple[SliceReport, Items]:
    """Compute the report (nothing written)."""
    taxonomy = load_taxonomy(taxonomy_path)
    dims = [d.id for d in taxonomy.dimensions("eval")]
    label_paths = list(labels) if isinstance(labels, (list, tuple)) else [labels]
    table, gate_record, label_info = _labels(label_paths, allow_unreviewed, dims)
    cfg = diagnosis_config()
    opts = {"id_field": id_field, "metric": metric, "k": k, "lm_eval_filter": lm_eval_filter, "fields": fields,
            "cfg": cfg}
    now = read_results(list(results), **opts)
    before = read_results(list(baseline), **opts) if baseline else None
    if before is not None:
        for task, metric_now in now.metrics.items():
            metric_before = before.metrics.get(task)
            if metric_before is not None and metric_before != metric_now:
                raise InputError(f"task {task or '(table)'!r}: the checkpoint is measured with {metric_now!r} "
                                 f"({now.files[0]}) but the baseline with {metric_before!r} ({before.files[0]}); "
                                 "compare like with like (--metric picks one metric for both)")
    ids, join = _join(table, now, before)
    join["label_files"] = label_info["files"]
    join["repeated_label_ids"] = label_info["repeated_ids"]
    items = build_items(table, ids, dims, now, before, cfg)
    several = len(set(items.task)) > 1  # type: ignore[arg-type]
    pooled = comparable(items)
    slice_dims = [*dims, cfg["response_dimension"], *(["task"] if several else [])]
    findings, stats, aside = find(items, slice_dims, cfg, min_n=min_n, alpha=alpha, max_dims=max_dims,
                                  comparable=pooled)
    members = _finding_members(items, findings)
    overall = _rate_block(items, np.arange(len(items)), seed)
    if not pooled:
        overall.update(rate=None, ci=None, baseline_rate=None, delta=None, delta_ci=None,
                       note="tasks are scored with different metrics: see benchmarks")
    overall["set_aside"] = aside
    overall["decomposition"] = _decompose(items, findings, members)
    shown = sorted(stats, key=lambda s: (len(s.slice), -s.severity, -s.n))
    report = SliceReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"), labels=", ".join(map(str, label_paths)),
        results=now.files, baseline=before.files if before else None, metric=now.metric, binary=items.binary,
        taxonomy_version=taxonomy.version,
        settings={"min_n": min_n, "alpha": alpha, "max_dims": max_dims, "k": k, "seed": seed,
                  "allow_unreviewed": allow_unreviewed, "comparable_tasks": pooled},
        benchmarks=benchmarks(items, now, seed), gate=gate_record, join=join, overall=overall,
        responses=responses_block(items, now, before), findings=findings, slices=shown,
        heatmap=heatmap(items, cfg["heatmap"]["rows"], cfg["heatmap"]["cols"]))
    report.headline = headline(report)
    blob = report.model_dump_json(exclude={"created", "report_id"})
    report.report_id = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return report, items


def _finding_members(items: Items, findings: list[Finding]) -> dict[str, np.ndarray]:
    out = {}
    for f in findings:
        mask = np.ones(len(items), dtype=bool)
        for d, v in f.slice.items():
            mask &= np.array([v in (lab.get(d) or []) for lab in items.labels])
        out[_name(f)] = np.flatnonzero(mask)
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


def markdown(report: SliceReport) -> str:
    """``OUT.md``: the headline, per-benchmark table, response states, findings with evidence tables."""
    o = report.overall
    lines = [f"# Slice report {report.report_id}", "", f"**{report.headline}**", "",
             "| task | metric | n | rate | baseline | delta | lost | gained | response states |",
             "|---|---|---|---|---|---|---|---|---|"]
    for b in report.benchmarks:
        states = ", ".join(f"{k} {v}" for k, v in b["states"].items())
        lines.append(f"| {b['task']} | {b['metric']} | {b['n']} | {_f(b['rate'])} | {_f(b.get('baseline_rate'))} | "
                     f"{_s(b.get('delta'))} | {b.get('lost', '-')} | {b.get('gained', '-')} | {states} |")
    rate = (f"rate {o['rate']:.3f} (95% CI {o['ci'][0]:.3f}-{o['ci'][1]:.3f})" if o.get("rate") is not None
            else o.get("note", ""))
    lines += ["", f"Metric `{report.metric}` over {o['n']} items: {rate}"
              + (f", baseline {o['baseline_rate']:.3f}, delta {o['delta']:+.3f}" if o.get("baseline_rate") is not None
                 else "") + ".", ""]
    d = o.get("decomposition") or {}
    if d:
        lines.append(f"Lost {d['lost']} items, gained {d['gained']} (net {d['net']:+d}). Lost by response state now: "
                     + ", ".join(f"{s} {v['lost']}" for s, v in d["by_state"].items()) + ".")
        lines.append("")
    r = report.responses
    if r:
        runs = list(r["states"])
        lines += ["| response state | " + " | ".join(f"{run} n | {run} rate" for run in runs) + " |",
                  "|---|" + "---|---|" * len(runs)]
        for state in sorted({s for run in runs for s in r["states"][run]}, key=lambda s: (*STATES, NA).index(s)):
            cells = " | ".join(f"{r['states'][run].get(state, 0)} | {_f(r['rates'].get(run, {}).get(state))}"
                               for run in runs)
            lines.append(f"| {state} | {cells} |")
        lines.append("")
    lines += [f"Join: {report.join['matched']} matched; {report.join['labels_without_results']} labels without "
              f"results; {report.join['results_without_labels']} results without labels"
              + (f"; {len(report.join['skipped_files'])} files skipped (not results)"
                 if report.join.get("skipped_files") else "") + ". Gate: "
              f"{report.gate['rows_out']} of {report.gate['rows_in']} label rows passed"
              + (" (**unreviewed labels allowed**)" if report.gate["allow_unreviewed"] else " (reviewed only)") + ".",
              "", f"## Findings ({len(report.findings)})", ""]
    if not report.findings:
        lines.append("No slice is significantly weak against the rest (Benjamini–Hochberg, "
                     f"alpha {report.settings['alpha']}, slices with n >= {report.settings['min_n']}).")
    for i, f in enumerate(report.findings, 1):
        lines += [f"### {i}. {_name(f)} — **{f.verdict}** ({f.kind.replace('_', ' ')})", "",
                  f"n {f.n}, rate {f.rate:.3f}"
                  + (f" (other items {f.rest_rate:.3f})" if f.rest_rate is not None else "")
                  + (f", baseline {f.baseline_rate:.3f}, delta {f.delta:+.3f}" if f.delta is not None else "")
                  + (f" (other items {f.rest_delta:+.3f})" if f.rest_delta is not None else "")
                  + (f", lost {f.lost}, gained {f.gained}" if f.lost is not None else "")
                  + f", p {f.p_value:.2g}, q {f.q_value:.2g}, effect {f.effect:+.3f} (chance-adjusted).",
                  "", f.reason, ""]
        lines += [f"Check: {c}" for c in f.checks] + ([""] if f.checks else [])
        if f.evidence.get("baseline_states"):
            before = f.evidence["baseline_states"]
            lines += ["Same items at the baseline: " + ", ".join(f"{k} {v}" for k, v in before.items()), ""]
        rows = f.evidence.get("rows", [])
        if rows:
            m = f.evidence["measure"]
            lines += [f"| dimension | label | n in | {m} in | n out | {m} out | shows deficit | holds outside |",
                      "|---|---|---|---|---|---|---|---|"]
            for row in rows:
                lines.append(f"| {row['dimension']} | {row['label']} | {row['n_in']} | {_f(row['value_in'])} | "
                             f"{row['n_out']} | {_f(row['value_out'])} | {'yes' if row['shows_deficit'] else 'no'} | "
                             f"{'-' if row['holds_outside'] is None else 'yes' if row['holds_outside'] else 'no'} |")
        if f.explains:
            lines += ["", "Explains: " + "; ".join(", ".join(f"{d}={v}" for d, v in e["slice"].items())
                                                   + f" (n {e['n']})" for e in f.explains)]
        lines.append("")
    if report.intervention:
        lines += ["## Intervention", "", report.intervention["summary"], ""]
    return "\n".join(lines) + "\n"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_report(report: SliceReport, out: str | Path) -> dict[str, Path]:
    """Write OUT.json, OUT.md and OUT.html."""
    from annotator.diagnose.html import render

    paths = out_paths(out)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths["json"], json.loads(report.model_dump_json()))
    write_text_atomic(paths["md"], markdown(report))
    write_text_atomic(paths["html"], render(report))
    return paths


def slices_report(labels: str | Path | list[str | Path], results: list[str | Path], out: str | Path, *,
                  plan: str | Path | None = None, **options: Any) -> tuple[SliceReport, dict[str, Path]]:
    """``annotator slices report``: analyse, evaluate a plan when given, write OUT.json/.md/.html."""
    report, items = analyse(labels, results, **options)
    if plan is not None:
        from annotator.diagnose.ledger import evaluate_plan

        report.intervention = evaluate_plan(items, plan, report.report_id, seed=options.get("seed", 0))
    return report, write_report(report, out)
