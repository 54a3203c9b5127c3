"""The circuit breaker of a labeling run: stop paying for a failure that keeps repeating.

Transient failures (timeouts, 429, 5xx, dropped connections) are retried by the transport
layer and never trip it. When the same permanent failure (an endpoint error, a 4xx, an answer
that cannot be valid) ends ``limit`` requests in a row with no success in between, the breaker
opens: no further request is started and every item not yet labeled is written as failed with
``stopped after N identical errors: <reason>`` (exit code 1; a rerun retries them).
"""

from __future__ import annotations

from annotator.errors import EndpointError, LLMError, TransportError

LIMIT = 5
_TRANSIENT = ("request timed out", "connection failed", "HTTP 429", "HTTP 5")


def permanent(exc: LLMError) -> bool:
    """True for failures that retrying the same request cannot fix."""
    if isinstance(exc, EndpointError):
        return True
    if isinstance(exc, TransportError):
        return not str(exc).startswith(_TRANSIENT)
    return True


class Breaker:
    """Counts identical permanent failures in a row; ``reason`` is set once it opens."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.reason: str | None = None
        self._last: str | None = None
        self._count = 0

    def success(self) -> None:
        """A request succeeded: the streak is broken."""
        self._last, self._count = None, 0

    def failure(self, reason: str, *, permanent: bool) -> None:
        """Record a failure; open after ``limit`` identical permanent ones in a row."""
        if not permanent:
            self._last, self._count = None, 0
            return
        self._count = self._count + 1 if reason == self._last else 1
        self._last = reason
        if self._count >= self.limit and self.reason is None:
            self.reason = f"stopped after {self._count} identical errors: {reason}"

    def trip(self, reason: str) -> None:
        """Open from outside (another model's run failed, or Ctrl-C): no further request starts."""
        if self.reason is None:
            self.reason = reason
