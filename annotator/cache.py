"""Answer cache: diskcache keyed by the canonical request, sha256-hashed.

The key covers everything that changes an answer: model, messages, response schema, sampling
params, taxonomy and prompt versions, and the vote index. Only validated answers are stored,
so failures are retried on the next run. Code is never fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
import os
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


def request_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """A persistent map from request key to a validated answer (a JSON-able dict).

    Writes are committed per answer (SQLite transactions), so a process killed at any moment
    keeps every answer it had validated.
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None
        self._cache: diskcache.Cache | None = None
        if self.directory is not None:
            try:
                self._cache = diskcache.Cache(str(self.directory), size_limit=2**34)
            except OSError as exc:
                raise ConfigError(f"{self.directory}: cannot open cache: {exc}") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer, or None."""
        if self._cache is None:
            return None
        return self._cache.get(key)

    def set(self, key: str, answer: dict[str, Any]) -> None:
        """Store a validated answer."""
        if self._cache is not None:
            self._cache.set(key, answer)

    def close(self) -> None:
        """Release the underlying database."""
        if self._cache is not None:
            self._cache.close()
