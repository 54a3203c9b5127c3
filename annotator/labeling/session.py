"""The LLM stage as one interface: a labeling session.

A :class:`Session` resolves the settings once into what the stage needs (taxonomy, prompt set,
retrieved examples and candidates, evidence rules, prices, :class:`TagOptions`), then, when
entered, opens the answer cache, the endpoint (the embedded server starts here, once), runs the
``--mode auto`` probe, and builds one client, one tagger and one event loop. Through it:

* :meth:`Session.label` labels any number of item streams (``annotator label`` once; the corpus
  side's ``--llm-below`` once per batch of unsure documents, on the same client and loop);
* :meth:`Session.through_batches` answers what the cache cannot through the Batch API first;
* :meth:`Session.summary` is what the stage did (requests, tokens, cost, cached, labeler), the
  one place these counts are read.

Requests are planned once (:mod:`annotator.labeling.planning`); answers come from the cache, a
batch or the endpoint, and every one is validated the same way (:mod:`annotator.labeling.tagging`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from annotator.config import Settings, effective
from annotator.errors import ConfigError
from annotator.labeling.batch import BatchCounts, through_batches
from annotator.labeling.consistency import SubsetConsistency
from annotator.labeling.planning import TagOptions
from annotator.labeling.pool import Breaker, loop_factory
from annotator.labeling.prepare import endpoint, evidence_rules, probe_request, taxonomy_and_prompts
from annotator.labeling.tagging import Tagger
from annotator.llm.cache import AnswerCache, default_cache_dir
from annotator.llm.client import LLMClient
from annotator.llm.endpoint import EndpointConfig
from annotator.llm.probe import choose
from annotator.llm.usage import Counters, load_prices, price_for, run_cost
from annotator.records import Annotation, Item


def check_combinations(settings: Settings) -> None:
    """Refuse settings that cannot work together, before anything is opened or sent.

    Raises:
        ConfigError: ``--batch-api`` with several items per request, candidates or the embedded
            model; several items per request with retrieved examples or candidates.
    """
    if settings.batch_api and (settings.items_per_request > 1 or settings.candidates or settings.local):
        raise ConfigError("--batch-api sends one item per request without --candidates, to an external "
                          "--base-url: drop --items-per-request/--candidates (the Batch API already halves the price)")
    if settings.items_per_request > 1 and (settings.fewshot or settings.candidates):
        raise ConfigError("--items-per-request > 1 cannot carry retrieved examples (--fewshot) or candidate "
                          "restrictions (--candidates), which are per item: use one of them (set --fewshot 0 "
                          "--candidates 0 to batch)")


class Session:
    """One model's labeling stage, opened once and used for any number of item streams.

    Args:
        settings: resolved settings (:func:`annotator.config.load_settings`); defaults that depend
            on the endpoint (the embedded model's) are applied here, once.
        max_cost: stop starting requests at this estimated spend (USD), all streams together.
        progress: a progress bar (True, False or "auto").
        total: items expected (the progress bar's length).
        breaker: lets a caller stop the session (several models side by side).
    """

    def __init__(self, settings: Settings, *, max_cost: float | None = None, progress: bool | str = False,
                 total: int | None = None, breaker: Breaker | None = None) -> None:
        self.settings = effective(settings)
        check_combinations(self.settings)
        self.max_cost = max_cost
        self.progress, self.total, self.breaker = progress, total, breaker
        self.taxonomy, self.prompts, self.examples_for, self.candidates_for = taxonomy_and_prompts(self.settings)
        self.prices = load_prices(self.settings.prices_file, self.settings.prices)
        self.counters = Counters()
        self.structured_output = ""
        self.batches: BatchCounts | None = None
        self.tagger: Tagger | None = None
        self.config: EndpointConfig | None = None
        self._stack = ExitStack()
        self._runner: asyncio.Runner | None = None

    @property
    def dims(self) -> list[Any]:
        """The dimensions labeled (of the settings' kind)."""
        return self.taxonomy.dimensions(self.settings.kind)

    def consistency(self) -> SubsetConsistency | None:
        """A fresh subset-consistency check for one output table (None when the kind has no rules)."""
        return evidence_rules(self.taxonomy, self.settings)[1]

    # ---- opening and closing ------------------------------------------------------------------
    def __enter__(self) -> Session:
        """Open the cache and the endpoint, probe it, build the client, the tagger and the event loop.

        Raises:
            ConfigError: ``max_cost`` without a price for the model; an unusable endpoint or cache.
        """
        settings, stack = self.settings, self._stack
        try:
            cache = AnswerCache(None if settings.no_cache else (settings.cache_dir or default_cache_dir()))
            stack.callback(cache.close)
            cfg = stack.enter_context(endpoint(settings))
            price = price_for(cfg.model, self.prices) if not settings.local else None
            if self.max_cost is not None and price is None and not settings.local:
                raise ConfigError(f"--max-cost needs a price for model {cfg.model!r}: add it with --prices FILE")
            cfg = self._structured_output(cfg, cache)
            options = TagOptions(kind=settings.kind, concurrency=settings.concurrency, votes=settings.votes,
                                 items_per_request=settings.items_per_request, temperature=settings.temperature,
                                 max_tokens=settings.max_tokens, max_cost=self.max_cost,
                                 rationale=settings.rationale, confidence=settings.confidence,
                                 progress=self.progress, total=self.total)
            evidence_for, _ = evidence_rules(self.taxonomy, settings)
            self.tagger = Tagger(LLMClient(cfg, self.counters, settings.concurrency), self.taxonomy, self.prompts,
                                 cache, options, price, examples_for=self.examples_for,
                                 candidates_for=self.candidates_for, breaker=self.breaker,
                                 evidence_for=evidence_for, constrain=settings.local)
            self.config = cfg
            self._runner = stack.enter_context(asyncio.Runner(loop_factory=loop_factory()))
            client = self.tagger.client
            stack.callback(lambda: self._runner.run(client.close()) if self._runner else None)
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client, the event loop, the endpoint (the embedded server) and the cache."""
        self._stack.close()
        self._runner = None

    def _structured_output(self, cfg: EndpointConfig, cache: AnswerCache) -> EndpointConfig:
        """The structured-output mode: probed with ``--mode auto`` (the prompts follow what it chose)."""
        settings = self.settings
        if cfg.mode == "auto" and settings.batch_api:  # the Batch API is OpenAI's: structured outputs
            cfg = dataclasses.replace(cfg, mode="json_schema")
        if cfg.mode != "auto":  # not probed: say what was used and who chose it (never an empty field)
            chosen = "the embedded model's default" if settings.local else "--mode"
            self.structured_output = f"structured output {cfg.mode}, {settings.detail} prompt ({chosen})"
            return cfg
        choice = choose(cfg, probe_request(self.taxonomy, settings), detail=settings.detail,
                        max_chars=settings.max_chars, max_tokens=settings.max_tokens, counters=self.counters,
                        cache=cache, version=f"{self.taxonomy.version}/{self.prompts.version}")
        self.settings = settings.model_copy(update={"detail": choice.detail,
                                                    "max_chars": choice.max_chars or settings.max_chars})
        self.taxonomy, self.prompts, self.examples_for, self.candidates_for = taxonomy_and_prompts(self.settings)
        self.structured_output = choice.text()
        return dataclasses.replace(cfg, mode=choice.mode)

    # ---- the stage ------------------------------------------------------------------------------
    def label(self, items: Iterable[Item]) -> Iterator[Annotation]:
        """Stage: one annotation per item, in input order, on the session's client and event loop."""
        if self.tagger is None or self._runner is None:
            raise RuntimeError("a Session labels inside `with Session(...) as session:`")
        return self.tagger.run(items, runner=self._runner)

    def through_batches(self, items: Iterable[Item], output: str | Path) -> BatchCounts:
        """Answer through the Batch API what the cache cannot (before :meth:`label` sends the rest)."""
        if self.tagger is None:
            raise RuntimeError("a Session labels inside `with Session(...) as session:`")
        self.batches = through_batches(self.tagger, items, output, batch_size=self.settings.batch_size,
                                       poll=self.settings.batch_poll)
        return self.batches

    def summary(self) -> dict[str, Any]:
        """What the stage did, as :class:`~annotator.labeling.summary.Summary` fields."""
        tagger = self.tagger
        assert tagger is not None and self.config is not None
        return {
            **self.counters.model_dump(),
            "cached": tagger.cached_items,
            "estimated_cost_usd": 0.0 if self.settings.local else run_cost(tagger.price, self.counters, self.batches),
            "labeler": self.config.labeler,
            "budget_stopped": tagger.budget_stopped,
            "prompt_version": self.prompts.version,
            "structured_output": self.structured_output,
            "batch": self.batches.model_dump() if self.batches else None,
        }
