"""Where and how to call: the endpoint settings of one run, and the parameters that change answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


@dataclass
class EndpointConfig:
    """Where and how to call.

    Attributes:
        base_url: OpenAI-compatible endpoint (``.../v1``); None for api.openai.com.
        model: model name sent in each request.
        api_key: the key, read from the environment by the caller; never logged.
        mode: ``json_schema`` (structured outputs), ``tools``, ``json`` or ``md_json`` (``auto`` is
            resolved by :mod:`annotator.llm.probe` before a client is made).
        timeout: seconds per HTTP request.
        transport_retries: retries after the first attempt for transient failures.
        reasks: re-asks after an invalid answer.
        backoff_base: first backoff in seconds (doubles each retry, full jitter).
        backoff_max: cap on one backoff (a longer ``Retry-After`` is still honoured).
        provider: label for the ``labeler`` column; None derives it from ``base_url``.
        extra_body: extra request fields.
        rpm: requests per minute by hand (providers without rate-limit headers).
        tpm: tokens per minute by hand.
        pace: pace below the limits and adapt the in-flight window (:mod:`annotator.llm.ratelimit`);
            off: fixed concurrency, 429s only retried.
    """

    base_url: str | None
    model: str
    api_key: str | None = None
    mode: str = "json_schema"
    timeout: float = 120.0
    transport_retries: int = 6
    reasks: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    provider: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    rpm: float | None = None
    tpm: float | None = None
    pace: bool = True

    @property
    def labeler(self) -> str:
        """``provider:model``."""
        if self.provider:
            return f"{self.provider}:{self.model}"
        parsed = urlparse(self.base_url or "https://api.openai.com/v1")
        host = f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)  # never user:password@
        provider = "openai" if host == "api.openai.com" else host
        return f"{provider}:{self.model}"


def parameter_fingerprint(config: EndpointConfig) -> dict[str, Any]:
    """The request parameters that change answers (for cache keys)."""
    return {"model": config.model, "mode": config.mode, "extra_body": config.extra_body,
            "base": config.labeler}
