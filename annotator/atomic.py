"""One way to write a file: atomically, with the permissions the user's umask gives.

Every output (labels table, summary, rejects, reports, manifests) is written to a temporary file
beside its target and renamed over it, so a reader never sees half a file and a killed run never
leaves one. ``tempfile.mkstemp`` creates files 0600; the finished file gets ``0666 & ~umask``
like any file the user creates (files that hold secrets are not written through here).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
