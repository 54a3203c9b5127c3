"""Input stage: files -> :class:`Item` (or :class:`Reject` naming file, line and field).

Formats: JSONL, JSON (an array of objects, or BBH's ``{"examples": [...]}``), CSV, Parquet, and
a Hugging Face ``datasets`` dataset saved with ``save_to_disk`` (read straight from its Arrow
files, so the ``datasets`` package is not needed). The text is one field (``text_field``; when
unset the first of :data:`TEXT_FIELDS` present in a file's first record) or a strict Jinja
template over the record's fields. The id is ``id_field`` or a sha256 content hash of the record.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from annotator.errors import TemplateError
from annotator.io import COMPRESSED, RAW_EXCERPT, records
from annotator.labeling.prompts import compile_template, render
from annotator.records import Item, Reject

TEXT_FIELDS = ("text", "input", "question", "prompt", "problem", "instruction", "content", "ctx")


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
        count = 0
        for found in _items(records(path), source, spec, template):
            count += 1
            yield found
        if count == 0:
            yield Reject(location=str(path), reason="empty file: no records")


def _items(located: Iterable[tuple[str, Any]], source: str, spec: SourceSpec,
           template: jinja2.Template | None) -> Iterator[Item | Reject]:
    """``(location, record or Reject)`` pairs -> items; the text field is found in the first record."""
    text_field = spec.text_field
    for location, record in located:
        if isinstance(record, Reject):
            yield record
            continue
        if not isinstance(record, dict):
            yield Reject(location=location, reason="record is not a mapping")
            continue
        if template is None and text_field is None:
            text_field = _find_text_field(record)
            if text_field is None:
                yield _no_text_field(record, location)
                continue
        yield _to_item(record, location, source, spec, template, text_field)


def _find_text_field(record: dict[str, Any]) -> str | None:
    return next((name for name in TEXT_FIELDS if name in record), None)


def _no_text_field(record: dict[str, Any], location: str) -> Reject:
    raw = json.dumps(record, ensure_ascii=False, default=str)[:RAW_EXCERPT]
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
    raw = json.dumps(record, ensure_ascii=False, default=str)[:RAW_EXCERPT]
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


def items_from_records(
    records: Iterable[dict[str, Any]], spec: SourceSpec, name: str = "records"
) -> Iterator[Item | Reject]:
    """Stage: in-memory records (e.g. DataFrame rows) -> items, located as ``name:row N``."""
    template = compile_template(spec.template, "--template") if spec.template else None
    yield from _items(((f"{name}:row {i}", record) for i, record in enumerate(records)), spec.source or name, spec,
                      template)
