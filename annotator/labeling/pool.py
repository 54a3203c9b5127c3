"""The worker pool of the LLM stage, streaming: bounded windows in, annotations out in input order.

A producer admits chunks of items while fewer than ``window`` items are pending (admitted and
not yet handed out), asks the tagger to *plan* each chunk (cache lookups; the units that still
need a request) and queues those units. ``concurrency`` workers run units. After each unit the
finished items at the head of the window are *finished* (assembled into annotations, their
state dropped) and handed out in input order, so memory depends on the window, not the input.

The first unit goes alone: an endpoint that cannot serve (refused, unknown host, TLS, 401/403,
404, not a chat API) raises :class:`~annotator.errors.EndpointError` there and stops the run
before the rest is sent. A unit is not started once the ``--max-cost`` budget would be exceeded
or the circuit breaker is open (its items get the reason as their error). A mid-run endpoint
error is an item failure that feeds the breaker.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from annotator.errors import EndpointError, LLMError, TransportError
from annotator.records import Annotation, Item

BUDGET_REASON = "not labeled: --max-cost budget reached (a rerun continues)"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Uvloop when installed (less CPU per request), else the default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return None
    return uvloop.new_event_loop


def chunked(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    while chunk := list(itertools.islice(items, size)):
        yield chunk


@dataclass
class Unit:
    """One request's worth of work: items (one, or a batch) for one vote, and what is sent.

    ``request`` is the tagger's :class:`~annotator.labeling.planning.Request`.
    """

    items: list[Item]
    vote: int
    request: Any = None


@dataclass
class WorkState:
    """Per pending item id: answers per vote, error, answers from the cache, flags."""

    answers: dict[str, list[dict[str, Any] | None]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    from_cache: dict[str, int] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)

    def forget(self, item_id: str) -> None:
        """Drop everything kept for a finished item."""
        self.answers.pop(item_id, None)
        self.errors.pop(item_id, None)
        self.from_cache.pop(item_id, None)
        self.flags.pop(item_id, None)


class Lines:
    """Progress as plain lines every few seconds, for a stderr that is not a terminal (CI logs, nohup)."""

    def __init__(self, total: int | None, every: float = 5.0) -> None:
        self.total, self.every, self.done = total, every, 0
        self.started = self.last = time.monotonic()

    def update(self, n: int) -> None:
        """Count ``n`` finished items; print a line when ``every`` seconds have passed."""
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        left = ""
        if self.total and rate > 0:
            seconds = max(0.0, (self.total - self.done) / rate)
            left = f", about {seconds / 60:.0f} min left" if seconds >= 90 else f", about {seconds:.0f} s left"
        print(f"labeling: {self.done}{of} items, {rate:.1f} items/s{left}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """A last line with the totals (runs shorter than one interval print nothing)."""
        now = time.monotonic()
        if self.done and now - self.started >= self.every:
            self._line(now)


class Stream:
    """Runs planned units with bounded concurrency over a bounded window of pending items."""

    def __init__(self, plan: Callable[[list[Item]], list[Unit]], do_unit: Callable[[Unit], Awaitable[None]],
                 finish: Callable[[Item], Annotation], errors: dict[str, str], *, concurrency: int,
                 window: int, breaker: Breaker, over_budget: Callable[[int], bool], progress: bool | str,
                 total: int | None) -> None:
        self.plan, self.do_unit, self.finish, self.errors = plan, do_unit, finish, errors
        self.concurrency = max(1, concurrency)
        self.window = max(window, 1)
        self.breaker, self.over_budget = breaker, over_budget
        self.budget_stopped = False
        self._pending: deque[Item] = deque()
        self._outstanding: dict[str, int] = {}
        self._ready: list[Annotation] = []
        self._queue: asyncio.Queue[Unit | None] = asyncio.Queue()
        self._room, self._wake, self._probed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._probing = False
        self._input_done = False
        self._fatal: BaseException | None = None
        self._inflight = 0
        self._tasks: list[asyncio.Task[None]] = []
        # progress: True = a bar; "auto" = a bar on a terminal, a line every few seconds otherwise; False = none
        lines = progress == "auto" and not sys.stderr.isatty()
        self._bar: tqdm | Lines = Lines(total) if lines else tqdm(
            total=total, disable=not progress, unit="item", desc="labeling", dynamic_ncols=True)

    async def start(self, chunks: Iterator[list[Item]]) -> None:
        """Start the producer and the workers (they run while :meth:`next_ready` is awaited)."""
        self._tasks = [asyncio.create_task(self._produce(chunks))]
        self._tasks += [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]

    async def next_ready(self) -> list[Annotation] | None:
        """The next annotations in input order; None once every item is handed out."""
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._ready:
                out, self._ready = self._ready, []
                self._room.set()
                return out
            if self._input_done and not self._pending:
                return None
            self._wake.clear()
            await self._wake.wait()

    async def stop(self) -> None:
        """Cancel what still runs (normal end, error, or a consumer that stopped reading)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._bar.close()

    # ---- internals ------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._probed.set()
        self._room.set()
        self._wake.set()

    async def _produce(self, chunks: Iterator[list[Item]]) -> None:
        try:
            for chunk in chunks:
                while len(self._pending) + len(self._ready) >= self.window and self._fatal is None:
                    self._room.clear()
                    await self._room.wait()
                if self._fatal is not None:
                    return
                self._pending.extend(chunk)
                for unit in self.plan(chunk):
                    for item in unit.items:
                        self._outstanding[item.id] = self._outstanding.get(item.id, 0) + 1
                    self._queue.put_nowait(unit)
                self._flush()
                await asyncio.sleep(0)
        except BaseException as exc:  # a reader or planning error ends the run with that error
            self._fail(exc)
            raise
        finally:
            self._input_done = True
            for _ in range(self.concurrency):
                self._queue.put_nowait(None)
            self._wake.set()

    async def _worker(self) -> None:
        while (unit := await self._queue.get()) is not None:
            if self._fatal is not None:
                return
            if not self._probed.is_set():
                if self._probing:
                    await self._probed.wait()
                else:
                    await self._probe(unit)
                    continue
            if self._fatal is not None:
                return
            if self.breaker.reason is not None:
                self._give_up(unit, f"not labeled: {self.breaker.reason}")
            elif self.over_budget(self._inflight):
                self.budget_stopped = True
                self._give_up(unit, BUDGET_REASON)
            else:
                await self._run(unit)
            self._done(unit)

    async def _probe(self, unit: Unit) -> None:
        self._probing = True
        try:
            await self.do_unit(unit)
        except BaseException as exc:
            self._fail(exc)
            return
        finally:
            self._probed.set()
        self._done(unit)

    async def _run(self, unit: Unit) -> None:
        self._inflight += len(unit.items)
        try:
            await self.do_unit(unit)
        except EndpointError as exc:  # mid-run: an item failure that feeds the breaker
            reason = f"{type(exc).__name__}: {exc}"
            self._give_up(unit, reason, replace=True)
            self.breaker.failure(reason, permanent=True)
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._inflight -= len(unit.items)

    def _give_up(self, unit: Unit, reason: str, *, replace: bool = False) -> None:
        for item in unit.items:
            if replace:
                self.errors[item.id] = reason
            else:
                self.errors.setdefault(item.id, reason)

    def _done(self, unit: Unit) -> None:
        for item in unit.items:
            self._outstanding[item.id] -= 1
        self._flush()

    def _flush(self) -> None:
        finished = 0
        while self._pending and self._outstanding.get(self._pending[0].id, 0) == 0:
            item = self._pending.popleft()
            self._outstanding.pop(item.id, None)
            self._ready.append(self.finish(item))
            finished += 1
        if finished:
            self._bar.update(finished)
            self._wake.set()


# The circuit breaker of a labeling run: stop paying for a failure that keeps repeating.
#
# Transient failures (timeouts, 429, 5xx, dropped connections) are retried by the transport
# layer and never trip it. When the same permanent failure (an endpoint error, a 4xx, an answer
# that cannot be valid) ends ``limit`` requests in a row with no success in between, the breaker
# opens: no further request is started and every item not yet labeled is written as failed with
# ``stopped after N identical errors: <reason>`` (exit code 1; a rerun retries them).

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
