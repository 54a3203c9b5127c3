"""Answer cache: diskcache keyed by the canonical request, sha256-hashed.

The key covers everything that changes an answer: model, messages, response schema, sampling
params, taxonomy and prompt versions, and the vote index. Only validated answers are stored,
so failures are retried on the next run, and every answer read back is validated again by the
tagging stage (one that no longer validates is dropped and asked again). A cache database that
is not one (garbage, truncated) is moved aside with a warning and rebuilt; an unwritable cache
directory stops the run before any request. Code is never fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import diskcache

from annotator.errors import ConfigError


def default_cache_dir() -> Path:
    """``$ANNOTATOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/slice-annotator``, else ``~/.cache/...``."""
    env = os.environ.get("ANNOTATOR_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slice-annotator"


def short_key(key: str) -> int:
    """The first 64 bits of a cache key, as an int: 8 bytes where the hex string takes ~110.

    For sets of many keys (a run's batch answers, the requests in open batches); a false match
    has odds of 2^-64.
    """
    return int(key[:16], 16)


def request_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


DAMAGED = ("not a database", "malformed", "disk image")  # sqlite's words for a broken file, not a busy one


class AnswerCache:
    """A persistent map from request key to a validated answer (a JSON-able dict).

    Writes are committed per answer (SQLite transactions), so a process killed at any moment
    keeps every answer it had validated.
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None
        self._cache: diskcache.Cache | None = None
        if self.directory is not None:
            self._cache = self._open(self.directory)

    @staticmethod
    def _open(directory: Path) -> diskcache.Cache:
        """Open the cache; a database that is not one (garbage, truncated) is moved aside and rebuilt."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):  # unique per thread too
                pass
        except OSError as exc:
            raise ConfigError(f"{directory}: the answer cache is not writable ({exc.strerror}); fix its "
                              "permissions, pass --cache-dir elsewhere, or --no-cache") from None
        moved = False
        for attempt in range(40):
            try:
                cache = diskcache.Cache(str(directory), size_limit=2**34)
                cache.get("__probe__")  # reads the database: garbage fails here, not mid-run
                return cache
            except (sqlite3.DatabaseError, OSError) as exc:
                damaged = any(m in str(exc).lower() for m in DAMAGED)
                if not damaged and attempt < 39:  # locked or busy: another run (or model) is opening it
                    time.sleep(0.25)
                    continue
                if not damaged or moved:
                    raise ConfigError(f"{directory}: cannot open the answer cache ({exc}); remove it or pass "
                                      "--cache-dir elsewhere") from None
                broken = directory / f"cache.db.broken-{time.strftime('%Y%m%d-%H%M%S')}"
                for suffix in ("", "-wal", "-shm"):
                    db = directory / f"cache.db{suffix}"
                    if db.exists():
                        db.rename(Path(f"{broken}{suffix}"))
                moved = True
                warnings.warn(f"{directory}/cache.db was not a readable cache ({exc}); moved it to {broken} "
                              "and started an empty cache (answers it held will be asked again)", stacklevel=2)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer, or None (an unreadable entry counts as absent)."""
        if self._cache is None:
            return None
        try:
            value = self._cache.get(key)
        except Exception:  # noqa: BLE001 - a damaged entry (pickle, sqlite) is a miss, asked again
            return None
        return value if isinstance(value, dict) else None

    def delete(self, key: str) -> None:
        """Drop an entry (e.g. one that no longer validates)."""
        if self._cache is not None:
            self._cache.delete(key)

    def set(self, key: str, answer: dict[str, Any]) -> None:
        """Store a validated answer."""
        if self._cache is not None:
            self._cache.set(key, answer)

    def close(self) -> None:
        """Release the underlying database."""
        if self._cache is not None:
            self._cache.close()
