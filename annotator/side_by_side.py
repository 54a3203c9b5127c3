"""Several models labeling at once: one thread per model, each with its own event loop.

Labeling is I/O-bound and each model has its own endpoint limits, so two models online take
about the time of one. Each job owns a :class:`~annotator.breaker.Breaker`: when a job raises
(an endpoint that refuses a model, a full disk) the others' breakers are tripped, so they start
no further request and return (their unstarted items are written as failed with the reason),
and the first error is raised once all have returned. Ctrl-C trips every breaker and is raised
at once; the threads are daemons, so the process exit does not wait for requests in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from annotator.breaker import Breaker

T = TypeVar("T")


def side_by_side(jobs: dict[str, Callable[[], T]], breakers: dict[str, Breaker],
                 report: Callable[[str], None] = lambda line: None) -> dict[str, T]:
    """Run every job in its own thread; return the results by name, in the jobs' order.

    Args:
        jobs: name -> a function doing the work (it uses ``breakers[name]``).
        breakers: name -> the breaker of that job's run.
        report: told at once when a job fails (the others may still be finishing a batch).

    Raises:
        BaseException: the first error a job raised (after every job has returned).
        KeyboardInterrupt: Ctrl-C while waiting (every breaker tripped first).
    """
    results: dict[str, T] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            results[name] = jobs[name]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)
            report(f"model {name} failed ({type(exc).__name__}: {exc}); the other models start no new "
                   f"request and finish what is in flight or in a batch")
            for other, breaker in breakers.items():
                if other != name:
                    breaker.trip(f"stopped: the run of model {name} failed ({type(exc).__name__}: {exc})")

    threads = [threading.Thread(target=work, args=(name,), name=f"label-{name}", daemon=True) for name in jobs]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        for breaker in breakers.values():
            breaker.trip("interrupted")
        raise
    if errors:
        raise errors[0]
    return {name: results[name] for name in jobs}
