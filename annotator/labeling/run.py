"""The pipeline: the only module that composes stages (read -> tag -> write).

``label_files`` backs ``annotator label``; :func:`label` is the Python API mirroring it.
Two passes over the input: a cheap checking pass (:mod:`annotator.labeling.scan`) before any request is
sent, so ``--on-bad-record error`` stops a run that would otherwise pay for half a file; then
the labeling pass streams items through the LLM stage in bounded windows and the writer appends
parts as rows finish, so memory stays flat from thousands to millions of items. The LLM stage is
one :class:`~annotator.labeling.session.Session` per model.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from annotator.config import Settings, load_settings
from annotator.errors import ConfigError
from annotator.io import write_json_atomic
from annotator.labeling.consensus import join_models, model_tables, side_by_side
from annotator.labeling.guards import check_outputs, output_lock
from annotator.labeling.pool import Breaker
from annotator.labeling.prepare import dry_run as estimate
from annotator.labeling.scan import Scan, Source, check_rejects, labelable, scan
from annotator.labeling.session import Session
from annotator.labeling.sources import SourceSpec, items_from_records, read_items
from annotator.labeling.store import TableWriter, read_table, rejects_path, write_rejects
from annotator.labeling.summary import Summary, Tally
from annotator.labeling.uptodate import as_rerun, finished, job_fingerprint, sealed
from annotator.records import Item, Reject
from annotator.taxonomy import load_taxonomy

if TYPE_CHECKING:
    import pandas as pd

OnBad = Literal["error", "skip"]


@dataclass(frozen=True)
class Job:
    """What one run writes and how (see :func:`run`'s arguments)."""

    output: str | Path
    dry_run: bool = False
    max_cost: float | None = None
    keep_fields: bool = True
    progress: bool | str = False


def run(
    source: Source,
    found: Scan,
    settings: Settings,
    *,
    output: str | Path,
    dry_run: bool = False,
    max_cost: float | None = None,
    keep_fields: bool = True,
    progress: bool | str = False,
) -> Summary:
    """Label the checked input, streaming: read -> tag -> write parts -> commit table and summary.

    With several models (``settings.models``) each labels every item into
    ``<output>.models/<model>.parquet`` and :mod:`annotator.labeling.consensus` joins them into ``output``.
    The models label side by side (:mod:`annotator.labeling.consensus`), each with an equal share of
    ``max_cost``: two models take about the time of one, online or through the Batch API.

    Args:
        source: reads the input from the start (called again for the labeling pass).
        found: the checking pass over the same input (:func:`annotator.labeling.scan.scan`).
        settings: resolved settings.
        output: the labels table (``.parquet`` or ``.jsonl``); parts go to ``<output>.parts/``.
        dry_run: estimate requests, tokens and cost; send nothing, write nothing.
        max_cost: stop starting requests at this estimated spend (USD), all models together.
        keep_fields: keep input fields as columns.
        progress: show a progress bar.
    """
    job = Job(output=output, dry_run=dry_run, max_cost=max_cost, keep_fields=keep_fields, progress=progress)
    if len(settings.models) < 2:
        return _run_one(source, found, settings, job)
    if not settings.base_url:
        raise ConfigError("--model given several times needs an endpoint (--base-url) serving those models")
    started = time.perf_counter()
    if not dry_run:
        check_outputs(output)
    tables = model_tables(output, settings.models)
    breakers = {name: Breaker() for name in tables}

    def one(name: str) -> Summary:  # each model gets an equal share of the budget
        share = replace(job, output=tables[name], progress=progress if name == settings.models[0] else False,
                        max_cost=None if max_cost is None else max_cost / len(tables))
        return _run_one(source, found, settings.model_copy(update={"model": name, "models": []}), share,
                        breaker=breakers[name])

    jobs = {name: functools.partial(one, name) for name in tables}
    per_model = {name: job() for name, job in jobs.items()} if dry_run else side_by_side(
        jobs, breakers, report=lambda line: print(line, file=sys.stderr, flush=True))
    summary = Summary.combined(per_model)
    if dry_run:
        return summary
    dims = load_taxonomy(settings.taxonomy).dimensions(settings.kind)
    ok, failed = join_models(tables, output, dims)
    wall = time.perf_counter() - started
    summary = summary.model_copy(update={
        "ok": ok, "failed": failed, "output": str(output), "wall_seconds": round(wall, 3),
        "items_per_second": round((ok + failed) / wall, 2) if wall else 0.0,
        "rejects_file": str(write_rejects(found.rejects, rejects_path(output))) if found.rejects else None,
    })
    write_json_atomic(Path(f"{output}.summary.json"), summary.model_dump())
    return summary


def _run_one(source: Source, found: Scan, settings: Settings, job: Job, breaker: Breaker | None = None) -> Summary:
    """One model: the streaming run (see :func:`run`); ``breaker`` lets a caller stop it."""
    started = time.perf_counter()
    output = job.output
    session = Session(settings, max_cost=job.max_cost, progress=job.progress, total=found.labelable, breaker=breaker)
    if not job.dry_run:
        check_outputs(output)
    summary = Summary(items=found.labelable, rejected=len(found.rejects), duplicates=len(found.duplicate_ids),
                      duplicate_ids=sorted(set(found.duplicate_ids))[:100],
                      taxonomy_version=session.taxonomy.version, prompt_version=session.prompts.version)
    if job.dry_run:
        return estimate(labelable(source, found), session.settings, session.taxonomy, session.prompts,
                        session.examples_for, session.prices, summary)
    if found.rejects:
        summary.rejects_file = str(write_rejects(found.rejects, rejects_path(output)))
    tally = Tally()
    with session:
        if session.settings.batch_api:
            session.through_batches(labelable(source, found), output)
        consistency = session.consistency()
        writer = TableWriter(output, session.dims, keep_fields=job.keep_fields, with_votes=session.settings.votes > 1,
                             input_text=found.input_text_differs)
        try:
            for annotation in session.label(labelable(source, found)):
                tally.add(annotation)
                if consistency is not None:
                    consistency.observe(annotation)
                writer.add(annotation)
            summary.output = str(writer.commit(revise=consistency.reviser() if consistency else None))
            if consistency is not None:
                summary.subset_outliers, summary.subset_majority_taken = consistency.outliers, consistency.taken
                summary.subset_uniformity = consistency.uniformity()
        finally:
            writer.discard()
    wall = time.perf_counter() - started
    summary = summary.model_copy(update={
        **session.summary(), "ok": tally.ok, "failed": tally.failed,
        "wall_seconds": round(wall, 3),
        "items_per_second": round((tally.ok + tally.failed) / wall, 2) if wall else 0.0,
        "failed_ids": tally.failed_ids, "failure_reasons": tally.reasons,
        "reasked_by_evidence": tally.reasked,
    })
    write_json_atomic(Path(f"{output}.summary.json"), summary.model_dump())
    return summary


def label_files(
    paths: list[str],
    output: str | Path,
    spec: SourceSpec,
    settings: Settings,
    *,
    on_bad_record: OnBad = "error",
    recheck: bool = False,
    **kwargs: Any,
) -> Summary:
    """Read files, label their items, write the table and summary (``annotator label``).

    A finished job run again is up to date (:mod:`annotator.labeling.uptodate`): its table is
    returned as it is, nothing sent or read from the cache, unless ``recheck`` (answer every
    item again from the cache, each answer validated again).
    """
    started = time.perf_counter()
    dry_run = bool(kwargs.get("dry_run"))
    if not dry_run:
        check_outputs(output, paths)
    with output_lock(None if dry_run else output):
        fingerprint = None if dry_run or settings.no_cache else job_fingerprint(
            paths, spec, settings, on_bad_record=on_bad_record, keep_fields=kwargs.get("keep_fields", True))
        done = finished(output, fingerprint) if fingerprint and not recheck else None
        if done is not None:
            summary = as_rerun(done, time.perf_counter() - started)
            write_json_atomic(Path(f"{output}.summary.json"), summary.model_dump())
            return summary

        def source() -> Iterator[Item | Reject]:
            return read_items(paths, spec)

        found = scan(source)
        check_rejects(found, on_bad_record)
        summary = run(source, found, settings, output=output, **kwargs)
        if not dry_run:
            summary = sealed(summary, fingerprint)
            write_json_atomic(Path(f"{output}.summary.json"), summary.model_dump())
        return summary


def label(
    data: pd.DataFrame | Iterable[dict[str, Any]] | Iterable[Item],
    *,
    text_field: str | None = None,
    template: str | None = None,
    id_field: str | None = None,
    source: str | None = None,
    on_bad_record: OnBad = "error",
    output: str | Path | None = None,
    keep_fields: bool = True,
    max_cost: float | None = None,
    config: str | Path | None = None,
    **settings: Any,
) -> pd.DataFrame:
    """Label records and return the labels table (the Python API of ``annotator label``).

    Args:
        data: a DataFrame, an iterable of dicts, or of :class:`Item`.
        text_field: field holding the text (as ``--text-field``).
        template: Jinja template over the record's fields (as ``--template``).
        id_field: field holding a stable id (as ``--id-field``).
        source: value of the ``source`` column (as ``--source``).
        on_bad_record: ``error`` (raise before sending anything) or ``skip``.
        output: also write the table (and summary) there.
        keep_fields: keep input fields as columns.
        max_cost: stop starting requests at this estimated spend (USD).
        config: an ``annotator.toml`` path.
        **settings: any :class:`~annotator.config.Settings` field (``base_url``, ``model``,
            ``kind``, ``concurrency``, ``votes``, ``items_per_request``, ``cache_dir``, ...).
    """
    import pandas as pd  # the Python API's DataFrames; the command line never needs pandas

    resolved = load_settings(settings, config)
    records: list[Any] = data.to_dict("records") if isinstance(data, pd.DataFrame) else list(data)
    spec = SourceSpec(text_field=text_field, template=template, id_field=id_field, source=source)

    def read() -> Iterable[Item | Reject]:
        if records and all(isinstance(r, Item) for r in records):
            return records
        return items_from_records(records, spec, name=source or "records")

    found = scan(read)
    check_rejects(found, on_bad_record)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(output) if output is not None else Path(tmp) / "labels.parquet"
        with output_lock(output):
            run(read, found, resolved, output=path, keep_fields=keep_fields, max_cost=max_cost)
        return read_table(path).to_pandas()
