"""Reading pre-training shards in constant memory: JSONL, JSONL.gz, JSONL.zst and Parquet.

The layout is datatrove's / dolma's: ``text``, ``id`` and optional ``metadata`` per document
(``source`` at top level or in ``metadata`` is used for stratified sampling). Reading yields
:class:`Doc` records; a line that is not UTF-8 or not JSON, or a document without text, is a
:class:`DocError` (named by shard and line/row) and reading goes on; a shard that cannot be read
further (corrupt gzip, truncated Parquet, unreadable file) raises :class:`ShardError` with the
position reached.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

try:  # orjson (in the `scale` extra) parses a line about three times faster
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import JSONDecodeError as _JSONError
    from json import loads as _loads

from annotator.readers import find_files

SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".parquet", ".ndjson")
BATCH = 4096


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


def _byte_stream(path: Path) -> io.BufferedIOBase:
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)  # noqa: SIM115
        return io.BufferedReader(raw)
    return open(path, "rb")  # noqa: SIM115


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
    """Documents (and record errors) of one shard, in order, batch by batch for Parquet.

    Raises:
        ShardError: the shard cannot be read further; the message says where it stopped.
    """
    if path.name.endswith(".parquet"):
        yield from _parquet(path)
        return
    line = 0
    try:
        with _byte_stream(path) as fh:
            for line, data in enumerate(fh, 1):  # noqa: B007
                if not data.strip():
                    continue
                try:  # a line that is not UTF-8 is one bad record, not a lost shard
                    raw = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield DocError(line, None, f"invalid UTF-8 at byte {exc.start} of the line")
                    continue
                try:
                    rec = _loads(raw)
                except _JSONError as exc:
                    yield DocError(line, None, f"not JSON ({str(exc).split(':')[0]})")
                    continue
                yield _doc(rec, line, path)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable after line {line}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # zstandard raises its own ZstdError
        if type(exc).__name__ == "ZstdError":
            raise ShardError(f"{path}: unreadable after line {line}: ZstdError: {exc}") from None
        raise


def _parquet(path: Path) -> Iterator[Doc | DocError]:
    row = 0
    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        if "text" not in names:
            raise ShardError(f"{path}: no 'text' column (columns: {', '.join(sorted(names))})")
        cols = [c for c in ("id", "text", "metadata", "source") if c in names]
        for batch in pf.iter_batches(columns=cols, batch_size=BATCH):
            for rec in batch.to_pylist():
                row += 1
                yield _doc(rec, row, path)
    except ShardError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise ShardError(f"{path}: unreadable after row {row}: {type(exc).__name__}: {exc}") from None
