"""Connecting to Argilla with clear errors (server down, wrong key, missing settings).

Two doors, both public: the ``argilla`` SDK (creating datasets, logging records) and Argilla's
documented REST API (:class:`Rest`) for reading records with every response, discards included —
the SDK's flattened ``record.responses`` drops a discard sent without values.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import argilla as rg
import httpx

from annotator.errors import ReviewError

warnings.filterwarnings("ignore", module="argilla")  # e.g. "dataset not found" on lookups we expect
logging.getLogger("argilla.sdk").setLevel(logging.ERROR)

T = TypeVar("T")
PAGE = 1000  # Argilla 2.8's largest page of records


def _settings(api_url: str | None, api_key: str | None) -> tuple[str, str]:
    url = api_url or os.environ.get("ARGILLA_API_URL")
    key = api_key or os.environ.get("ARGILLA_API_KEY")
    if not url or not key:
        raise ReviewError("set ARGILLA_API_URL and ARGILLA_API_KEY (scripts/argilla-up DIR writes them to DIR/env)")
    return url.rstrip("/"), key


def connect(api_url: str | None = None, api_key: str | None = None) -> rg.Argilla:
    """An Argilla client for ``api_url`` / ``api_key`` (default: ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``).

    Raises:
        ReviewError: settings missing, server unreachable, or key refused.
    """
    url, key = _settings(api_url, api_key)
    client = guarded(url, lambda: rg.Argilla(api_url=url, api_key=key, timeout=30))
    guarded(url, lambda: client.me)
    return client


class Rest:
    """Argilla's REST API (``/api/v1``) with the same error messages as :func:`guarded`."""

    def __init__(self, api_url: str | None = None, api_key: str | None = None) -> None:
        self.url, key = _settings(api_url, api_key)
        self._http = httpx.Client(base_url=f"{self.url}/api/v1", headers={"X-Argilla-Api-Key": key}, timeout=60)

    @classmethod
    def like(cls, client: rg.Argilla) -> Rest:
        """A REST door to the same server and key as an SDK client."""
        return cls(str(client.api_url), str(client.api_key))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body (None for 204)."""
        def call() -> Any:
            response = self._http.request(method, path, **kwargs)
            response.raise_for_status()
            return response.json() if response.status_code != 204 and response.content else None
        return guarded(self.url, call)

    def records(self, dataset_id: str) -> Iterator[dict[str, Any]]:
        """Every record of a dataset with its responses and suggestions, read from Argilla's database.

        The listing endpoint reads the SQL store, not the search index, so it does not depend
        on the search engine's filters (which the bundled noida-db does not fully implement).
        """
        offset = 0
        while True:
            page = self.request("GET", f"/datasets/{dataset_id}/records",
                                params={"include": ["responses", "suggestions"], "offset": offset, "limit": PAGE})
            items = page.get("items", [])
            yield from items
            offset += len(items)
            if len(items) < PAGE:
                return

    def question_names(self, dataset_id: str) -> dict[str, str]:
        """Question id -> question name."""
        items = self.request("GET", f"/datasets/{dataset_id}/questions")["items"]
        return {q["id"]: q["name"] for q in items}

    def usernames(self) -> dict[str, str]:
        """User id -> username (needs an owner or admin key)."""
        return {u["id"]: u["username"] for u in self.request("GET", "/users")["items"]}


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
        if isinstance(exc, httpx.HTTPStatusError):
            raise ReviewError(f"Argilla at {url} answered {status} to {exc.request.method} "
                              f"{exc.request.url.path}: {exc.response.text[:300]}") from None
        raise


def _status(exc: BaseException) -> Any:
    for candidate in (exc, exc.__cause__, exc.__context__):
        code = getattr(candidate, "status_code", None)
        if code is None and isinstance(candidate, httpx.HTTPStatusError):
            code = candidate.response.status_code
        if code is not None:
            return code
    return None
