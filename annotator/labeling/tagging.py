"""Tagging stage: items -> annotations through the LLM, streaming in input order (:mod:`annotator.labeling.pool`).

Work is split into *units* (one vote for one item, or for a batch with ``items_per_request > 1``),
each carrying the request :class:`~annotator.labeling.planning.Planner` made for it (messages, answer model,
cache key). Planning looks each unit up in the answer cache; the rest are sent as planned. A unit that fails after all
retries marks its items failed with the reason; a batched answer missing an item sends it again
alone. With ``max_cost`` no unit starts once the projected spend reaches the budget (the items not
started are written as failed, so a rerun continues). An answer that picks a label its record does
not admit (:mod:`annotator.labeling.evidence`), fresh or cached, is asked again within the admitted labels
and the annotation is flagged. Assembly is :func:`annotator.labeling.votes.assemble`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any

from pydantic import BaseModel

from annotator.errors import EndpointError, LLMError, ResponseError
from annotator.labeling.evidence import EvidenceFor
from annotator.labeling.fewshot import CandidatesFor, ExamplesFor
from annotator.labeling.planning import Planner, Request, TagOptions, still_valid
from annotator.labeling.pool import Breaker, Stream, chunked, loop_factory, permanent
from annotator.labeling.pool import Unit as _Unit
from annotator.labeling.pool import WorkState as _State
from annotator.labeling.prompts import PromptSet
from annotator.labeling.votes import assemble
from annotator.llm.cache import AnswerCache, short_key
from annotator.llm.client import LLMClient
from annotator.llm.endpoint import parameter_fingerprint
from annotator.llm.usage import Price
from annotator.records import Annotation, Item
from annotator.taxonomy import Taxonomy

ANSWERED_KEPT = 65536  # a repeat planned before its twin was answered lies within one window


class Tagger:
    """Labels items with one LLM endpoint, one taxonomy kind and one prompt set.

    What is sent is planned by :class:`~annotator.labeling.planning.Planner` (messages, answer model, cache
    key); the tagger looks plans up in the cache, sends the rest through :mod:`annotator.labeling.pool`,
    caches validated answers under the planned key and assembles annotations.
    """

    def __init__(
        self,
        client: LLMClient,
        taxonomy: Taxonomy,
        prompts: PromptSet,
        cache: AnswerCache,
        options: TagOptions,
        price: Price | None = None,
        examples_for: ExamplesFor | None = None,
        candidates_for: CandidatesFor | None = None,
        breaker: Breaker | None = None,
        evidence_for: EvidenceFor | None = None,
        constrain: bool = False,
    ) -> None:
        self.client = client
        self.taxonomy = taxonomy
        self.prompts = prompts
        self.cache = cache
        self.options = options
        self.price = price
        self.dims = taxonomy.dimensions(options.kind)
        self.planner = Planner(taxonomy, prompts, options, parameter_fingerprint(client.config),
                               examples_for=examples_for, candidates_for=candidates_for,
                               evidence_for=evidence_for, constrain=constrain)
        self.model = self.planner.model
        self.cached_items = 0
        self.inflight: dict[str, asyncio.Future[dict[str, Any] | str]] = {}  # cache key -> answer (or error)
        self.answered: OrderedDict[str, None] = OrderedDict()  # keys answered lately in this run (bounded)
        self.budget_stopped = False
        self.breaker = breaker or Breaker()
        self.state = _State()
        self.spent_outside = 0.0  # USD this run spent on its requests outside the tagger (the Batch API)
        self.fresh: set[int] = set()  # keys (first 64 bits) answered in this run outside the tagger: not "cached"

    # ---- the stage --------------------------------------------------------------------------
    def run(self, items: Iterable[Item], runner: asyncio.Runner | None = None) -> Iterator[Annotation]:
        """Stage: yield one annotation per item, in input order, holding a bounded window.

        Identical requests in flight at once (the same text under several ids, as MMLU-Redux
        repeats 52 texts) are sent once; the others take its answer (later ones hit the cache).

        Args:
            items: the items to label.
            runner: the event loop to run on, kept open by the caller across runs (a labeling
                session, :class:`annotator.labeling.session.Session`); None: a loop of its own for
                this run, and the client is closed when it ends.
        """
        opts = self.options
        self.state = _State()
        self.inflight = {}
        self.answered = OrderedDict()
        size = opts.items_per_request
        stream = Stream(self._plan, self._do_unit, self._finish, self.state.errors,
                        concurrency=opts.concurrency, window=max(opts.window, 2 * opts.concurrency * size),
                        breaker=self.breaker, over_budget=self._over_budget, progress=opts.progress,
                        total=opts.total)
        # chunks are a multiple of the batch size, so batches are cut from every item in input order
        # and a rerun forms the same requests
        chunks = chunked(iter(items), size * max(1, 64 // size))
        with asyncio.Runner(loop_factory=loop_factory()) if runner is None else nullcontext(runner) as loop:
            try:
                loop.run(stream.start(chunks))
                while (ready := loop.run(stream.next_ready())) is not None:
                    yield from ready
            finally:
                self.budget_stopped = stream.budget_stopped
                loop.run(stream.stop())
                if runner is None:
                    loop.run(self.client.close())

    def _hit(self, item: Item, vote: int, answer: Any, model: type[BaseModel], key: str | None = None) -> bool:
        """Use a cached answer if it still validates against the answer model.

        An answer this run brought in through :meth:`accept` is used but not counted as cached.
        """
        if answer is None or not still_valid(model, answer):
            return False
        self.state.answers[item.id][vote] = answer
        if key is None or not self.fresh or short_key(key) not in self.fresh:
            self.state.from_cache[item.id] = self.state.from_cache.get(item.id, 0) + 1
        return True

    def _cached(self, item: Item, vote: int, request: Request) -> bool:
        """Answer a single request from the cache; an entry that no longer validates is dropped."""
        found = self.cache.get(request.key)
        if found is not None and not self._hit(item, vote, found, request.model, request.key):
            self.cache.delete(request.key)
            return False
        return found is not None

    def _plan(self, chunk: list[Item]) -> list[_Unit]:
        """Cache lookups for a chunk; return the units that still need a request.

        A cached answer the record contradicts is replaced by the re-ask within the evidence (from
        the cache too when it was asked before).
        """
        units: list[_Unit] = []
        size = self.options.items_per_request
        plan = self.planner
        for item in chunk:
            self.state.answers[item.id] = [None] * self.options.votes
        for vote in range(self.options.votes):
            if size == 1:
                for item in chunk:
                    request = plan.single(item, vote)
                    if not self._cached(item, vote, request):
                        units.append(_Unit([item], vote, request))
                    elif (redo := self._recheck(item, vote)) is not None:
                        units.append(_Unit([item], vote, redo))
                continue
            for i in range(0, len(chunk), size):
                batch = chunk[i : i + size]
                request = plan.batch(batch, vote)
                found = self.cache.get(request.key) or {}
                rest = [(it, single) for it in batch if not self._hit(it, vote, found.get(it.id), plan.model)
                        for single in [plan.single(it, vote)] if not self._cached(it, vote, single)]
                if len(rest) == len(batch):
                    units.append(_Unit(batch, vote, request))
                else:  # partly answered before: the rest alone
                    units += [_Unit([it], vote, single) for it, single in rest]
                asked = {it.id for it, _ in rest}
                units += [_Unit([it], vote, redo) for it in batch if it.id not in asked
                          for redo in [self._recheck(it, vote)] if redo is not None]
        return units

    def _recheck(self, item: Item, vote: int) -> Request | None:
        """None when the vote's answer agrees with the record; else the re-ask within the evidence.

        The annotation is flagged; a re-ask answered before (in the cache) is taken at once.
        """
        answer = self.state.answers[item.id][vote]
        found = self.planner.found(item)
        wrong = found.contradicted(answer) if answer is not None else []
        if not wrong:
            return None
        said = "; ".join(found.said[1:])
        self.state.flags.setdefault(item.id, []).append(
            "evidence: " + ", ".join(f"{dim} {answer[dim]}" for dim in wrong)
            + f" contradicts the record ({said}); re-asked within it")
        self.state.answers[item.id][vote] = None
        if self.state.from_cache.get(item.id):
            self.state.from_cache[item.id] -= 1
        redo = self.planner.within_evidence(item, vote)
        return None if self._cached(item, vote, redo) else redo

    def _over_budget(self, inflight_items: int) -> bool:
        if self.options.max_cost is None or self.price is None:
            return False
        counters = self.client.counters
        spent = self.price.cost(counters.prompt_tokens, counters.completion_tokens) + self.spent_outside
        done = max(1, counters.requests)
        per_request = spent / done if counters.requests else 0.0
        return spent + per_request * inflight_items / self.options.items_per_request >= self.options.max_cost

    async def _do_unit(self, unit: _Unit) -> None:
        opts = self.options
        request: Request = unit.request
        kwargs = {"temperature": opts.effective_temperature(), "max_tokens": opts.max_tokens,
                  "seed": unit.vote if opts.votes > 1 else None}
        if len(unit.items) == 1:
            item = unit.items[0]
            if await self._ask(item, unit.vote, request, kwargs) and (redo := self._recheck(item, unit.vote)):
                await self._ask(item, unit.vote, redo, kwargs)
            return
        try:
            answer = await self.client.complete(request.messages, request.model, **kwargs)
            wanted = {it.id for it in unit.items}
            entries = {e.id: e.model_dump(mode="json", exclude={"id"}) for e in answer.items if e.id in wanted}
        except EndpointError:
            raise
        except LLMError:
            entries = {}
        if entries:
            self.cache.set(request.key, entries)  # keyed by the batched request actually sent
        for item in unit.items:
            if item.id in entries:
                self.state.answers[item.id][unit.vote] = entries[item.id]
                if (redo := self._recheck(item, unit.vote)) is not None:
                    await self._ask(item, unit.vote, redo, kwargs)
            else:  # missing or mismatched in the batched answer: retry alone (its own request and key)
                await self._do_unit(_Unit([item], unit.vote, self.planner.single(item, unit.vote)))

    async def _ask(self, item: Item, vote: int, request: Request, kwargs: dict[str, Any]) -> bool:
        """Answer one item's vote with ``request``; False when it failed (the reason is kept).

        Identical requests in flight at once are sent once; a request answered since it was planned
        (a repeated text) is read from the cache.
        """
        if request.key in self.answered and self._cached(item, vote=vote, request=request):
            return True
        asked = self.inflight.get(request.key)
        if asked is not None:  # the same request (the same text under another id) is on its way: ask once
            got = await asyncio.shield(asked)
            if isinstance(got, str):
                self.state.errors[item.id] = got
                return False
            self.state.answers[item.id][vote] = got
            return True
        future: asyncio.Future[dict[str, Any] | str] = asyncio.get_running_loop().create_future()
        self.inflight[request.key] = future
        try:
            try:
                answer = await self.client.complete(request.messages, request.model, **kwargs)
            except EndpointError:
                raise
            except LLMError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.state.errors[item.id] = reason
                self.breaker.failure(reason, permanent=permanent(exc))
                future.set_result(reason)
                return False
            self.breaker.success()
            self.state.answers[item.id][vote] = answer = answer.model_dump(mode="json")
            self.cache.set(request.key, answer)  # keyed by the request actually sent
            future.set_result(answer)
            self.answered[request.key] = None
            if len(self.answered) > ANSWERED_KEPT:
                self.answered.popitem(last=False)
            return True
        finally:
            if not future.done():  # cancelled or an endpoint error: the waiters ask for themselves
                future.set_result("the same request failed: not answered")
            self.inflight.pop(request.key, None)

    # ---- assembling annotations ------------------------------------------------------------
    def _finish(self, item: Item) -> Annotation:
        """Assemble a finished item's annotation and forget what was kept for it."""
        annotation = self._annotation(item, self.state)
        if annotation.cached:
            self.cached_items += 1
        self.state.forget(item.id)
        self.planner.forget(item.id)
        return annotation

    def _annotation(self, item: Item, state: _State) -> Annotation:
        found = self.planner.found(item)
        return assemble(item, state.answers[item.id], dims=self.dims, error=state.errors.get(item.id),
                        cached=state.from_cache.get(item.id, 0) == self.options.votes,
                        flags=state.flags.get(item.id, []), subset=found.subset, evidence=found.admitted,
                        kind=self.options.kind, labeler=self.client.config.labeler,
                        taxonomy_version=self.taxonomy.version, prompt_version=self.prompts.version)

    # ---- answers from elsewhere (the Batch API) ---------------------------------------------------
    def accept(self, key: str, body: dict[str, Any]) -> bool:
        """Take the answer to a request of :meth:`pending_requests` that was answered elsewhere.

        ``body`` is the chat completion as the endpoint returned it; it is validated exactly as the
        online path validates an answer and cached under ``key``. The online pass that follows reads
        it from the cache and does not count it as cached (it was paid for by this run).

        Returns:
            False when the answer does not validate (the online pass asks again).
        """
        try:
            answer = self.client.parse(body, self.model)
        except ResponseError:
            return False
        self.cache.set(key, answer.model_dump(mode="json"))
        self.fresh.add(short_key(key))
        return True

    def spent_elsewhere(self, usd: float) -> None:
        """Money this run spent on its requests outside the tagger: ``max_cost`` online is what is left."""
        self.spent_outside += usd

    def pending_requests(self, items: Iterable[Item]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(cache key, request body) of every request the cache cannot answer (for the Batch API)."""
        opts = self.options
        for chunk in chunked(iter(items), 256):
            self.state = _State()
            for unit in self._plan(chunk):
                request: Request = unit.request
                yield request.key, self.client.body(request.messages, request.model,
                                                    temperature=opts.effective_temperature(),
                                                    max_tokens=opts.max_tokens,
                                                    seed=unit.vote if opts.votes > 1 else None)
            self.planner.clear()
        self.state = _State()
