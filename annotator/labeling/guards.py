"""Checks before spending: outputs that can be written, and one run per output at a time."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from annotator.errors import ConfigError
from annotator.labeling.store import rejects_path

OUTPUT_SUFFIXES = (".parquet", ".jsonl", ".ndjson")


def check_outputs(output: str | Path, inputs: tuple[str | Path, ...] | list[str | Path] = ()) -> None:
    """Fail before any request when the outputs cannot be written (table, summary, rejects).

    Nothing is created on the way: a refused ``-o`` leaves no folder, lock or probe behind.

    Raises:
        ConfigError: the output is a directory (or ends in ``/``), starts with an unexpanded
            ``~``, has a suffix other than ``.parquet`` / ``.jsonl`` (the table is written in one of
            those two formats, never under another name), is one of the inputs, its folder cannot
            be created, or it is not writable.
    """
    raw = str(output)
    out = Path(output)
    if raw.endswith(("/", os.sep)) or out.is_dir():
        raise ConfigError(f"{out}: is a directory; -o needs a file path (.parquet or .jsonl)")
    if raw.startswith("~"):
        raise ConfigError(f"{raw}: starts with '~', which the shell did not expand; write the path out "
                          f"(e.g. {Path(raw).expanduser()})")
    if not out.name.lower().endswith(OUTPUT_SUFFIXES) or out.name.lower().endswith((".gz", ".zst")):
        raise ConfigError(f"{out}: the labels table is written as Parquet (.parquet) or JSON Lines (.jsonl); "
                          "name the output with one of those suffixes")
    target = out.resolve()
    same = next((p for p in inputs if Path(p).exists() and Path(p).resolve() == target), None)
    if same is not None:
        raise ConfigError(f"{out}: is also an input; the labels would replace it: choose another -o")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out.parent}: cannot create the output folder: {exc.strerror}") from None
    for path in (out, Path(f"{out}.summary.json"), rejects_path(out)):
        if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
            raise ConfigError(f"{path}: exists and cannot be replaced")
    try:
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ConfigError(f"{out.parent}: cannot write the outputs there: {exc.strerror}") from None


@contextmanager
def output_lock(output: str | Path | None) -> Iterator[None]:
    """Hold ``<output>.lock`` for the whole run: a second run writing the same output refuses.

    Raises:
        ConfigError: another live run holds the lock (the lock dies with its process, even kill -9).
    """
    if output is None:
        yield
        return
    path = Path(f"{output}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ConfigError(f"{output} is being written by another run ({holder}); wait for it to finish "
                              "or choose another -o") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # a finished run leaves no lock file (removed while still held)
            fcntl.flock(fh, fcntl.LOCK_UN)
