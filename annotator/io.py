"""Files in and out: the one record reader and the one atomic writer of the package.

Reading (:func:`records`): JSONL (also ``.jsonl.gz`` / ``.jsonl.zst``), JSON (an array, or BBH's
``{"examples": [...]}``), CSV, Parquet and ``datasets`` ``save_to_disk`` directories -> raw
records, each with its :class:`Location` (``file:line`` or ``file:row N``). A line that cannot be
a record (invalid UTF-8, invalid JSON, not an object) comes back as a
:class:`~annotator.records.Reject`; a file that cannot be read (further) raises
:class:`~annotator.errors.InputError`. Labeling inputs, corpus shards, eval results, labels tables
and corpus labels for a plan are all read here.

Writing (:func:`atomic_path`, and on it :func:`table_writer`, :func:`write_json_atomic`,
:func:`write_text_atomic`): every output is written to a temporary file beside its target and
renamed over it, so a reader never sees half a file and a killed run never leaves one.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from annotator.errors import InputError, OutputError
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


class Location(str):
    """Where a record is, as people read it (``file:3``, ``file:row 0``, ``file:record 0``).

    A string, so it goes wherever a location is printed or stored; ``unit`` (``line``, ``row`` or
    ``record``) and ``index`` (the 1-based line number, or the 0-based row / record index) are for
    code that needs the number.
    """

    unit: str
    index: int

    @classmethod
    def at(cls, path: Path, unit: str, index: int) -> Location:
        """The location of record ``index`` (a line number, or a row / record index) of ``path``."""
        out = cls(f"{path}:{index}" if unit == "line" else f"{path}:{unit} {index}")
        out.unit, out.index = unit, index
        return out


Record = tuple[Location, dict[str, Any] | Reject]


def records(path: Path, *, columns: Iterable[str] | None = None) -> Iterator[Record]:
    """``(location, record or Reject)`` for every record of one input file or saved dataset, in order.

    Memory does not grow with the file: JSONL and CSV stream line by line, Parquet batch by batch.

    Args:
        path: a file (JSONL / ``.jsonl.gz`` / ``.jsonl.zst`` — dolma's ``.json.gz`` / ``.json.zst`` are
            JSONL too —, JSON, CSV, Parquet) or a ``datasets`` ``save_to_disk`` directory.
        columns: Parquet only: read just these of the file's columns (the others are not decoded).

    Raises:
        InputError: the file does not exist, has an unknown format, or cannot be read (further);
            the message says where reading stopped.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        yield from _arrow_dir(path)
        return
    lower = path.name.lower()
    for suffix, opener in COMPRESSED.items():
        if lower.endswith(suffix):
            if not lower[: -len(suffix)].endswith((".jsonl", ".ndjson", ".json")):
                raise InputError(f"{path}: compressed inputs must be JSONL (.jsonl{suffix})")
            yield from _jsonl(path, opener)
            return
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet(path, columns)
        return
    readers = {".jsonl": _jsonl, ".ndjson": _jsonl, ".json": _json, ".csv": _csv}
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


def _loads(line: str) -> Any:
    """``json.loads``, through orjson when it is installed (about 3x faster on shards).

    What orjson refuses and the standard library accepts (integers beyond 64 bits, ``NaN``) is
    parsed by ``json`` after all, so the result never depends on orjson being there.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(line)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(line)


try:  # orjson is in the `scale` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]


def _jsonl(path: Path, opener: Callable[[Path], BinaryIO] | None = None) -> Iterator[Record]:
    line = 0
    try:
        with (opener(path) if opener else path.open("rb")) as fh:
            for line, raw in enumerate(fh, start=1):  # noqa: B007 - ``line`` names where a broken stream stopped
                found = _jsonl_record(Location.at(path, "line", line), raw)
                if found is not None:
                    yield found
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: unreadable compressed stream after line {line} "
                         f"({type(exc).__name__}: {exc})") from None
    except Exception as exc:
        if type(exc).__name__ == "ZstdError":
            raise InputError(f"{path}: unreadable zstd stream after line {line} ({exc})") from None
        raise


def _jsonl_record(location: Location, raw: bytes) -> Record | None:
    """One line as a record or a Reject; None for a blank line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return location, Reject(location=location, reason=f"invalid UTF-8 at byte {exc.start} of the line",
                                raw=raw[:RAW_EXCERPT].decode("utf-8", "replace"))
    if not line.strip():
        return None
    try:
        record = _loads(line)
    except json.JSONDecodeError as exc:
        return location, Reject(location=location, reason=f"invalid JSON: {exc.msg} (column {exc.colno})",
                                raw=line[:RAW_EXCERPT])
    if not isinstance(record, dict):
        return location, Reject(location=location, reason="record is not a JSON object", raw=line[:RAW_EXCERPT])
    return location, record
def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: invalid UTF-8 at byte {exc.start}") from None


def _json(path: Path) -> Iterator[Record]:
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
        location = Location.at(path, "record", i)
        if isinstance(record, dict):
            yield location, record
        else:
            excerpt = str(record)[:RAW_EXCERPT]
            yield location, Reject(location=location, reason="record is not a JSON object", raw=excerpt)


def _csv(path: Path) -> Iterator[Record]:
    """Rows streamed from the file (memory does not grow with it); invalid UTF-8 names its line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            try:
                for record in reader:
                    location = Location.at(path, "line", reader.line_num)
                    if None in record:  # more cells than header columns
                        yield location, Reject(location=location, reason="more cells than header columns")
                        continue
                    yield location, {k: v for k, v in record.items()}
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{reader.line_num + 1}: invalid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _parquet(path: Path, columns: Iterable[str] | None = None) -> Iterator[Record]:
    """Rows streamed batch by batch (memory does not grow with the file)."""
    import pyarrow.parquet as pq

    offset = 0
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        wanted = None if columns is None else [c for c in columns if c in names]
        for batch in pf.iter_batches(batch_size=4096, columns=wanted):
            for i, record in enumerate(batch.to_pylist()):
                yield Location.at(path, "row", offset + i), record
            offset += batch.num_rows
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types
        raise InputError(f"{path}: unreadable Parquet file after row {offset}: {exc}") from None


def _arrow_dir(path: Path) -> Iterator[Record]:
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


def _table_rows(table: Any, path: Path, unit: str) -> Iterator[Record]:
    offset = 0
    for batch in table.to_batches(max_chunksize=4096):
        for i, record in enumerate(batch.to_pylist()):
            yield Location.at(path, unit, offset + i), record
        offset += batch.num_rows


def load_yaml(text: str) -> Any:
    """Parse YAML safely, with libyaml's C parser when PyYAML has it (about 10x faster, same data).

    Raises:
        yaml.YAMLError: the text is not YAML (with the line and column of the problem).
    """
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


# One way to write a file: atomically, with the permissions the user's umask gives.
#
# Every output (labels table, summary, rejects, reports, manifests) is written to a temporary file
# beside its target and renamed over it, so a reader never sees half a file and a killed run never
# leaves one. ``tempfile.mkstemp`` creates files 0600; the finished file gets ``0666 & ~umask``
# like any file the user creates (files that hold secrets are not written through here).

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename (never half-written).

    Raises:
        OutputError: the file cannot be written (a full disk, a read-only folder), naming it.
    """
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to ``path`` via a temporary file and rename (never half-written).

    Raises:
        OutputError: the file cannot be written, naming it.
    """
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


@contextmanager
def table_writer(path: str | Path, schema: Any = None) -> Iterator[Callable[[Any], None]]:
    """Write a table to ``path`` atomically, part by part: JSONL for ``*.jsonl`` / ``*.ndjson``, else Parquet.

    Yields ``write(part)``, where a part is a ``pyarrow.Table`` or a list of row dicts (JSONL rows
    are written as given, Parquet rows under ``schema``). With nothing written, a Parquet file
    still holds ``schema`` (an empty table).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            with open(tmp, "w", encoding="utf-8") as fh:

                def write_jsonl(part: Any) -> None:
                    rows = part.to_pylist() if isinstance(part, pa.Table) else part
                    fh.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)

                yield write_jsonl
            return
        writer: Any = None

        def write_parquet(part: Any) -> None:
            nonlocal writer
            table = part if isinstance(part, pa.Table) else pa.Table.from_pylist(part, schema=schema)
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema if schema is not None else table.schema)
            writer.write_table(table)

        try:
            yield write_parquet
        finally:
            if writer is not None:
                writer.close()
        if writer is None and schema is not None:
            pq.write_table(schema.empty_table(), tmp)
