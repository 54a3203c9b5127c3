"""The OpenAI Batch API (``/v1/files`` + ``/v1/batches``) through the openai SDK's public API.

Only transport lives here (upload, create, retrieve, cancel, download); what goes into a batch and
what is done with its answers is :mod:`annotator.labeling.batch`. Errors leave as :mod:`annotator.errors`
types, credentials in the base URL become Basic auth as in the online client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai

from annotator.errors import EndpointError
from annotator.llm.endpoint import EndpointConfig
from annotator.llm.translate import redact, translate, url_credentials

ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "expired", "failed", "cancelled")


class BatchAPI:
    """Files and batches of one endpoint (synchronous: a batch job makes a few calls an hour)."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        base_url, headers = url_credentials(config.base_url, config.api_key)
        self._client = openai.OpenAI(base_url=base_url, api_key=config.api_key or "not-needed", max_retries=4,
                                     timeout=max(config.timeout, 300.0), default_headers=headers)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # openai raises many types; translate every one
            raise translate(exc, self.config) from None

    def check(self) -> None:
        """Fail fast, before any request is planned or paid, when the endpoint has no Batch API.

        Raises:
            EndpointError: ``GET /batches`` answered 404, 405 or 501 (vLLM, llama.cpp, Ollama, ...),
                or the endpoint cannot be reached.
        """
        try:
            self._client.batches.list(limit=1)
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                raise EndpointError(f"{redact(self.config.base_url)} offers no Batch API (GET /batches answered "
                                    f"{exc.status_code}): drop --batch-api (the README's provider table says "
                                    f"which servers have one)") from None
            raise translate(exc, self.config) from None
        except Exception as exc:  # openai raises many types; translate every one
            raise translate(exc, self.config) from None

    def upload(self, path: Path) -> str:
        """Upload a requests file; return its file id."""
        with open(path, "rb") as fh:
            uploaded = self._call(self._client.files.create, file=(path.name, fh), purpose="batch")
        return uploaded.id

    def create(self, file_id: str) -> dict[str, Any]:
        """Create a batch over an uploaded requests file (24 h window)."""
        batch = self._call(self._client.batches.create, input_file_id=file_id, endpoint=ENDPOINT,
                           completion_window="24h")
        return batch.model_dump()

    def find(self, file_id: str) -> dict[str, Any] | None:
        """The batch already created over ``file_id`` (a run killed between create and record), if any."""
        page = self._call(self._client.batches.list, limit=100)
        while True:  # newest first; every page until the file's batch (or the end)
            found = next((b.model_dump() for b in page.data if b.input_file_id == file_id), None)
            if found is not None or not page.has_next_page():
                return found
            page = self._call(page.get_next_page)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """The batch's current state (status, request counts, output and error file ids)."""
        return self._call(self._client.batches.retrieve, batch_id).model_dump()

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Ask the provider to cancel a batch (requests done so far are still billed and kept)."""
        return self._call(self._client.batches.cancel, batch_id).model_dump()

    def lines(self, file_id: str) -> Iterator[str]:
        """A file's lines (batch output or error file), streamed: a 200 MB output is never held whole."""
        try:
            with self._client.files.with_streaming_response.content(file_id) as response:
                yield from (line for line in response.iter_lines() if line.strip())
        except Exception as exc:  # openai raises many types; translate every one
            raise translate(exc, self.config) from None

    def close(self) -> None:
        """Release the HTTP client."""
        self._client.close()
