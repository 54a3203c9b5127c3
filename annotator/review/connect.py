"""Connecting to Argilla with clear errors (server down, wrong key, missing settings)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import argilla as rg
import httpx

from annotator.errors import ReviewError

T = TypeVar("T")


def connect(api_url: str | None = None, api_key: str | None = None) -> rg.Argilla:
    """An Argilla client for ``api_url`` / ``api_key`` (default: ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``).

    Raises:
        ReviewError: settings missing, server unreachable, or key refused.
    """
    url = api_url or os.environ.get("ARGILLA_API_URL")
    key = api_key or os.environ.get("ARGILLA_API_KEY")
    if not url or not key:
        raise ReviewError("set ARGILLA_API_URL and ARGILLA_API_KEY (scripts/argilla-up DIR writes them to DIR/env)")
    client = guarded(url, lambda: rg.Argilla(api_url=url, api_key=key, timeout=30))
    guarded(url, lambda: client.me)
    return client


def guarded(url: str, call: Callable[[], T]) -> T:
    """Run an Argilla call, turning transport and auth failures into :class:`ReviewError`."""
    try:
        return call()
    except httpx.TransportError as exc:
        raise ReviewError(f"cannot reach Argilla at {url}: {type(exc).__name__}") from None
    except Exception as exc:  # the SDK wraps HTTP errors in its own types
        status = _status(exc)
        if status == 401:
            raise ReviewError(f"Argilla at {url} refused the API key (401): check ARGILLA_API_KEY") from None
        if status == 403:
            raise ReviewError(f"Argilla at {url} denied access (403): the key's user lacks rights here") from None
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, httpx.TransportError) or "connect" in str(exc).lower():
            raise ReviewError(f"cannot reach Argilla at {url}: {exc}") from None
        raise


def _status(exc: BaseException) -> Any:
    for candidate in (exc, exc.__cause__, exc.__context__):
        code = getattr(candidate, "status_code", None)
        if code is None and isinstance(candidate, httpx.HTTPStatusError):
            code = candidate.response.status_code
        if code is not None:
            return code
    return None
