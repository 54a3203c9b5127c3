"""The pipeline: the only module that composes stages (read -> tag -> write).

``label_files`` backs ``annotator label``; :func:`label` is the Python API mirroring it.
Everything is read and checked before any request is sent, so ``--on-bad-record error``
stops a run that would otherwise pay for half a file.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from annotator.accounting import (
    ANSWER_TOKENS_PER_DIMENSION,
    RATIONALE_TOKENS,
    Counters,
    Summary,
    estimate_tokens,
    load_prices,
    price_for,
    write_json_atomic,
)
from annotator.cache import AnswerCache, default_cache_dir
from annotator.config import Settings, api_key, effective, load_settings
from annotator.errors import BadRecordsError, ConfigError, InputError
from annotator.fewshot import candidate_picker, default_pool_path, example_picker, load_pool, pool_fingerprint
from annotator.guards import check_outputs, output_lock
from annotator.llm import EndpointConfig, LLMClient
from annotator.prompts import Example, PromptSet
from annotator.records import Annotation, Item, Reject
from annotator.sources import SourceSpec, items_from_records, read_items
from annotator.store import rejects_path, to_table, write_rejects, write_table
from annotator.tagging import Tagger, TagOptions
from annotator.taxonomy import Taxonomy, load_taxonomy

OnBad = Literal["error", "skip"]
Picker = Callable[[Item], tuple[Example, ...]]
Restrictor = Callable[[Item], dict[str, list[str]]]
_SHOWN_REJECTS = 20


@dataclass
class Collected:
    """Items ready to label, plus what was rejected or duplicated on the way."""

    items: list[Item]
    rejects: list[Reject]
    duplicate_ids: list[str]


def collect(stream: Iterable[Item | Reject]) -> Collected:
    """Split the source stage's output; keep the first item of each id.

    A repeated id with the same text is a duplicate (reported, the first kept); a repeated id
    whose text differs is a bad record: ``file:line: field 'id': duplicate id with different
    content`` — silently dropping it would lose a sample.
    """
    items: list[Item] = []
    rejects: list[Reject] = []
    seen: dict[str, tuple[str, str]] = {}
    dupes: list[str] = []
    for rec in stream:
        if isinstance(rec, Reject):
            rejects.append(rec)
        elif rec.id in seen:
            first, digest = seen[rec.id]
            if digest == _digest(rec.text):
                dupes.append(rec.id)
            else:
                rejects.append(Reject(location=rec.location, field="id", raw=rec.text[:200],
                                      reason=f"duplicate id {rec.id!r} with different content (first at {first})"))
        else:
            seen[rec.id] = (rec.location, _digest(rec.text))
            items.append(rec)
    return Collected(items, rejects, dupes)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_rejects(collected: Collected, on_bad_record: OnBad) -> None:
    """Raise :class:`BadRecordsError` for bad records under the ``error`` policy."""
    if collected.rejects and on_bad_record == "error":
        shown = "\n".join(r.message() for r in collected.rejects[:_SHOWN_REJECTS])
        more = len(collected.rejects) - _SHOWN_REJECTS
        tail = f"\n... and {more} more" if more > 0 else ""
        raise BadRecordsError(
            f"{len(collected.rejects)} bad record(s); nothing was sent "
            f"(use --on-bad-record skip to label the rest):\n{shown}{tail}",
            collected.rejects,
        )
    if not collected.items:
        raise InputError("no items to label" + (
            f" ({len(collected.rejects)} bad record(s))" if collected.rejects else ""))


@contextmanager
def endpoint(settings: Settings) -> Iterator[EndpointConfig]:
    """The endpoint to label with: the configured one, or the embedded local server."""
    common = {"mode": settings.mode, "timeout": settings.timeout,
              "transport_retries": settings.transport_retries, "reasks": settings.reasks}
    if not settings.local:
        if not settings.model:
            raise ConfigError("--model (or ANNOTATOR_MODEL) is required with --base-url")
        yield EndpointConfig(base_url=settings.base_url, model=settings.model,
                             api_key=api_key(settings), **common)
        return
    from annotator.local import LocalServer

    with LocalServer.from_settings(settings) as server:
        yield server.endpoint(**common)


def _taxonomy_and_prompts(settings: Settings) -> tuple[Taxonomy, PromptSet, Picker | None, Restrictor | None]:
    taxonomy = load_taxonomy(settings.taxonomy)
    picker, restrictor, pool_version = None, None, ""
    if settings.fewshot or settings.candidates:
        dims = taxonomy.dimensions(settings.kind)
        pool = load_pool(settings.fewshot_pool or default_pool_path(settings.kind), dims)
        if settings.fewshot:
            picker = example_picker(pool, settings.fewshot)
        if settings.candidates:
            restrictor = candidate_picker(pool, settings.candidates, dims)
        pool_version = f"{pool_fingerprint(pool)}/k{settings.fewshot}/c{settings.candidates}"
    prompts = PromptSet(taxonomy, settings.kind, detail=settings.detail,
                        with_confidence=settings.confidence, max_chars=settings.max_chars,
                        pool_version=pool_version)
    return taxonomy, prompts, picker, restrictor


def run(
    collected: Collected,
    settings: Settings,
    *,
    output: str | Path | None = None,
    dry_run: bool = False,
    max_cost: float | None = None,
    keep_fields: bool = True,
    progress: bool = False,
) -> tuple[list[Annotation], Summary, pd.DataFrame | None]:
    """Label collected items and write the outputs; return annotations, summary and table."""
    started = time.perf_counter()
    settings = effective(settings)
    if settings.items_per_request > 1 and (settings.fewshot or settings.candidates):
        raise ConfigError("--items-per-request > 1 cannot carry retrieved examples (--fewshot) or candidate "
                          "restrictions (--candidates), which are per item: use one of them (set --fewshot 0 "
                          "--candidates 0 to batch)")
    if output and not dry_run:
        check_outputs(output)
    taxonomy, prompts, picker, restrictor = _taxonomy_and_prompts(settings)
    prices = load_prices(settings.prices_file, settings.prices)
    summary = Summary(items=len(collected.items), rejected=len(collected.rejects),
                      duplicates=len(collected.duplicate_ids),
                      duplicate_ids=sorted(set(collected.duplicate_ids))[:100],
                      taxonomy_version=taxonomy.version, prompt_version=prompts.version)
    if output and collected.rejects:
        summary.rejects_file = str(write_rejects(collected.rejects, rejects_path(output)))
    if dry_run:
        return [], _dry_run(collected.items, settings, taxonomy, prompts, picker, prices, summary), None
    counters = Counters()
    with endpoint(settings) as cfg:
        price = price_for(cfg.model, prices) if not settings.local else None
        if max_cost is not None and price is None and not settings.local:
            raise ConfigError(f"--max-cost needs a price for model {cfg.model!r}: add it with --prices FILE")
        cache = AnswerCache(None if settings.no_cache else (settings.cache_dir or default_cache_dir()))
        options = TagOptions(kind=settings.kind, concurrency=settings.concurrency, votes=settings.votes,
                             items_per_request=settings.items_per_request,
                             temperature=settings.temperature, max_tokens=settings.max_tokens,
                             max_cost=max_cost, rationale=settings.rationale,
                             confidence=settings.confidence, progress=progress)
        try:
            tagger = Tagger(LLMClient(cfg, counters, settings.concurrency), taxonomy, prompts, cache, options,
                            price, examples_for=picker, candidates_for=restrictor)
            annotations = list(tagger.run(collected.items))
        finally:
            cache.close()
    table = to_table(annotations, taxonomy.dimensions(settings.kind), keep_fields=keep_fields)
    if output:
        summary.output = str(write_table(table, output))
    failed = [a for a in annotations if a.status == "failed"]
    reasons: dict[str, int] = {}
    for a in failed:
        reasons[a.error or "unknown"] = reasons.get(a.error or "unknown", 0) + 1
    wall = time.perf_counter() - started
    summary = summary.model_copy(update={
        **counters.model_dump(), "ok": len(annotations) - len(failed), "failed": len(failed),
        "cached": tagger.cached_items,
        "estimated_cost_usd": 0.0 if settings.local else (
            price.cost(counters.prompt_tokens, counters.completion_tokens, counters.cached_prompt_tokens)
            if price else None),
        "wall_seconds": round(wall, 3), "items_per_second": round(len(annotations) / wall, 2) if wall else 0.0,
        "labeler": cfg.labeler, "budget_stopped": tagger.budget_stopped,
        "failed_ids": [a.id for a in failed][:1000], "failure_reasons": reasons,
    })
    if output:
        write_json_atomic(Path(f"{output}.summary.json"), summary.model_dump())
    return annotations, summary, table.to_pandas()


def _dry_run(items: list[Item], settings: Settings, taxonomy: Taxonomy, prompts: PromptSet,
             picker: Picker | None, prices: dict, summary: Summary) -> Summary:
    system_tokens = estimate_tokens(prompts.system)
    n_dims = len(taxonomy.dimensions(settings.kind))
    answer = n_dims * ANSWER_TOKENS_PER_DIMENSION + (RATIONALE_TOKENS if settings.rationale else 0)
    per_request = settings.items_per_request
    requests = -(-len(items) // per_request) * settings.votes
    prompt = sum(estimate_tokens(prompts.item_message(it, picker(it) if picker else ()))
                 for it in items) * settings.votes
    prompt += system_tokens * requests
    completion = answer * len(items) * settings.votes
    model = settings.model or "local"
    price = None if settings.local else price_for(model, prices)
    return summary.model_copy(update={
        "dry_run": True, "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
        "estimated_cost_usd": 0.0 if settings.local else (price.cost(prompt, completion) if price else None),
        "labeler": f"local:{Path(settings.model_path).name}" if settings.local and settings.model_path
        else ("local" if settings.local else model),
    })


def label_files(
    paths: list[str],
    output: str | Path | None,
    spec: SourceSpec,
    settings: Settings,
    *,
    on_bad_record: OnBad = "error",
    **kwargs: Any,
) -> Summary:
    """Read files, label their items, write the table and summary (``annotator label``)."""
    if output is not None and not kwargs.get("dry_run"):
        check_outputs(output)
    with output_lock(None if kwargs.get("dry_run") else output):
        collected = collect(read_items(paths, spec))
        check_rejects(collected, on_bad_record)
        return run(collected, settings, output=output, **kwargs)[1]


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
    resolved = load_settings(settings, config)
    if isinstance(data, pd.DataFrame):
        records: Iterable[Any] = data.to_dict("records")
    else:
        records = list(data)
    if records and all(isinstance(r, Item) for r in records):
        collected = collect(records)
    else:
        spec = SourceSpec(text_field=text_field, template=template, id_field=id_field, source=source)
        collected = collect(items_from_records(records, spec, name=source or "records"))
    check_rejects(collected, on_bad_record)
    _, _, table = run(collected, resolved, output=output, keep_fields=keep_fields, max_cost=max_cost)
    assert table is not None
    return table
