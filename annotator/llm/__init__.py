"""The one LLM boundary: the only package that imports ``openai`` and ``instructor``.

``client`` holds the async structured-output client (transport retries owned by tenacity,
validation re-asks by our loop in ``structured``), ``ratelimit`` its pacing, ``probe`` the
``--mode auto`` probe, ``batches`` the Batch API transport; ``translate`` turns what the SDK
raises into our errors. ``endpoint`` is what a client needs to know, ``cache`` the answer cache
(keyed by the request sent), ``usage`` prices and token counts, ``local`` the embedded llama.cpp
server.

May import from the shared modules only.
"""

from typing import Any

__all__ = ["EndpointConfig", "LLMClient", "parameter_fingerprint"]


def __getattr__(name: str) -> Any:
    # imported on first use: ``cache``, ``usage``, ``endpoint`` and ``local`` need no openai import
    if name == "LLMClient":
        from annotator.llm.client import LLMClient

        return LLMClient
    if name in ("EndpointConfig", "parameter_fingerprint"):
        from annotator.llm import endpoint

        return getattr(endpoint, name)
    raise AttributeError(f"module 'annotator.llm' has no attribute {name!r}")
