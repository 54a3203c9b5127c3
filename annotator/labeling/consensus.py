"""Several models, one table: per-model labels side by side, the consensus, agreement as confidence.

``annotator label --model A --model B`` labels every item with each model (same cache, retries
and checks); each model's table goes to ``<output>.models/<model>.parquet`` and this stage joins
them, streaming in lockstep (same input order, one row per id), into the final table (wide):

* ``<dimension>``: the consensus, a majority over the models (ties: the first model's label;
  multi-label: the labels named by more than half the models, by mean position), exactly as
  ``--votes`` combines samples;
* ``<dimension>_confidence``: the agreement, the share of models giving the consensus label;
* ``disagreement``: the dimensions on which the models differ (empty when they all agree);
  ``review push`` puts these records first;
* ``<dimension>__<model>`` and ``<dimension>_confidence__<model>``: each model's own answer;
* ``status``: ``failed`` when any model failed on the item (``error`` names which; a rerun asks
  only that model again, the others come from the cache).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from annotator.errors import InputError
from annotator.io import table_writer
from annotator.labeling.pool import Breaker
from annotator.labeling.votes import combine_votes
from annotator.taxonomy import Dimension

_PER_MODEL = ("rationale", "labeler", "status", "error", "flags")


def column_name(model: str) -> str:
    """A model name as a column suffix: ``gpt-4o-mini`` -> ``gpt_4o_mini``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", model).strip("_") or "model"


def model_tables(output: str | Path, models: list[str]) -> dict[str, Path]:
    """Where each model's own table goes."""
    folder = Path(f"{output}.models")
    return {m: folder / f"{column_name(m)}.parquet" for m in models}


def join_models(tables: dict[str, Path], output: str | Path, dims: list[Dimension]) -> tuple[int, int]:
    """Join per-model tables into the consensus table at ``output``; return (ok, failed) counts.

    Raises:
        InputError: the tables are not row-aligned (a bug, or files edited by hand).
    """
    names = list(tables)
    readers = [pq.ParquetFile(p).iter_batches(batch_size=4096) for p in tables.values()]
    schema = _schema(names, dims, pq.read_schema(next(iter(tables.values()))))
    suffixes, known = [column_name(n) for n in names], _known(dims)  # per table, not per row
    ok = failed = 0
    with table_writer(Path(output), schema) as write:
        for batches in _aligned(readers, tables):
            rows = [b.to_pylist() for b in batches]
            out = [_row(names, suffixes, known, [r[i] for r in rows], dims) for i in range(len(rows[0]))]
            ok += sum(r["status"] == "ok" for r in out)
            failed += sum(r["status"] != "ok" for r in out)
            write(out)
    return ok, failed


def _schema(names: list[str], dims: list[Dimension], first: pa.Schema) -> pa.Schema:
    def label(d: Dimension) -> pa.DataType:
        return pa.list_(pa.string()) if d.multi else pa.string()

    fields = [pa.field(k, pa.string()) for k in ("id", "source", "subset", "kind", "text")]
    for d in dims:
        fields += [pa.field(d.id, label(d)), pa.field(f"{d.id}_confidence", pa.float64())]
    fields += [pa.field(k, pa.string()) for k in ("disagreement", "rationale", "labeler", "taxonomy_version",
                                                  "prompt_version", "status", "error", "flags", "evidence")]
    for n in names:
        for d in dims:
            fields += [pa.field(f"{d.id}__{column_name(n)}", label(d)),
                       pa.field(f"{d.id}_confidence__{column_name(n)}", pa.float64())]
    taken = {f.name for f in fields} | _known(dims)
    fields += [f for f in first if f.name not in taken]  # input fields, as the first model's table has them
    return pa.schema(fields)


def _known(dims: list[Dimension]) -> set[str]:
    known = {"id", "source", "subset", "kind", "text", *_PER_MODEL, "taxonomy_version", "prompt_version", "votes",
             "evidence"}
    return known | {d.id for d in dims} | {f"{d.id}_confidence" for d in dims}


def _aligned(readers: list[Iterator[pa.RecordBatch]], tables: dict[str, Path]) -> Iterator[list[pa.RecordBatch]]:
    for batches in zip(*readers, strict=True):
        ids = [b.column("id").to_pylist() for b in batches]
        if any(i != ids[0] for i in ids[1:]):
            raise InputError(f"per-model tables are not aligned: {', '.join(map(str, tables.values()))}")
        yield list(batches)


def _row(names: list[str], suffixes: list[str], known: set[str], rows: list[dict[str, Any]],
         dims: list[Dimension]) -> dict[str, Any]:
    first = rows[0]
    out: dict[str, Any] = {k: first.get(k) for k in ("id", "source", "subset", "kind", "text")}
    answered = [r for r in rows if r["status"] == "ok"]
    failed = [f"{n}: {r['error']}" for n, r in zip(names, rows, strict=True) if r["status"] != "ok"]
    labels: dict[str, Any] = {}
    agreement: dict[str, float] = {}
    if not failed:
        labels, agreement, _ = combine_votes([{d.id: r[d.id] for d in dims} for r in answered], dims)
    for d in dims:
        out[d.id] = labels.get(d.id)
        out[f"{d.id}_confidence"] = agreement.get(d.id)
    out["disagreement"] = ", ".join(d.id for d in dims if agreement.get(d.id, 1.0) < 1.0) or None
    out["rationale"] = first.get("rationale")
    out["labeler"] = "consensus(" + ", ".join(r.get("labeler") or n for n, r in zip(names, rows, strict=True)) + ")"
    out["taxonomy_version"], out["prompt_version"] = first.get("taxonomy_version"), first.get("prompt_version")
    out["status"] = "failed" if failed else "ok"
    out["error"] = "; ".join(failed) or None
    out["flags"] = "; ".join(f"{n}: {r['flags']}" for n, r in zip(names, rows, strict=True) if r.get("flags")) or None
    out["evidence"] = first.get("evidence")
    for suffix, r in zip(suffixes, rows, strict=True):
        for d in dims:
            out[f"{d.id}__{suffix}"] = r.get(d.id)
            out[f"{d.id}_confidence__{suffix}"] = r.get(f"{d.id}_confidence")
    for key, value in first.items():  # input fields, from the first model's table
        if key not in known and key not in out:
            out[key] = value
    return out


# Several models labeling at once: one thread per model, each with its own event loop.
#
# Labeling is I/O-bound and each model has its own endpoint limits, so two models online take
# about the time of one. Each job owns a :class:`~annotator.labeling.pool.Breaker`: when a job raises
# (an endpoint that refuses a model, a full disk) the others' breakers are tripped, so they start
# no further request and return (their unstarted items are written as failed with the reason),
# and the first error is raised once all have returned. Ctrl-C trips every breaker and is raised
# at once; the threads are daemons, so the process exit does not wait for requests in flight.

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
