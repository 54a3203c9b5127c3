"""The worker pool of the LLM stage: a probe first, then concurrent workers with budget and breaker.

The first unit goes alone: an endpoint that cannot serve (refused, unknown host, TLS, 401/403,
404, not a chat API) raises :class:`~annotator.errors.EndpointError` there and stops the run
before the rest is sent. Then ``concurrency`` workers take units from a queue; a unit is not
started once the ``--max-cost`` budget would be exceeded or the circuit breaker is open (its
items get the reason as their error). A mid-run endpoint error is an item failure that feeds the
breaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from annotator.breaker import Breaker
from annotator.errors import EndpointError
from annotator.records import Item

BUDGET_REASON = "not labeled: --max-cost budget reached (a rerun continues)"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Uvloop when installed (less CPU per request), else the default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return None
    return uvloop.new_event_loop


@dataclass
class Unit:
    """One request's worth of work: items (one, or a batch) for one vote."""

    items: list[Item]
    vote: int
    key: str | None = None  # a batch's own request key (single items use the tagger's keys)


@dataclass
class WorkState:
    """Answers and errors per item id, and how many answers came from the cache."""

    answers: dict[str, list[dict[str, Any] | None]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    from_cache: dict[str, int] = field(default_factory=dict)


async def run_pool(units: list[Unit], do_unit: Callable[[Unit], Awaitable[None]], state: WorkState, *,
                   concurrency: int, breaker: Breaker, over_budget: Callable[[int], bool],
                   progress: bool) -> bool:
    """Run every unit; return True when the budget stopped some of them."""
    queue: asyncio.Queue[Unit] = asyncio.Queue()
    for unit in units:
        queue.put_nowait(unit)
    bar = tqdm(total=sum(len(u.items) for u in units), disable=not progress, unit="item", desc="labeling",
               dynamic_ncols=True)
    inflight = [0]
    stopped = [False]

    def done(unit: Unit) -> None:
        bar.update(sum(1 for it in unit.items if state.answers[it.id][unit.vote] is not None
                       or it.id in state.errors))

    first = queue.get_nowait()  # the probe
    try:
        await do_unit(first)
    except BaseException:
        bar.close()
        raise
    done(first)

    async def worker() -> None:
        while not queue.empty():
            unit = queue.get_nowait()
            if breaker.reason is not None:
                for item in unit.items:
                    state.errors.setdefault(item.id, f"not labeled: {breaker.reason}")
                continue
            if over_budget(inflight[0]):
                stopped[0] = True
                for item in unit.items:
                    state.errors.setdefault(item.id, BUDGET_REASON)
                continue
            inflight[0] += len(unit.items)
            try:
                await do_unit(unit)
            except EndpointError as exc:  # mid-run: an item failure that feeds the breaker
                for item in unit.items:
                    state.errors[item.id] = f"{type(exc).__name__}: {exc}"
                breaker.failure(f"{type(exc).__name__}: {exc}", permanent=True)
            finally:
                inflight[0] -= len(unit.items)
            done(unit)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*workers)
    finally:
        bar.close()
    return stopped[0]
