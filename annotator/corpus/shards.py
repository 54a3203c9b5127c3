"""Reading pre-training shards in constant memory: JSONL, JSONL.gz, JSONL.zst and Parquet.

The layout is datatrove's / dolma's: ``text``, ``id`` and optional ``metadata`` per document
(``source`` at top level or in ``metadata`` is used for stratified sampling). Reading yields
:class:`Doc` records; a line that is not UTF-8 or not JSON, or a document without text, is a
:class:`DocError` (named by shard and line/row) and reading goes on; a shard that cannot be read
further (corrupt gzip, truncated Parquet, unreadable file) raises :class:`ShardError` with the
position reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.io import find_files, records
from annotator.records import Reject

SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".parquet", ".ndjson")
COLUMNS = ("id", "text", "metadata", "source")  # what a document needs of a Parquet shard


class ShardError(Exception):
    """A shard cannot be read (any further): corrupt compression, truncated file, I/O error."""


@dataclass(slots=True)
class Doc:
    """One document of a shard."""

    id: str
    text: str
    source: str | None
    metadata: dict[str, Any]
    line: int


@dataclass(slots=True)
class DocError:
    """A record of a shard that is not a usable document (it is reported, the shard goes on)."""

    line: int
    id: str | None
    reason: str


def list_shards(inputs: Iterable[str | Path]) -> list[Path]:
    """Shard files named directly or found (recursively) under directories, sorted and de-duplicated.

    Raises:
        InputError: a path that does not exist, or a directory without shards.
    """
    out = find_files(inputs, SUFFIXES, "shard")
    return sorted(dict.fromkeys(p.resolve() for p in out))


def _doc(rec: Any, line: int, shard: Path) -> Doc | DocError:
    if not isinstance(rec, dict):
        return DocError(line, None, "not a JSON object")
    doc_id = rec.get("id")
    doc_id = f"{shard.name}:{line}" if doc_id in (None, "") else str(doc_id)
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        return DocError(line, doc_id, "field 'text': missing or empty")
    meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
    source = rec.get("source") or meta.get("source")
    return Doc(doc_id, text, None if source is None else str(source), meta, line)


def read_shard(path: Path) -> Iterator[Doc | DocError]:
    """Documents (and record errors) of one shard, in order, through :func:`annotator.io.records`.

    Documents are numbered from 1 in every format (``line``: the JSONL line, or the Parquet row + 1).

    Raises:
        ShardError: the shard cannot be read further; the message says where it stopped.
    """
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # pyarrow raises several unrelated types
            raise ShardError(f"{path}: unreadable after row 0: {type(exc).__name__}: {exc}") from None
        if "text" not in names:
            raise ShardError(f"{path}: no 'text' column (columns: {', '.join(sorted(names))})")
    try:
        for where, rec in records(path, columns=COLUMNS):
            line = where.index if where.unit == "line" else where.index + 1
            yield DocError(line, None, rec.reason) if isinstance(rec, Reject) else _doc(rec, line, path)
    except InputError as exc:
        raise ShardError(str(exc)) from None
