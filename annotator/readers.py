"""File formats -> raw records, each with its location (``file:line`` or ``file:row N``).

JSONL (also ``.jsonl.gz`` / ``.jsonl.zst``), JSON (an array, or BBH's ``{"examples": [...]}``),
CSV, Parquet and ``datasets`` ``save_to_disk`` directories. A line that cannot be a record
(invalid UTF-8, invalid JSON, not an object) comes back as a :class:`~annotator.records.Reject`;
a file that cannot be read at all raises :class:`~annotator.errors.InputError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from annotator.errors import InputError
from annotator.records import Reject

RAW_EXCERPT = 300


def find_files(paths: Iterable[str | Path], suffixes: tuple[str, ...], what: str) -> list[Path]:
    """Files named directly, plus files ending in ``suffixes`` found (recursively) under directories.

    Hidden files are skipped; the order is given order, each directory's files sorted.

    Raises:
        InputError: a path that does not exist, or a directory with no such file.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                           and not p.name.startswith("."))
            if not found:
                raise InputError(f"{path}: no {what} inside ({', '.join(suffixes)})")
            out += found
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"{path}: no such {what} file or directory")
    return out


def records(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    """``(location, record or Reject)`` for every record of one input file or saved dataset."""
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
                raw=raw[:RAW_EXCERPT].decode("utf-8", "replace"),
            )
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield location, Reject(
                location=location, reason=f"invalid JSON: {exc.msg} (column {exc.colno})",
                raw=line[:RAW_EXCERPT],
            )
            continue
        if not isinstance(record, dict):
            yield location, Reject(location=location, reason="record is not a JSON object", raw=line[:RAW_EXCERPT])
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
            excerpt = str(record)[:RAW_EXCERPT]
            yield location, Reject(location=location, reason="record is not a JSON object", raw=excerpt)


def _csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    """Rows streamed from the file (memory does not grow with it); invalid UTF-8 names its line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            try:
                for record in reader:
                    location = f"{path}:{reader.line_num}"
                    if None in record:  # more cells than header columns
                        yield location, Reject(location=location, reason="more cells than header columns")
                        continue
                    yield location, {k: v for k, v in record.items()}
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{reader.line_num + 1}: invalid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _parquet(path: Path) -> Iterator[tuple[str, dict[str, Any] | Reject]]:
    """Rows streamed batch by batch (memory does not grow with the file)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=4096)
        offset = 0
        for batch in batches:
            for i, record in enumerate(batch.to_pylist()):
                yield f"{path}:row {offset + i}", record
            offset += batch.num_rows
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types
        raise InputError(f"{path}: unreadable Parquet file: {exc}") from None


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
