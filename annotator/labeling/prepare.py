"""What a labeling run needs before its first request.

The endpoint, the prompts, the probe's request, and the ``--dry-run`` estimate (online and
Batch API prices side by side).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annotator.config import Settings, api_key
from annotator.errors import ConfigError
from annotator.labeling.consistency import SubsetConsistency
from annotator.labeling.cues import load_cues
from annotator.labeling.evidence import Evidence, EvidenceFor
from annotator.labeling.fewshot import (
    CandidatesFor,
    ExamplesFor,
    candidates_for_pool,
    default_pool_path,
    examples_for_pool,
    load_pool,
    pool_fingerprint,
)
from annotator.labeling.prompts import PromptSet
from annotator.labeling.response_models import build_response_model
from annotator.labeling.summary import Summary
from annotator.llm.endpoint import EndpointConfig
from annotator.llm.probe import PROBE_TEXT
from annotator.llm.usage import estimate_answer_tokens, estimate_tokens, price_for
from annotator.records import Item
from annotator.taxonomy import Taxonomy, load_taxonomy


@contextmanager
def endpoint(settings: Settings) -> Iterator[EndpointConfig]:
    """The endpoint to label with: the configured one, or the embedded local server."""
    common = {"mode": settings.mode, "timeout": settings.timeout,
              "transport_retries": settings.transport_retries, "reasks": settings.reasks,
              "rpm": settings.rpm, "tpm": settings.tpm, "pace": settings.pace}
    if not settings.local:
        if not settings.model:
            raise ConfigError("--model (or ANNOTATOR_MODEL) is required with --base-url")
        yield EndpointConfig(base_url=settings.base_url, model=settings.model,
                             api_key=api_key(settings), **common)
        return
    from annotator.llm.local import server_for

    with server_for(settings) as server:
        yield server.endpoint(**common)


def taxonomy_and_prompts(
    settings: Settings,
) -> tuple[Taxonomy, PromptSet, ExamplesFor | None, CandidatesFor | None]:
    """The taxonomy, the prompt set, and ``examples_for`` / ``candidates_for`` when asked for."""
    taxonomy = load_taxonomy(settings.taxonomy)
    examples_for: ExamplesFor | None = None
    candidates_for: CandidatesFor | None = None
    pool_version = ""
    if settings.fewshot or settings.candidates:
        dims = taxonomy.dimensions(settings.kind)
        pool = load_pool(settings.fewshot_pool or default_pool_path(settings.kind), dims)
        if not pool:
            raise ConfigError(f"{settings.fewshot_pool}: no usable rows in the few-shot pool (only confirmed or "
                              "corrected rows count: a pull before anyone reviewed has none); review first, or "
                              "pass --fewshot 0 --candidates 0")
        cues = load_cues(dims, settings.kind) if settings.candidates and settings.cues else None
        if settings.candidates:
            candidates_for = candidates_for_pool(pool, settings.candidates, dims, cues)
        if settings.fewshot:  # with cues, the examples agree with the ranked candidates
            examples_for = examples_for_pool(pool, settings.fewshot, agree_with=candidates_for if cues else None)
        pool_version = f"{pool_fingerprint(pool)}/k{settings.fewshot}/c{settings.candidates}"
        if cues is not None:
            pool_version += f"/cues-{cues.version}"
    prompts = PromptSet(taxonomy, settings.kind, detail=settings.detail,
                        with_confidence=settings.confidence, max_chars=settings.max_chars,
                        pool_version=pool_version)
    return taxonomy, prompts, examples_for, candidates_for


def evidence_rules(taxonomy: Taxonomy, settings: Settings) -> tuple[EvidenceFor | None, SubsetConsistency | None]:
    """What records show (``--evidence``) and the subset check, from the kind's rules in the taxonomy.

    The subset majority is taken with ``--subset-majority``, or by default for the embedded model;
    otherwise outliers are only flagged. Both are off with ``--no-evidence`` or a kind without rules.
    """
    rules = taxonomy.kinds[settings.kind].evidence
    if rules is None or not settings.evidence:
        return None, None
    reader = Evidence(rules, taxonomy.dimensions(settings.kind), answer_field=settings.answer_field,
                      subset_field=settings.subset_field)
    take = settings.local if settings.subset_majority is None else settings.subset_majority
    consistency = SubsetConsistency(rules.consistency, take_majority=take) if rules.consistency.dimensions else None
    return reader, consistency


def probe_request(taxonomy: Taxonomy, settings: Settings) -> Callable[[str], tuple[list[dict[str, str]], Any]]:
    """The probe's request for a prompt detail: the real system prompt, a tiny sample, the answer model."""
    model = build_response_model(taxonomy, settings.kind, rationale=settings.rationale,
                                 confidence=settings.confidence)
    item = Item(id="probe", text=PROBE_TEXT, source="probe")

    def request_for(detail: str) -> tuple[list[dict[str, str]], Any]:
        prompts = PromptSet(taxonomy, settings.kind, detail=detail, with_confidence=settings.confidence,
                            max_chars=settings.max_chars)
        return prompts.messages([item]), model

    return request_for


def dry_run(items: Iterable[Item], settings: Settings, taxonomy: Taxonomy, prompts: PromptSet,
            examples_for: ExamplesFor | None, prices: dict, summary: Summary) -> Summary:
    """Requests, tokens and cost a run would take (online, and with the Batch API); nothing is sent."""
    system_tokens = estimate_tokens(prompts.system)
    answer = estimate_answer_tokens(len(taxonomy.dimensions(settings.kind)), settings.rationale)
    evidence_for, _ = evidence_rules(taxonomy, settings)
    n = prompt = 0
    for it in items:
        n += 1
        said = evidence_for(it).said if evidence_for else ()
        prompt += estimate_tokens(prompts.item_message(it, examples_for(it) if examples_for else (), said))
    requests = -(-n // settings.items_per_request) * settings.votes
    prompt = prompt * settings.votes + system_tokens * requests
    completion = answer * n * settings.votes
    model = settings.model or "local"
    price = None if settings.local else price_for(model, prices)
    return summary.model_copy(update={
        "dry_run": True, "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
        "estimated_cost_usd": 0.0 if settings.local else (price.cost(prompt, completion) if price else None),
        "estimated_batch_cost_usd": price.batch_cost(prompt, completion) if price else None,
        "labeler": f"local:{Path(settings.model_path).name}" if settings.local and settings.model_path
        else ("local" if settings.local else model),
    })
