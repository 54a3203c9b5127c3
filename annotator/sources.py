"""Input stage: files -> :class:`Item` (or :class:`Reject` naming file, line and field).

Formats: JSONL, JSON (an array of objects, or BBH's ``{"examples": [...]}``), CSV, Parquet, and
a Hugging Face ``datasets`` dataset saved with ``save_to_disk`` (read straight from its Arrow
files, so the ``datasets`` package is not needed). The text is one field (``text_field``; when
unset the first of :data:`TEXT_FIELDS` present in a file's first record) or a strict Jinja
template over the record's fields. The id is ``id_field`` or a sha256 content hash of the record.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import jinja2

from annotator.errors import InputError, TemplateError
from annotator.prompts import compile_template, render
from annotator.records import Item, Reject

TEXT_FIELDS = ("text", "input", "question", "prompt", "problem", "instruction", "content", "ctx")
_RAW_EXCERPT = 300


@dataclass(frozen=True)
class SourceSpec:
    """How records become items.

    Attributes:
        text_field: field holding the text (auto-detected when None and no template).
        template: Jinja template over the record's fields (e.g. question + lettered choices).
        id_field: field holding a stable id; None for a content hash.
        source: name for the ``source`` column; None for each file's stem.
    """

    text_field: str | None = None
    template: str | None = None
    id_field: str | None = None
    source: str | None = None


def content_id(record: dict[str, Any]) -> str:
    """Stable id from the record's content: sha256 over canonical JSON, 16 hex digits."""
    blob = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def read_items(paths: Iterable[str | Path], spec: SourceSpec) -> Iterator[Item | Reject]:
    """Stage: yield one :class:`Item` or :class:`Reject` per input record, in file order.

    Raises:
        InputError: a path that does not exist or has an unknown format.
        TemplateError: a template with a syntax error.
    """
    template = compile_template(spec.template, "--template") if spec.template else None
    for raw_path in paths:
        path = Path(raw_path)
        source = spec.source or (path.name if path.is_dir() else _stem(path))
        text_field = spec.text_field
        count = 0
        for location, record in _records(path):
            count += 1
            if isinstance(record, Reject):
                yield record
                continue
            if template is None and text_field is None:
                text_field = _find_text_field(record)
                if text_field is None:
                    yield _no_text_field(record, location)
                    continue
            yield _to_item(record, location, source, spec, template, text_field)
        if count == 0:
            yield Reject(location=str(path), reason="empty file: no records")


def _find_text_field(record: dict[str, Any]) -> str | None:
    return next((name for name in TEXT_FIELDS if name in record), None)


def _no_text_field(record: dict[str, Any], location: str) -> Reject:
    raw = json.dumps(record, ensure_ascii=False, default=str)[:_RAW_EXCERPT]
    return Reject(location=location, field="text", raw=raw,
                  reason=f"no text field (looked for {', '.join(TEXT_FIELDS)}; the record has "
                         f"{', '.join(list(record)[:12]) or 'no fields'}); pass --text-field or --template")


def _stem(path: Path) -> str:
    """``HumanEval.jsonl.gz`` -> ``HumanEval``."""
    name = path.name
    for suffix in COMPRESSED:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)].rsplit(".", 1)[0]
    return path.stem


def _to_item(
    record: dict[str, Any],
    location: str,
    source: str,
    spec: SourceSpec,
    template: jinja2.Template | None,
    text_field: str | None,
) -> Item | Reject:
    raw = json.dumps(record, ensure_ascii=False, default=str)[:_RAW_EXCERPT]
    if template is not None:
        try:
            text = render(template, "--template", **record)
        except TemplateError as exc:
            return Reject(location=location, field=_undefined_name(str(exc)), reason=str(exc), raw=raw)
        field = "--template"
    else:
        assert text_field is not None
        if text_field not in record or _missing(record[text_field]):
            return Reject(location=location, field=text_field, reason="missing field", raw=raw)
        text = record[text_field]
        field = text_field
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False, default=str)
    if not text.strip():
        return Reject(location=location, field=field, reason="empty text", raw=raw)
    if spec.id_field:
        if spec.id_field not in record or _missing(record[spec.id_field]):
            return Reject(location=location, field=spec.id_field, reason="missing id field", raw=raw)
        item_id = str(record[spec.id_field])
    else:
        item_id = content_id(record)
    return Item(id=item_id, text=text, source=source, location=location, fields=record)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _undefined_name(message: str) -> str | None:
    start = message.find("'")
    end = message.find("'", start + 1)
    return message[start + 1 : end] if 0 <= start < end else None


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        yield from _arrow_dir(path)
        return
    lower = path.name.lower()
    for suffix, opener in COMPRESSED.items():
        if lower.endswith(suffix):
            if not lower[: -len(suffix)].endswith((".jsonl", ".ndjson")):
                raise InputError(f"{path}: compressed inputs must be JSONL (.jsonl{suffix})")
            yield from _jsonl(path, opener)
            return
    suffix = path.suffix.lower()
    readers = {".jsonl": _jsonl, ".ndjson": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}
    if suffix not in readers:
        raise InputError(
            f"{path}: unknown input format {suffix!r} (jsonl, json, csv, parquet, or a saved dataset directory)"
        )
    yield from readers[suffix](path)


def _open_gz(path: Path) -> BinaryIO:
    return gzip.open(path, "rb")  # type: ignore[return-value]


def _open_zst(path: Path) -> BinaryIO:
    import zstandard

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))  # noqa: SIM115


COMPRESSED: dict[str, Callable[[Path], BinaryIO]] = {".gz": _open_gz, ".zst": _open_zst}


def _jsonl(path: Path, opener: Callable[[Path], BinaryIO] | None = None) -> Iterator[
        tuple[str, dict[str, Any] | Reject]]:
    try:
        with (opener(path) if opener else path.open("rb")) as fh:
            yield from _jsonl_lines(path, fh)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: unreadable compressed stream ({type(exc).__name__}: {exc})") from None
    except Exception as exc:
        if type(exc).__name__ == "ZstdError":
            raise InputError(f"{path}: unreadable zstd stream ({exc})") from None
        raise


def _jsonl_lines(path: Path, fh: BinaryIO) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    for lineno, raw in enumerate(fh, start=1):
        location = f"{path}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield location, Reject(
                location=location, reason=f"invalid UTF-8 at byte {exc.start} of the line",
                raw=raw[:_RAW_EXCERPT].decode("utf-8", "replace"),
            )
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield location, Reject(
                location=location, reason=f"invalid JSON: {exc.msg} (column {exc.colno})",
                raw=line[:_RAW_EXCERPT],
            )
            continue
        if not isinstance(record, dict):
            yield location, Reject(location=location, reason="record is not a JSON object", raw=line[:_RAW_EXCERPT])
            continue
        yield location, record


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: invalid UTF-8 at byte {exc.start}") from None


def _json(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    text = _decode(path)
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        data = data["examples"]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of objects or an object with 'examples'")
    for i, record in enumerate(data):
        location = f"{path}:record {i}"
        if isinstance(record, dict):
            yield location, record
        else:
            excerpt = str(record)[:_RAW_EXCERPT]
            yield location, Reject(location=location, reason="record is not a JSON object", raw=excerpt)


def _csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    reader = csv.DictReader(io.StringIO(_decode(path), newline=""))
    for record in reader:
        location = f"{path}:{reader.line_num}"
        if None in record:  # more cells than header columns
            yield location, Reject(location=location, reason="more cells than header columns")
            continue
        yield location, {k: v for k, v in record.items()}


def _parquet(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise InputError(f"{path}: unreadable Parquet file: {exc}") from None
    yield from _table_rows(table, path, "row")


def _arrow_dir(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    """A ``datasets`` ``save_to_disk`` directory (a Dataset, or a DatasetDict of splits)."""
    import pyarrow as pa

    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        for split in splits:
            yield from _arrow_dir(path / split)
        return
    state_file = path / "state.json"
    if not state_file.is_file():
        raise InputError(f"{path}: a directory must be a dataset saved with save_to_disk (no state.json)")
    files = [path / f["filename"] for f in json.loads(state_file.read_text())["_data_files"]]
    for file in files:
        try:
            with pa.memory_map(str(file)) as source:
                table = pa.ipc.open_stream(source).read_all()
        except Exception as exc:  # pyarrow raises several unrelated types
            raise InputError(f"{file}: unreadable Arrow file: {exc}") from None
        yield from _table_rows(table, file, "row")


def _table_rows(table: Any, path: Path, unit: str) -> Iterator[tuple[str, dict[str, Any]]]:
    offset = 0
    for batch in table.to_batches(max_chunksize=4096):
        for i, record in enumerate(batch.to_pylist()):
            yield f"{path}:{unit} {offset + i}", record
        offset += batch.num_rows


def items_from_records(
    records: Iterable[dict[str, Any]], spec: SourceSpec, name: str = "records"
) -> Iterator[Item | Reject]:
    """Stage: in-memory records (e.g. DataFrame rows) -> items, located as ``name:row N``."""
    template = compile_template(spec.template, "--template") if spec.template else None
    text_field = spec.text_field
    source = spec.source or name
    for i, record in enumerate(records):
        location = f"{name}:row {i}"
        if not isinstance(record, dict):
            yield Reject(location=location, reason="record is not a mapping")
            continue
        if template is None and text_field is None:
            text_field = _find_text_field(record)
            if text_field is None:
                yield _no_text_field(record, location)
                continue
        yield _to_item(record, location, source, spec, template, text_field)
