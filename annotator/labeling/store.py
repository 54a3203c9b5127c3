"""Output stage: annotations -> the labels table (Parquet, or JSONL when the path ends .jsonl).

The table contract (one row per item id): ``id, source, subset, kind, text`` (the exact text that was
labeled, so review push and few-shot pools never need to guess a field), one column per dimension
(string, or list of strings for multi-label dimensions), ``<dimension>_confidence`` (0-1),
``votes`` (JSON vote distribution, only with ``--votes`` > 1), ``rationale``, ``labeler``,
``taxonomy_version``, ``prompt_version``, ``status`` (ok|failed), ``error``, ``flags`` (what was
repaired or doubtful, e.g. ``task_type_confidence 2.5 clipped``, ``evidence: ...``, ``subset outlier: ...``;
empty when nothing), ``evidence`` (JSON: dimension -> the labels the record admits; empty when it
shows nothing), then the input fields (renamed ``input_<name>`` where a name collides). Files are
written atomically.

:class:`TableWriter` streams: annotations are written in parts of ``rows_per_part`` rows to
``<output>.parts/`` as they arrive, and :meth:`TableWriter.commit` joins the parts into the final
table (one part in memory at a time; input-field columns whose types differ between parts are
unified, or stored as JSON strings) and renames it into place, so the table appears whole or not
at all. A killed run leaves only the parts folder, which the next run removes (its answers are
in the cache).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotator.errors import InputError, OutputError
from annotator.io import atomic_path, records, table_writer
from annotator.records import Annotation, Reject
from annotator.taxonomy import Dimension

META_COLUMNS = ("rationale", "labeler", "taxonomy_version", "prompt_version", "status", "error", "flags", "evidence")


def to_table(annotations: Iterable[Annotation], dims: list[Dimension], keep_fields: bool = True, *,
             with_votes: bool | None = None, input_text: bool | None = None) -> pa.Table:
    """Build the labels table.

    Args:
        annotations: the rows.
        dims: the kind's dimensions.
        keep_fields: keep input fields as columns.
        with_votes: include the ``votes`` column (None: when any row has votes).
        input_text: keep an input field named ``text`` (as ``input_text``) (None: when it differs
            from the labeled text in any row).
    """
    rows = list(annotations)
    cols: dict[str, list[Any]] = {"id": [], "source": [], "subset": [], "kind": [], "text": []}
    for dim in dims:
        cols[dim.id] = []
        cols[f"{dim.id}_confidence"] = []
    if with_votes is None:
        with_votes = any(a.votes for a in rows)
    if with_votes:
        cols["votes"] = []
    for name in META_COLUMNS:
        cols[name] = []
    for a in rows:
        cols["id"].append(a.id)
        cols["source"].append(a.source)
        cols["subset"].append(a.subset)
        cols["kind"].append(a.kind)
        cols["text"].append(a.text)
        for dim in dims:
            cols[dim.id].append(a.labels.get(dim.id))
            cols[f"{dim.id}_confidence"].append(a.confidence.get(dim.id))
        if with_votes:
            cols["votes"].append(json.dumps(a.votes, sort_keys=True) if a.votes else None)
        for name in META_COLUMNS:
            value = getattr(a, name)
            if name == "flags":
                value = "; ".join(value) or None
            elif name == "evidence":
                value = json.dumps(value, sort_keys=True) if value else None
            cols[name].append(value)
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
            if name == "text" and (not input_text if input_text is not None
                                   else all(a.fields.get("text") in (None, a.text) for a in rows)):
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


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failed write (a full disk, a read-only folder) as an :class:`OutputError` naming the table."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise OutputError(f"{path}: cannot write the labels table: {why}. Every answer so far is in the answer "
                          "cache: free space (or pick another -o) and rerun; nothing answered is asked again") from None


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write Parquet (or JSONL for ``*.jsonl``) atomically: temp file in place, then rename."""
    path = Path(path)
    with _writing(path), table_writer(path, table.schema) as write:
        write(table)
    return path


class TableWriter:
    """Write annotations in parts as they arrive; :meth:`commit` joins them into ``path`` atomically."""

    def __init__(self, path: str | Path, dims: list[Dimension], *, keep_fields: bool = True,
                 with_votes: bool = False, input_text: bool = False, rows_per_part: int = 8192) -> None:
        self.path = Path(path)
        self.parts = Path(f"{path}.parts")
        self._table_args = {"dims": dims, "keep_fields": keep_fields, "with_votes": with_votes,
                            "input_text": input_text}
        self.rows_per_part = rows_per_part
        self._rows: list[Annotation] = []
        self._written: list[Path] = []
        shutil.rmtree(self.parts, ignore_errors=True)  # a killed run's parts: its answers are cached

    def add(self, annotation: Annotation) -> None:
        """Buffer one row; a full buffer is written as the next part."""
        self._rows.append(annotation)
        if len(self._rows) >= self.rows_per_part:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        part = self.parts / f"part-{len(self._written):05d}.parquet"
        with _writing(self.path):
            self.parts.mkdir(parents=True, exist_ok=True)
            pq.write_table(to_table(self._rows, **self._table_args), part)
        self._written.append(part)
        self._rows = []

    def commit(self, revise: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Path:
        """Join the parts into the final table (atomic rename) and remove them.

        Args:
            revise: called on every row as the parts are joined (one part in memory at a time), e.g.
                :meth:`annotator.labeling.consistency.SubsetConsistency.revise`.
        """
        self._flush()
        if not self._written:
            write_table(to_table([], **self._table_args), self.path)
            return self.path
        with _writing(self.path):
            schema = _unified([pq.read_schema(p) for p in self._written])
            with table_writer(self.path, schema) as write:
                for part in self._written:
                    write(_revised(_conform(pq.read_table(part), schema), revise))
        self.discard()
        return self.path

    def discard(self) -> None:
        """Remove the parts (after a commit, or when the run failed)."""
        shutil.rmtree(self.parts, ignore_errors=True)


def _revised(table: pa.Table, revise: Callable[[dict[str, Any]], dict[str, Any]] | None) -> pa.Table:
    if revise is None:
        return table
    return pa.Table.from_pylist([revise(row) for row in table.to_pylist()], schema=table.schema)


def _unified(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for all parts: columns in first-seen order; differing types promoted, else string."""
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            seen = types.setdefault(f.name, [])
            if f.type != pa.null() and f.type not in seen:
                seen.append(f.type)
    fields = []
    for name, found in types.items():
        if not found:
            kind = pa.null()
        elif len(found) == 1:
            kind = found[0]
        else:
            try:
                kind = pa.unify_schemas([pa.schema([(name, t)]) for t in found],
                                        promote_options="permissive").field(name).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(len(table), f.type))
            continue
        col = table[f.name]
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                col = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                                for v in col.to_pylist()], type=pa.string())
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def read_table(path: str | Path) -> pa.Table:
    """Read a labels table written by :func:`write_table`."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path)
    rows = []
    for where, row in records(path):
        if isinstance(row, Reject):
            raise InputError(f"{where}: {row.reason}")
        rows.append(row)
    keys = list(dict.fromkeys(k for r in rows for k in r))  # every row's keys, not only the first row's
    return pa.Table.from_pydict({k: [r.get(k) for r in rows] for k in keys})


def rejects_path(output: str | Path) -> Path:
    """Where skipped bad records go: ``<output>.rejects.jsonl`` beside the output."""
    return Path(f"{output}.rejects.jsonl")


def write_rejects(rejects: list[Reject], path: Path) -> Path:
    """Write rejected records (location, field, reason, raw excerpt) as JSONL, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for r in rejects:
            fh.write(json.dumps(r.model_dump(), ensure_ascii=False) + "\n")
    return path
