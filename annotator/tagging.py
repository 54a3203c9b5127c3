"""Tagging stage: items -> annotations through the LLM, streaming in input order (:mod:`annotator.pool`).

Work is split into *units* (one vote for one item, or for a batch with ``items_per_request > 1``).
Planning looks each unit up in the answer cache; the rest are sent. A unit that fails after all
retries marks its items failed with the reason; a batched answer missing an item sends it again
alone. With ``max_cost`` no unit starts once the projected spend reaches the budget (the items not
started are written as failed, so a rerun continues). Assembly is :func:`annotator.votes.assemble`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from annotator.accounting import Price
from annotator.breaker import Breaker, permanent
from annotator.cache import AnswerCache, request_key
from annotator.errors import EndpointError, LLMError
from annotator.llm import LLMClient, parameter_fingerprint
from annotator.pool import Stream, chunked, loop_factory
from annotator.pool import Unit as _Unit
from annotator.pool import WorkState as _State
from annotator.prompts import Example, PromptSet
from annotator.records import Annotation, Item
from annotator.response_models import build_batch_model, build_response_model
from annotator.taxonomy import Taxonomy
from annotator.votes import assemble


@dataclass
class TagOptions:
    """Tagging knobs (see ``annotator label --help``)."""

    kind: str = "eval"
    concurrency: int = 16
    votes: int = 1
    items_per_request: int = 1
    temperature: float | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    rationale: bool = True
    confidence: bool = True
    progress: bool = False
    total: int | None = None  # items expected (progress bar)
    window: int = 4096  # most items pending at once (at least 2 x concurrency x items per request)

    def effective_temperature(self) -> float:
        """0 for a single vote, 0.7 when several votes must differ (unless set)."""
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.votes == 1 else 0.7


class Tagger:
    """Labels items with one LLM endpoint, one taxonomy kind and one prompt set."""

    def __init__(
        self,
        client: LLMClient,
        taxonomy: Taxonomy,
        prompts: PromptSet,
        cache: AnswerCache,
        options: TagOptions,
        price: Price | None = None,
        examples_for: Callable[[Item], tuple[Example, ...]] | None = None,
        candidates_for: Callable[[Item], dict[str, list[str]]] | None = None,
    ) -> None:
        self.client = client
        self.taxonomy = taxonomy
        self.prompts = prompts
        self.cache = cache
        self.options = options
        self.price = price
        self.examples_for = examples_for
        self.candidates_for = candidates_for
        self._restricted: dict[str, type[BaseModel]] = {}
        self._restriction: dict[str, dict[str, list[str]]] = {}
        self.dims = taxonomy.dimensions(options.kind)
        self.model = build_response_model(
            taxonomy, options.kind, rationale=options.rationale, confidence=options.confidence
        )
        self.batch_model: type[BaseModel] | None = None
        if options.items_per_request > 1:
            entry = build_response_model(
                taxonomy, options.kind, rationale=options.rationale,
                confidence=options.confidence, with_id=True,
            )
            self.batch_model = build_batch_model(entry)
        system_hash = hashlib.sha256(prompts.system.encode()).hexdigest()
        self._key_base = {
            "params": parameter_fingerprint(client.config),
            "temperature": options.effective_temperature(),
            "max_tokens": options.max_tokens,
            "schema": request_key(self.model.model_json_schema()),
            "system": system_hash,
            "taxonomy": taxonomy.version,
            "prompt": prompts.version,
        }
        self.cached_items = 0
        self.budget_stopped = False
        self.breaker = Breaker()
        self._user: dict[str, str] = {}  # rendered single-item user messages, by pending item id
        self.state = _State()

    # ---- cache keys -------------------------------------------------------------------------
    def _key(self, item: Item, vote: int) -> str:
        user = self._user.get(item.id)
        if user is None:
            examples = self.examples_for(item) if self.examples_for else ()
            user = self._user[item.id] = self.prompts.item_message(item, examples)
            if self.candidates_for is not None:
                self._restriction[item.id] = self.candidates_for(item)
        return request_key({**self._key_base, "user": user, "vote": vote,
                            "restrict": self._restriction.get(item.id)})

    def _model_for(self, item: Item) -> type[BaseModel]:
        """The answer model, restricted to the item's candidate labels when candidates are on."""
        restrict = self._restriction.get(item.id)
        if not restrict:
            return self.model
        key = request_key(restrict)
        model = self._restricted.get(key)
        if model is None:
            opts = self.options
            model = build_response_model(self.taxonomy, opts.kind, rationale=opts.rationale,
                                         confidence=opts.confidence, restrict=restrict)
            self._restricted[key] = model
        return model

    def _still_valid(self, item: Item, answer: dict[str, Any]) -> bool:
        """A cached answer is used only if it validates against today's answer model."""
        try:
            self._model_for(item).model_validate(answer)
        except (ValidationError, TypeError):
            return False
        return True

    def _messages(self, items: list[Item]) -> list[dict[str, str]]:
        if len(items) == 1 and items[0].id in self._user:
            return [{"role": "system", "content": self.prompts.system},
                    {"role": "user", "content": self._user[items[0].id]}]
        return self.prompts.messages(items)

    # ---- the stage --------------------------------------------------------------------------
    def run(self, items: Iterable[Item]) -> Iterator[Annotation]:
        """Stage: yield one annotation per item, in input order, holding a bounded window."""
        opts = self.options
        self.state = _State()
        size = opts.items_per_request
        stream = Stream(self._plan, self._do_unit, self._finish, self.state.errors,
                        concurrency=opts.concurrency, window=max(opts.window, 2 * opts.concurrency * size),
                        breaker=self.breaker, over_budget=self._over_budget, progress=opts.progress,
                        total=opts.total)
        # chunks are a multiple of the batch size, so batches are cut from every item in input order
        # and a rerun forms the same requests
        chunks = chunked(iter(items), size * max(1, 64 // size))
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            try:
                runner.run(stream.start(chunks))
                while (ready := runner.run(stream.next_ready())) is not None:
                    yield from ready
            finally:
                self.budget_stopped = stream.budget_stopped
                runner.run(stream.stop())
                runner.run(self.client.close())

    def _hit(self, item: Item, vote: int, answer: Any) -> bool:
        """Use a cached answer if it still validates (else it is dropped by the caller)."""
        if answer is None or not self._still_valid(item, answer):
            return False
        self.state.answers[item.id][vote] = answer
        self.state.from_cache[item.id] = self.state.from_cache.get(item.id, 0) + 1
        return True

    def _single(self, item: Item, vote: int) -> bool:
        key = self.state.keys[(item.id, vote)] = self._key(item, vote)
        found = self.cache.get(key)
        if found is not None and not self._hit(item, vote, found):
            self.cache.delete(key)
            return False
        return found is not None

    def _batch_key(self, batch: list[Item], vote: int) -> str:
        """The key of the batched request actually sent (its user message and batch schema)."""
        assert self.batch_model is not None
        return request_key({**self._key_base, "user": self.prompts.batch_message(batch), "vote": vote,
                            "schema": request_key(self.batch_model.model_json_schema())})

    def _plan(self, chunk: list[Item]) -> list[_Unit]:
        """Cache lookups for a chunk; return the units that still need a request."""
        units: list[_Unit] = []
        size = self.options.items_per_request
        for item in chunk:
            self.state.answers[item.id] = [None] * self.options.votes
        for vote in range(self.options.votes):
            if size == 1:
                units += [_Unit([item], vote) for item in chunk if not self._single(item, vote)]
                continue
            for i in range(0, len(chunk), size):
                batch = chunk[i : i + size]
                bkey = self._batch_key(batch, vote)
                found = self.cache.get(bkey) or {}
                rest = [it for it in batch if not self._hit(it, vote, found.get(it.id))
                        and not self._single(it, vote)]
                if len(rest) == len(batch):
                    units.append(_Unit(batch, vote, bkey))
                else:  # partly answered before: the rest alone
                    units += [_Unit([it], vote) for it in rest]
        return units

    def _over_budget(self, inflight_items: int) -> bool:
        if self.options.max_cost is None or self.price is None:
            return False
        counters = self.client.counters
        spent = self.price.cost(counters.prompt_tokens, counters.completion_tokens)
        done = max(1, counters.requests)
        per_request = spent / done if counters.requests else 0.0
        return spent + per_request * inflight_items / self.options.items_per_request >= self.options.max_cost

    async def _do_unit(self, unit: _Unit) -> None:
        opts = self.options
        kwargs = {"temperature": opts.effective_temperature(), "max_tokens": opts.max_tokens,
                  "seed": unit.vote if opts.votes > 1 else None}
        if len(unit.items) == 1:
            item = unit.items[0]
            try:
                answer = await self.client.complete(self._messages([item]), self._model_for(item), **kwargs)
            except EndpointError:
                raise
            except LLMError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.state.errors[item.id] = reason
                self.breaker.failure(reason, permanent=permanent(exc))
                return
            self.breaker.success()
            self._store(item, unit.vote, answer.model_dump(mode="json"))
            return
        assert self.batch_model is not None
        try:
            answer = await self.client.complete(self._messages(unit.items), self.batch_model, **kwargs)
            wanted = {it.id for it in unit.items}
            entries = {e.id: e.model_dump(mode="json", exclude={"id"}) for e in answer.items if e.id in wanted}
        except EndpointError:
            raise
        except LLMError:
            entries = {}
        if entries and unit.key:
            self.cache.set(unit.key, entries)  # keyed by the batched request actually sent
        for item in unit.items:
            if item.id in entries:
                self.state.answers[item.id][unit.vote] = entries[item.id]
            else:  # missing or mismatched in the batched answer: retry alone (its own request and key)
                self.state.keys.setdefault((item.id, unit.vote), self._key(item, unit.vote))
                await self._do_unit(_Unit([item], unit.vote))

    def _store(self, item: Item, vote: int, answer: dict[str, Any]) -> None:
        self.state.answers[item.id][vote] = answer
        self.cache.set(self.state.keys[(item.id, vote)], answer)

    # ---- assembling annotations ------------------------------------------------------------
    def _finish(self, item: Item) -> Annotation:
        """Assemble a finished item's annotation and forget what was kept for it."""
        annotation = self._annotation(item, self.state)
        if annotation.cached:
            self.cached_items += 1
        self.state.forget(item.id, self.options.votes)
        self._user.pop(item.id, None)
        self._restriction.pop(item.id, None)
        return annotation

    def _annotation(self, item: Item, state: _State) -> Annotation:
        return assemble(item, state.answers[item.id], dims=self.dims, error=state.errors.get(item.id),
                        cached=state.from_cache.get(item.id, 0) == self.options.votes,
                        kind=self.options.kind, labeler=self.client.config.labeler,
                        taxonomy_version=self.taxonomy.version, prompt_version=self.prompts.version)

    # ---- the Batch API -----------------------------------------------------------------------
    def pending_requests(self, items: Iterable[Item]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(cache key, request body) of every request the cache cannot answer (for the Batch API)."""
        opts = self.options
        for chunk in chunked(iter(items), 256):
            self.state = _State()
            for unit in self._plan(chunk):
                item = unit.items[0]
                body = self.client.body(self._messages([item]), self._model_for(item),
                                        temperature=opts.effective_temperature(), max_tokens=opts.max_tokens,
                                        seed=unit.vote if opts.votes > 1 else None)
                yield self.state.keys[(item.id, unit.vote)], body
            self._user.clear()
            self._restriction.clear()
        self.state = _State()
