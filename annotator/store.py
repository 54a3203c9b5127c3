"""Output stage: annotations -> the labels table (Parquet, or JSONL when the path ends .jsonl).

The table contract (one row per item id): ``id, source, kind, text`` (the exact text that was
labeled, so review push and few-shot pools never need to guess a field), one column per dimension
(string, or list of strings for multi-label dimensions), ``<dimension>_confidence`` (0-1),
``votes`` (JSON vote distribution, only with ``--votes`` > 1), ``rationale``, ``labeler``,
``taxonomy_version``, ``prompt_version``, ``status`` (ok|failed), ``error``, then the input
fields (renamed ``input_<name>`` where a name collides). Files are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotator.atomic import atomic_path
from annotator.records import Annotation, Reject
from annotator.taxonomy import Dimension

META_COLUMNS = ("rationale", "labeler", "taxonomy_version", "prompt_version", "status", "error")


def to_table(annotations: Iterable[Annotation], dims: list[Dimension], keep_fields: bool = True) -> pa.Table:
    """Build the labels table."""
    rows = list(annotations)
    cols: dict[str, list[Any]] = {"id": [], "source": [], "kind": [], "text": []}
    for dim in dims:
        cols[dim.id] = []
        cols[f"{dim.id}_confidence"] = []
    with_votes = any(a.votes for a in rows)
    if with_votes:
        cols["votes"] = []
    for name in META_COLUMNS:
        cols[name] = []
    for a in rows:
        cols["id"].append(a.id)
        cols["source"].append(a.source)
        cols["kind"].append(a.kind)
        cols["text"].append(a.text)
        for dim in dims:
            cols[dim.id].append(a.labels.get(dim.id))
            cols[f"{dim.id}_confidence"].append(a.confidence.get(dim.id))
        if with_votes:
            cols["votes"].append(json.dumps(a.votes, sort_keys=True) if a.votes else None)
        for name in META_COLUMNS:
            cols[name].append(getattr(a, name))
    arrays: dict[str, pa.Array] = {}
    for name, values in cols.items():
        if name in {d.id for d in dims}:
            dim = next(d for d in dims if d.id == name)
            arrays[name] = pa.array(values, type=pa.list_(pa.string()) if dim.multi else pa.string())
        elif name.endswith("_confidence"):
            arrays[name] = pa.array(values, type=pa.float64())
        else:
            arrays[name] = pa.array(values, type=pa.string())
    if keep_fields:
        names: list[str] = []
        for a in rows:
            names.extend(k for k in a.fields if k not in names)
        for name in names:
            if name == "text" and all(a.fields.get("text") in (None, a.text) for a in rows):
                continue  # the input's own text field is the labeled text: stored once
            column = f"input_{name}" if name in arrays else name
            arrays[column] = _field_array([a.fields.get(name) for a in rows])
    return pa.table(arrays)


def _field_array(values: list[Any]) -> pa.Array:
    """Arrow array of an input field; heterogeneous values fall back to JSON strings."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values])


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write Parquet (or JSONL for ``*.jsonl``) atomically: temp file in place, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in table.to_pylist():
                    fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            pq.write_table(table, tmp)
    return path


def read_table(path: str | Path) -> pa.Table:
    """Read a labels table written by :func:`write_table`."""
    path = Path(path)
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        keys = list(dict.fromkeys(k for r in rows for k in r))  # every row's keys, not only the first row's
        return pa.Table.from_pydict({k: [r.get(k) for r in rows] for k in keys})
    return pq.read_table(path)


def rejects_path(output: str | Path) -> Path:
    """Where skipped bad records go: ``<output>.rejects.jsonl`` beside the output."""
    return Path(f"{output}.rejects.jsonl")


def write_rejects(rejects: list[Reject], path: Path) -> Path:
    """Write rejected records (location, field, reason, raw excerpt) as JSONL, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for r in rejects:
            fh.write(json.dumps(r.model_dump(), ensure_ascii=False) + "\n")
    return path
