"""Several models, one table: per-model labels side by side, the consensus, agreement as confidence.

``annotator label --model A --model B`` labels every item with each model (same cache, retries
and checks); each model's table goes to ``<output>.models/<model>.parquet`` and this stage joins
them, streaming in lockstep (same input order, one row per id), into the final table (wide):

* ``<dimension>``: the consensus, a majority over the models (ties: the first model's label;
  multi-label: the labels named by more than half the models, by mean position), exactly as
  ``--votes`` combines samples;
* ``<dimension>_confidence``: the agreement, the share of models giving the consensus label;
* ``disagreement``: the dimensions on which the models differ (empty when they all agree);
  ``review push`` puts these records first;
* ``<dimension>__<model>`` and ``<dimension>_confidence__<model>``: each model's own answer;
* ``status``: ``failed`` when any model failed on the item (``error`` names which; a rerun asks
  only that model again, the others come from the cache).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotator.atomic import atomic_path
from annotator.errors import InputError
from annotator.taxonomy import Dimension
from annotator.votes import combine_votes

_PER_MODEL = ("rationale", "labeler", "status", "error", "flags")


def column_name(model: str) -> str:
    """A model name as a column suffix: ``gpt-4o-mini`` -> ``gpt_4o_mini``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", model).strip("_") or "model"


def model_tables(output: str | Path, models: list[str]) -> dict[str, Path]:
    """Where each model's own table goes."""
    folder = Path(f"{output}.models")
    return {m: folder / f"{column_name(m)}.parquet" for m in models}


def join_models(tables: dict[str, Path], output: str | Path, dims: list[Dimension]) -> tuple[int, int]:
    """Join per-model tables into the consensus table at ``output``; return (ok, failed) counts.

    Raises:
        InputError: the tables are not row-aligned (a bug, or files edited by hand).
    """
    names = list(tables)
    readers = [pq.ParquetFile(p).iter_batches(batch_size=4096) for p in tables.values()]
    schema = _schema(names, dims, pq.read_schema(next(iter(tables.values()))))
    suffixes, known = [column_name(n) for n in names], _known(dims)  # per table, not per row
    ok = failed = 0
    writer: pq.ParquetWriter | None = None
    path = Path(output)
    jsonl = path.suffix.lower() in {".jsonl", ".ndjson"}
    with atomic_path(path) as tmp:
        fh = open(tmp, "w", encoding="utf-8") if jsonl else None
        try:
            for batches in _aligned(readers, tables):
                rows = [b.to_pylist() for b in batches]
                out = [_row(names, suffixes, known, [r[i] for r in rows], dims) for i in range(len(rows[0]))]
                ok += sum(r["status"] == "ok" for r in out)
                failed += sum(r["status"] != "ok" for r in out)
                if fh is not None:
                    fh.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in out)
                    continue
                if writer is None:
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(pa.Table.from_pylist(out, schema=schema))
        finally:
            if writer is not None:
                writer.close()
            if fh is not None:
                fh.close()
    return ok, failed


def _schema(names: list[str], dims: list[Dimension], first: pa.Schema) -> pa.Schema:
    def label(d: Dimension) -> pa.DataType:
        return pa.list_(pa.string()) if d.multi else pa.string()

    fields = [pa.field(k, pa.string()) for k in ("id", "source", "subset", "kind", "text")]
    for d in dims:
        fields += [pa.field(d.id, label(d)), pa.field(f"{d.id}_confidence", pa.float64())]
    fields += [pa.field(k, pa.string()) for k in ("disagreement", "rationale", "labeler", "taxonomy_version",
                                                  "prompt_version", "status", "error", "flags", "evidence")]
    for n in names:
        for d in dims:
            fields += [pa.field(f"{d.id}__{column_name(n)}", label(d)),
                       pa.field(f"{d.id}_confidence__{column_name(n)}", pa.float64())]
    taken = {f.name for f in fields} | _known(dims)
    fields += [f for f in first if f.name not in taken]  # input fields, as the first model's table has them
    return pa.schema(fields)


def _known(dims: list[Dimension]) -> set[str]:
    known = {"id", "source", "subset", "kind", "text", *_PER_MODEL, "taxonomy_version", "prompt_version", "votes",
             "evidence"}
    return known | {d.id for d in dims} | {f"{d.id}_confidence" for d in dims}


def _aligned(readers: list[Iterator[pa.RecordBatch]], tables: dict[str, Path]) -> Iterator[list[pa.RecordBatch]]:
    for batches in zip(*readers, strict=True):
        ids = [b.column("id").to_pylist() for b in batches]
        if any(i != ids[0] for i in ids[1:]):
            raise InputError(f"per-model tables are not aligned: {', '.join(map(str, tables.values()))}")
        yield list(batches)


def _row(names: list[str], suffixes: list[str], known: set[str], rows: list[dict[str, Any]],
         dims: list[Dimension]) -> dict[str, Any]:
    first = rows[0]
    out: dict[str, Any] = {k: first.get(k) for k in ("id", "source", "subset", "kind", "text")}
    answered = [r for r in rows if r["status"] == "ok"]
    failed = [f"{n}: {r['error']}" for n, r in zip(names, rows, strict=True) if r["status"] != "ok"]
    labels: dict[str, Any] = {}
    agreement: dict[str, float] = {}
    if not failed:
        labels, agreement, _ = combine_votes([{d.id: r[d.id] for d in dims} for r in answered], dims)
    for d in dims:
        out[d.id] = labels.get(d.id)
        out[f"{d.id}_confidence"] = agreement.get(d.id)
    out["disagreement"] = ", ".join(d.id for d in dims if agreement.get(d.id, 1.0) < 1.0) or None
    out["rationale"] = first.get("rationale")
    out["labeler"] = "consensus(" + ", ".join(r.get("labeler") or n for n, r in zip(names, rows, strict=True)) + ")"
    out["taxonomy_version"], out["prompt_version"] = first.get("taxonomy_version"), first.get("prompt_version")
    out["status"] = "failed" if failed else "ok"
    out["error"] = "; ".join(failed) or None
    out["flags"] = "; ".join(f"{n}: {r['flags']}" for n, r in zip(names, rows, strict=True) if r.get("flags")) or None
    out["evidence"] = first.get("evidence")
    for suffix, r in zip(suffixes, rows, strict=True):
        for d in dims:
            out[f"{d.id}__{suffix}"] = r.get(d.id)
            out[f"{d.id}_confidence__{suffix}"] = r.get(f"{d.id}_confidence")
    for key, value in first.items():  # input fields, from the first model's table
        if key not in known and key not in out:
            out[key] = value
    return out
