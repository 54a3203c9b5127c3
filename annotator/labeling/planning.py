"""Planning requests: an item (or a batch of items) and a vote -> the :class:`Request` actually sent.

A request is its chat messages, its answer model (restricted to the item's candidate labels
when ``--candidates`` is on) and its cache key, the sha256 of the canonical request: endpoint
parameters, sampling, answer schema, system prompt hash, taxonomy and prompt versions, the user
message as rendered, the vote and the restriction. The tagger sends exactly what is planned and
caches under exactly that key; the Batch API path writes the same bodies.

An item's rendered message, evidence and restriction are kept from its first vote to its last, so
votes do not render twice; :meth:`Planner.forget` drops them once the item is finished.

Evidence (:mod:`annotator.labeling.evidence`): what the record shows is rendered into the message; with
``constrain`` (the embedded default) the restriction is narrowed to the labels the record admits;
:meth:`Planner.within_evidence` is the request that asks again within them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from annotator.labeling.evidence import EvidenceFor, Found
from annotator.labeling.fewshot import CandidatesFor, ExamplesFor
from annotator.labeling.prompts import PromptSet
from annotator.labeling.response_models import build_batch_model, build_response_model
from annotator.llm.cache import request_key
from annotator.records import Item
from annotator.taxonomy import Taxonomy


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
    progress: bool | str = False  # True, False or "auto" (a bar on a terminal, lines otherwise)
    total: int | None = None  # items expected (progress bar)
    window: int = 4096  # most items pending at once (at least 2 x concurrency x items per request)

    def effective_temperature(self) -> float:
        """0 for a single vote, 0.7 when several votes must differ (unless set)."""
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.votes == 1 else 0.7


@dataclass(frozen=True)
class Request:
    """One request as sent: chat messages, the answer model it is validated against, its cache key."""

    messages: list[dict[str, str]]
    model: type[BaseModel]
    key: str


class Planner:
    """Renders items into requests for one taxonomy kind, prompt set and endpoint."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        prompts: PromptSet,
        options: TagOptions,
        params: str,
        examples_for: ExamplesFor | None = None,
        candidates_for: CandidatesFor | None = None,
        evidence_for: EvidenceFor | None = None,
        constrain: bool = False,
    ) -> None:
        """Build the answer models once.

        Args:
            taxonomy: the taxonomy.
            prompts: the prompt set (system prompt and message templates).
            options: the tagging options (kind, rationale, confidence, batching, sampling).
            params: the endpoint's parameter fingerprint (:func:`annotator.llm.parameter_fingerprint`).
            examples_for: retrieved few-shot examples for an item.
            candidates_for: the labels an item's answer is restricted to, per dimension.
            evidence_for: what an item's record shows (rendered into its message).
            constrain: restrict every answer to the labels its record admits (not only on a re-ask).
        """
        self.taxonomy, self.prompts, self.options = taxonomy, prompts, options
        self.examples_for, self.candidates_for = examples_for, candidates_for
        self.evidence_for, self.constrain = evidence_for, constrain
        self.model = build_response_model(taxonomy, options.kind, rationale=options.rationale,
                                          confidence=options.confidence)
        self.batch_model: type[BaseModel] | None = None
        if options.items_per_request > 1:
            self.batch_model = build_batch_model(build_response_model(
                taxonomy, options.kind, rationale=options.rationale, confidence=options.confidence, with_id=True))
        self._key_base = {
            "params": params,
            "temperature": options.effective_temperature(),
            "max_tokens": options.max_tokens,
            "schema": request_key(self.model.model_json_schema()),
            "system": hashlib.sha256(prompts.system.encode()).hexdigest(),
            "taxonomy": taxonomy.version,
            "prompt": prompts.version,
        }
        self._batch_schema = request_key(self.batch_model.model_json_schema()) if self.batch_model else None
        self._rendered: dict[str, tuple[str, dict[str, list[str]] | None, Found]] = {}
        self._restricted: dict[str, type[BaseModel]] = {}

    @property
    def pending(self) -> int:
        """Items whose rendered message is kept (planned, not yet forgotten)."""
        return len(self._rendered)

    def single(self, item: Item, vote: int) -> Request:
        """The request for one item and one vote."""
        user, restrict, _ = self._render(item)
        return self._request(user, vote, restrict)

    def within_evidence(self, item: Item, vote: int) -> Request:
        """The request asking again, restricted to the labels the item's record admits."""
        user, restrict, found = self._render(item)
        return self._request(user, vote, narrowed(restrict, found.admitted))

    def found(self, item: Item) -> Found:
        """What the item's record shows (empty without evidence)."""
        return self._render(item)[2]

    def batch(self, items: list[Item], vote: int) -> Request:
        """The request for several items in one (``--items-per-request``), keyed by the batch sent."""
        assert self.batch_model is not None and self._batch_schema is not None
        user = self.prompts.batch_message(items, [self._render(it)[2].said for it in items])
        key = request_key({**self._key_base, "user": user, "vote": vote, "schema": self._batch_schema})
        return Request(self._messages(user), self.batch_model, key)

    def _render(self, item: Item) -> tuple[str, dict[str, list[str]] | None, Found]:
        rendered = self._rendered.get(item.id)
        if rendered is None:
            found = self.evidence_for(item) if self.evidence_for else Found()
            examples = self.examples_for(item) if self.examples_for else ()
            restrict = self.candidates_for(item) if self.candidates_for is not None else None
            if self.constrain and found.admitted:
                restrict = narrowed(restrict, found.admitted)
            rendered = self._rendered[item.id] = (self.prompts.item_message(item, examples, found.said),
                                                  restrict, found)
        return rendered

    def _request(self, user: str, vote: int, restrict: dict[str, list[str]] | None) -> Request:
        key = request_key({**self._key_base, "user": user, "vote": vote, "restrict": restrict})
        return Request(self._messages(user), self._model_for(restrict), key)

    def forget(self, item_id: str) -> None:
        """Drop what was kept for a finished item."""
        self._rendered.pop(item_id, None)

    def clear(self) -> None:
        """Drop what was kept for every item."""
        self._rendered.clear()

    def _messages(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.prompts.system}, {"role": "user", "content": user}]

    def _model_for(self, restrict: dict[str, list[str]] | None) -> type[BaseModel]:
        """The answer model, restricted to candidate labels when there are any."""
        if not restrict:
            return self.model
        key = request_key(restrict)
        model = self._restricted.get(key)
        if model is None:
            opts = self.options
            model = self._restricted[key] = build_response_model(
                self.taxonomy, opts.kind, rationale=opts.rationale, confidence=opts.confidence, restrict=restrict)
        return model


def narrowed(restrict: dict[str, list[str]] | None, admitted: dict[str, list[str]]) -> dict[str, list[str]]:
    """A restriction narrowed to the admitted labels: the candidates' order where they overlap, else the admitted."""
    out = dict(restrict or {})
    for dim, labels in admitted.items():
        keep = [lab for lab in out.get(dim, []) if lab in labels]
        out[dim] = keep or list(labels)
    return out


def still_valid(model: type[BaseModel], answer: Any) -> bool:
    """A cached answer is used only if it validates against today's answer model."""
    try:
        model.model_validate(answer)
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        return False
    return True
