"""``annotator map``: data findings -> corpus categories -> a sampling manifest a loader can read.

The taxonomy's mapping rules (``mapping:`` in ``schemas/taxonomy-v1.yaml``) turn each ``data``
finding's slice into target corpus categories: ``identical`` rules keep the label id (except
``any_for`` labels, which constrain nothing), ``table`` rules map a label to several with
weights. A category's weight is the finding's share of all lost items (severity) times the rule
weights; categories met by several findings add up; weights are normalised to sum to 1.

``non-data`` findings produce no categories: the plan lists what to check instead (from
``schemas/diagnosis.yaml``). ``inconclusive`` findings are listed with their reason.

Documents: a corpus labels table or a directory of labeled Parquet shards, read in two streaming
passes (count per category, then weigh). With ``budget`` B targeted draws, a document's
``sampling_weight`` (expected repeats) is ``sum over its categories c of B * w_c / m_c`` (``m_c``
documents in c), capped at ``max_repeat``. Coverage names categories, and the findings behind
them, that cannot supply their share (fewer than ``min_docs`` documents, or B * w_c above
``m_c * max_repeat``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from annotator.diagnose.report import out_paths
from annotator.diagnose.verdict import diagnosis_config
from annotator.errors import InputError
from annotator.io import records, table_writer, write_json_atomic
from annotator.records import Reject
from annotator.review.gate import audit_gate
from annotator.taxonomy import Taxonomy, load_taxonomy


def load_report(path: str | Path) -> dict[str, Any]:
    """A report's JSON from ``OUT`` or ``OUT.json``."""
    file = out_paths(path)["json"]
    if not file.is_file():
        raise InputError(f"{file}: no report (run `annotator slices report ... -o OUT` first)")
    return json.loads(file.read_text(encoding="utf-8"))


def categories(report: dict[str, Any], taxonomy: Taxonomy) -> tuple[list[dict[str, Any]], list[str]]:
    """Weighted corpus categories for the report's data findings, plus notes on labels left unmapped."""
    data = [f for f in report["findings"] if f["verdict"] == "data"]
    total = sum(f["severity"] for f in data) or 1.0
    corpus_labels = {d.id: set(d.label_ids) for d in taxonomy.dimensions("corpus")}
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = []
    for f in data:
        share = f["severity"] / total
        for dim, label in f["slice"].items():
            rules = [r for r in taxonomy.mapping if r.eval == dim]
            if not rules:
                notes.append(f"{dim}={label}: no mapping rule")
            for rule in rules:
                targets: list[tuple[str, float, str]] = []
                if rule.rule == "identical":
                    if label in rule.any_for:
                        notes.append(f"{dim}={label}: any {rule.corpus} ({rule.why})")
                    elif label in corpus_labels.get(rule.corpus, set()):
                        targets.append((label, rule.weight, rule.why))
                else:
                    targets += [(to, rule.weight * pair.weight, pair.why) for pair in rule.pairs
                                if pair.from_ == label for to in pair.to]
                for to, weight, why in targets:
                    entry = merged.setdefault((rule.corpus, to), {"dimension": rule.corpus, "label": to,
                                                                 "weight": 0.0, "reason": why, "findings": []})
                    entry["weight"] += share * weight
                    entry["findings"].append(f["slice"])
    norm = sum(e["weight"] for e in merged.values()) or 1.0
    out = sorted(merged.values(), key=lambda e: (-e["weight"], e["dimension"], e["label"]))
    for e in out:
        e["weight"] = round(e["weight"] / norm, 6)
    return out, notes


def corpus_files(path: str | Path) -> list[Path]:
    """The labels table, or the labeled shards of a directory (each document once).

    A directory written by ``annotator shards label`` has a ``manifest.json``: only the outputs
    it lists are read, so an audit sample written beside them (``audit-N-SEED.parquet``) or a
    pulled review (``*.pulled.parquet``) is not counted again. Without a manifest, every Parquet
    file under the directory is read except those two kinds.
    """
    path = Path(path)
    if path.is_dir():
        manifest = path / "manifest.json"
        if manifest.is_file():
            entries = json.loads(manifest.read_text(encoding="utf-8")).get("shards", {}).values()
            files = sorted({path / Path(e["output"]).name for e in entries if e.get("output")})
            missing = [f for f in files if not f.is_file()]
            if missing:
                raise InputError(f"{missing[0]}: listed in {manifest} but missing")
        else:
            files = sorted(p for p in path.rglob("*.parquet")
                           if not p.name.startswith("audit-") and not p.name.endswith(".pulled.parquet"))
        if not files:
            raise InputError(f"{path}: no labeled Parquet shards inside")
        return files
    if not path.is_file():
        raise InputError(f"{path}: no such corpus labels table or directory")
    return [path]


def documents(files: list[Path], dims: list[str]) -> Iterator[tuple[str, str, dict[str, list[str]]]]:
    """(id, file, labels) per usable document, streamed batch by batch."""
    for file in files:
        for where, row in records(file, columns=["id", "status", *dims]):
            if isinstance(row, Reject):
                raise InputError(f"{where}: {row.reason}")
            if row.get("status", "ok") != "ok" or row.get("id") is None:
                continue
            labels = {d: ([str(v) for v in row[d]] if isinstance(row.get(d), list) else
                          [] if row.get(d) is None else [str(row[d])]) for d in dims}
            yield str(row["id"]), str(file), labels


def make_plan(report: str | Path, corpus: str | Path, out_dir: str | Path, *, budget: int | None = None,
              max_repeat: float = 4.0, min_docs: int = 10, taxonomy_path: str | None = None,
              audit: str | Path | None = None, min_audit_accuracy: float = 0.8,
              allow_unaudited: bool = False) -> dict[str, Any]:
    """Write ``PLAN/mixture.json`` and ``PLAN/manifest.parquet``; return the mixture.

    The corpus labels go on only through :func:`annotator.review.gate.audit_gate` (``audit``, or
    ``allow_unaudited``, recorded in the mixture).
    """
    if budget is not None and budget < 1:
        raise InputError(f"budget {budget}: the number of targeted draws must be 1 or more")
    if not max_repeat > 0:
        raise InputError(f"max_repeat {max_repeat}: a document's weight cap must be above 0")
    rep = load_report(report)
    taxonomy = load_taxonomy(taxonomy_path)
    cats, notes = categories(rep, taxonomy)
    files = corpus_files(corpus)
    dims = sorted({c["dimension"] for c in cats})
    trust = audit_gate(audit, dims, min_accuracy=min_audit_accuracy, allow_unaudited=allow_unaudited)
    keys = [(c["dimension"], c["label"]) for c in cats]
    counts = dict.fromkeys(keys, 0)
    matched = total = 0
    for _, _, labels in documents(files, dims):
        total += 1
        hit = [k for k in keys if k[1] in labels.get(k[0], [])]
        matched += bool(hit)
        for k in hit:
            counts[k] += 1
    draws = budget if budget is not None else 2 * matched
    per_doc = {k: (draws * c["weight"] / counts[k]) if counts[k] else 0.0 for k, c in zip(keys, cats, strict=True)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("file", pa.string()), ("sampling_weight", pa.float64()),
                        ("capped", pa.bool_()), ("categories", pa.list_(pa.string()))])
    selected = 0
    with table_writer(out / "manifest.parquet", schema) as write:
        rows: list[dict[str, Any]] = []
        for doc_id, file, labels in documents(files, dims):
            hit = [k for k in keys if k[1] in labels.get(k[0], [])]
            if not hit:
                continue
            raw = sum(per_doc[k] for k in hit)
            rows.append({"id": doc_id, "file": file, "sampling_weight": round(min(raw, max_repeat), 6),
                         "capped": raw > max_repeat, "categories": [f"{d}={lab}" for d, lab in hit]})
            selected += 1
            if len(rows) >= 8192:
                write(rows)
                rows = []
        if rows:
            write(rows)
    coverage = []
    for (dim, label), cat in zip(keys, cats, strict=True):
        wanted = draws * cat["weight"]
        available = counts[(dim, label)]
        coverage.append({"dimension": dim, "label": label, "available": available, "wanted": round(wanted, 2),
                         "max_supply": available * max_repeat,
                         "enough": available >= min_docs and wanted <= available * max_repeat})
    short = [f for c, cov in zip(cats, coverage, strict=True) if not cov["enough"] for f in c["findings"]]
    cfg = diagnosis_config()
    checks = []
    for f in rep["findings"]:
        if f["verdict"] == "non-data":
            texts = f.get("checks") or [cfg["checks"].get(dim, {}).get(label) for dim, label in f["slice"].items()]
            checks.append({"finding": f["slice"], "kind": f.get("kind"), "n": f.get("n"),
                           "check": next((t for t in texts if t), cfg["checks"]["default"])})
    fingerprint = hashlib.sha256(json.dumps([rep.get("report_id"), [(str(p), p.stat().st_size) for p in files],
                                             draws, max_repeat, cats], sort_keys=True).encode()).hexdigest()[:12]
    mixture = {
        "plan_id": fingerprint, "report": str(out_paths(report)["json"]), "report_id": rep.get("report_id"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "gate": rep.get("gate"),
        "audit": trust.model_dump() if trust.audit else "unaudited-allowed",
        "targets": [f["slice"] for f in rep["findings"] if f["verdict"] == "data"],
        "categories": cats, "coverage": coverage,
        "short": [dict(t) for t in {json.dumps(s, sort_keys=True): s for s in short}.values()],
        "checks": checks,
        "inconclusive": [{"finding": f["slice"], "reason": f["reason"]} for f in rep["findings"]
                         if f["verdict"] == "inconclusive"],
        "notes": notes, "corpus": str(corpus), "documents": total, "selected": selected, "budget": draws,
        "max_repeat": max_repeat, "min_docs": min_docs, "manifest": str(out / "manifest.parquet"),
    }
    write_json_atomic(out / "mixture.json", mixture)
    return mixture
