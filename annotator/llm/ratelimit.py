"""Pacing below the provider's rate limits instead of discovering them through 429s.

OpenAI-compatible providers answer with ``x-ratelimit-limit|remaining|reset-requests|tokens``
headers (reset values such as ``1s``, ``6m0s``, ``20ms``). The :class:`Pacer` is the only owner
of pacing (retries stay with the transport layer):

* two schedulers (requests, tokens), each a token bucket refilled at 95% of the per-minute limit
  with one second's worth of burst: every HTTP attempt reserves one request and its estimated
  tokens (prompt characters / 4 + ``max_tokens`` or 300) before it is sent, and the estimate is
  corrected by the answer's ``usage``; limits come from the headers (the lower of header and
  ``--rpm`` / ``--tpm`` when both exist) or by hand for providers that send none;
* ``remaining`` in a header caps what the scheduler plans on (another client on the same key
  uses the same limit), and ``remaining`` 0 holds new requests until its ``reset``;
* AIMD on the in-flight window: a 429 halves it (at most once per round trip, as TCP does),
  each success adds 1/window (one per round trip), up to ``--concurrency``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any

MARGIN = 0.95
DEFAULT_ANSWER_TOKENS = 300
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_reset(value: str | None) -> float | None:
    """Seconds in a reset header: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s`` or a plain number."""
    if not value:
        return None
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _UNITS[u or None] for n, u in parts)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


class _Bucket:
    """A token bucket in virtual time: a reservation may drive the level below zero (a wait)."""

    def __init__(self, per_minute: float | None) -> None:
        self.manual = per_minute
        self.rate = 0.0
        self.capacity = 1.0
        self.level = 0.0
        self.stamp = time.monotonic()
        if per_minute:
            self.set_limit(per_minute)
            self.level = self.capacity

    @property
    def active(self) -> bool:
        return self.rate > 0

    def set_limit(self, per_minute: float) -> None:
        limit = min(per_minute, self.manual) if self.manual else per_minute
        rate = MARGIN * limit / 60.0
        if rate != self.rate:
            first = not self.active
            self._refill()
            self.rate, self.capacity = rate, max(1.0, rate)
            if first:
                self.level = self.capacity
            self.level = min(self.level, self.capacity)

    def _refill(self) -> None:
        now = time.monotonic()
        if self.active:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def reserve(self, amount: float) -> float:
        """Take ``amount``; return the seconds to wait before sending."""
        if not self.active:
            return 0.0
        self._refill()
        self.level -= amount
        return -self.level / self.rate if self.level < 0 else 0.0

    def refund(self, amount: float) -> None:
        if self.active:
            self._refill()
            self.level = min(self.capacity, self.level + amount)

    def clamp(self, remaining: float) -> None:
        """Never plan on more than the provider says is left (what another client used counts too)."""
        if self.active:
            self._refill()
            self.level = min(self.level, remaining)

    def hold(self, seconds: float) -> None:
        """The provider says nothing is left: nothing starts for ``seconds``."""
        if self.active:
            self._refill()
            self.level = min(self.level, -seconds * self.rate)


class Pacer:
    """Requests/tokens pacing and an AIMD in-flight window for one endpoint."""

    def __init__(self, concurrency: int, *, rpm: float | None = None, tpm: float | None = None,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.max_window = max(1, concurrency)
        self.window = float(self.max_window)
        self.inflight = 0
        self.requests = _Bucket(rpm)
        self.tokens = _Bucket(tpm)
        self.throttled = 0  # 429 answers seen
        self._last_cut = 0.0
        self._rtt = 1.0  # moving average of request durations (seconds)
        self._freed = asyncio.Event()

    @staticmethod
    def estimate(body: Mapping[str, Any]) -> int:
        """Tokens a request counts against the limit: prompt characters / 4 + the answer budget."""
        chars = sum(len(m.get("content") or "") for m in body.get("messages", []) if isinstance(m, dict))
        return chars // 4 + int(body.get("max_tokens") or DEFAULT_ANSWER_TOKENS)

    async def acquire(self, tokens: int) -> float | None:
        """Wait for a place in the window and for the schedulers; return the start time."""
        if not self.enabled:
            return None
        while self.inflight >= int(self.window):
            self._freed.clear()
            await self._freed.wait()
        self.inflight += 1
        wait = max(self.requests.reserve(1), self.tokens.reserve(tokens))
        if wait > 0:
            await asyncio.sleep(wait)
        return time.monotonic()

    def release(self, *, status: int | None, headers: Mapping[str, str] | None, estimated: int,
                used: int | None, started: float | None = None) -> None:
        """Account for a finished attempt: its status, the rate-limit headers, the tokens used."""
        if not self.enabled:
            return
        self.inflight -= 1
        if started is not None:
            self._rtt = 0.9 * self._rtt + 0.1 * (time.monotonic() - started)
        self._freed.set()
        if headers:
            self._read(headers)
        if used is not None:
            self.tokens.refund(estimated - used)
        if status == 429:
            self.throttled += 1
            now = time.monotonic()
            if now - self._last_cut >= self._rtt:
                self.window = max(1.0, self.window / 2)
                self._last_cut = now
        elif status is not None and status < 400:
            self.window = min(float(self.max_window), self.window + 1.0 / self.window)

    def _read(self, headers: Mapping[str, str]) -> None:
        # one pass over the headers (each lookup in an HTTP header map is a scan)
        headers = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}
        if not headers:
            return
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            limit = _number(headers.get(f"x-ratelimit-limit-{name}"))
            if limit and limit > 0:
                bucket.set_limit(limit)
            remaining = _number(headers.get(f"x-ratelimit-remaining-{name}"))
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{name}"))
            if remaining is not None and remaining < 1 and reset:
                bucket.hold(reset)
            elif remaining is not None:
                bucket.clamp(remaining)
