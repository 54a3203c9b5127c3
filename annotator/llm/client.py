"""The LLM client: one structured request with its retry layers, each with one owner.

* transport retries (429 honouring ``Retry-After``, 5xx, timeouts, dropped connections) are
  owned by tenacity here, wrapped around the raw ``chat.completions`` call; the openai client's
  own retries are off (``max_retries=0``); failures no wait can heal (refused, unknown host,
  TLS) are not retried;
* validation re-asks (unparsable or out-of-taxonomy answers) are owned by our short loop in
  :meth:`LLMClient.complete` (``reasks``), built on public APIs only
  (:mod:`annotator.llm.structured`).

The schema parts of each response model are built once, so the per-call path stays lean (see
``benchmarks/label_throughput.py``). Errors leave this package as :mod:`annotator.errors` types.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import instructor

try:  # the transport library of the installed openai SDK (httpx2 since openai 3)
    from httpx2 import Limits as _Limits
    from httpx2 import Response as _RawResponse
except ImportError:  # pragma: no cover
    from httpx import Limits as _Limits
    from httpx import Response as _RawResponse
import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
)

from annotator.errors import EndpointError, ResponseError
from annotator.llm.endpoint import EndpointConfig
from annotator.llm.ratelimit import Pacer
from annotator.llm.structured import AnswerFormatError, Structured
from annotator.llm.translate import (
    hard_connection_error,
    redact,
    retry_after,
    translate,
    url_credentials,
    validation_summary,
)
from annotator.llm.usage import Counters

logging.getLogger("instructor").addHandler(logging.NullHandler())
logging.getLogger("instructor").propagate = False

_MODES = {"json_schema": instructor.Mode.JSON_SCHEMA, "tools": instructor.Mode.TOOLS,
          "json": instructor.Mode.JSON, "md_json": instructor.Mode.MD_JSON}
_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
              openai.APIConnectionError)


class LLMClient:
    """Async structured-output client for one endpoint.

    Call :meth:`close` (inside the event loop) when done; the tagging stage does.
    """

    def __init__(self, config: EndpointConfig, counters: Counters | None = None, concurrency: int = 16) -> None:
        self.config = config
        self.counters = counters or Counters()
        self._wrapped: dict[type[BaseModel], type[BaseModel]] = {}
        # aiohttp transport (the default httpx pool scans every connection per request); keep
        # one warm connection per concurrent request so none is re-opened under load
        limits = _Limits(max_connections=max(100, 2 * concurrency), max_keepalive_connections=concurrency)
        try:
            http_client = openai.DefaultAioHttpClient(timeout=config.timeout, limits=limits)
        except RuntimeError:  # aiohttp extra missing: the SDK's default transport
            http_client = None
        base_url, headers = url_credentials(config.base_url, config.api_key)
        self._openai = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=config.api_key or "not-needed",
            max_retries=0,
            timeout=config.timeout,
            http_client=http_client,
            default_headers=headers,
        )
        if config.mode not in _MODES:
            raise ValueError(f"unknown mode {config.mode!r}; choose from {', '.join(_MODES)}")
        self._request_options: Any = {"security": {"bearer_auth": True}}
        self.pacer = Pacer(concurrency, rpm=config.rpm, tpm=config.tpm, enabled=config.pace)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._openai.close()

    async def get_raw(self, url: str) -> bytes:
        """GET a path under the endpoint (or an absolute URL on it); the body (errors raise)."""
        raw = await self._openai.get(url, cast_to=_RawResponse, options=self._request_options)
        return raw.content

    def _backoff(self, exc: BaseException | None, retry: int) -> float:
        """``Retry-After`` when the server gave one, else exponential backoff with jitter."""
        hinted = retry_after(exc) if exc is not None else None
        if hinted is not None:
            return hinted + random.uniform(0, 0.1)
        ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _wait(self, state: RetryCallState) -> float:  # tenacity's attempt 1 is our retry 2
        return self._backoff(state.outcome.exception() if state.outcome else None, state.attempt_number + 1)

    def _count_retry(self, state: RetryCallState) -> None:
        self.counters.retries += 1

    async def _send(self, body: dict[str, Any]) -> Any:
        estimated = self.pacer.estimate(body) if self.pacer.enabled else 0
        started = await self.pacer.acquire(estimated)
        self.counters.requests += 1
        try:
            # client.post skips the SDK's recursive transform of the (static, large) schema params,
            # which costs more CPU than the rest of the call; auth, errors and parsing are the SDK's.
            raw = await self._openai.post(
                "/chat/completions", body=body, cast_to=_RawResponse, options=self._request_options
            )
        except BaseException as exc:
            response = getattr(exc, "response", None)
            self.pacer.release(status=getattr(response, "status_code", None),
                               headers=getattr(response, "headers", None), estimated=estimated, used=None,
                               started=started)
            if isinstance(exc, openai.RateLimitError):
                self.counters.throttled += 1
            raise
        response = self._parse(raw)
        usage = getattr(response, "usage", None)
        self.pacer.release(status=raw.status_code, headers=raw.headers, estimated=estimated,
                           used=getattr(usage, "total_tokens", None) if usage is not None else None,
                           started=started)
        if usage is not None:
            self.counters.prompt_tokens += usage.prompt_tokens or 0
            self.counters.completion_tokens += usage.completion_tokens or 0
            details = getattr(usage, "prompt_tokens_details", None)
            self.counters.cached_prompt_tokens += getattr(details, "cached_tokens", 0) or 0
        return response

    def _parse(self, raw: Any) -> Any:
        try:  # pydantic-core validation is ~10x cheaper than the SDK's generic construct
            response = ChatCompletion.model_validate_json(raw.content)
        except ValidationError:  # lenient servers (missing or odd fields): the SDK's way
            try:
                data = json.loads(raw.content)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
                raise EndpointError(f"{redact(self.config.base_url)} answered HTTP {raw.status_code} with something "
                                    f"that is not a chat completion ({raw.content[:80]!r}); is --base-url the "
                                    "OpenAI-compatible /v1 root?") from None
            response = ChatCompletion.construct(**data)
        return response

    async def _raw_create(self, **kwargs: Any) -> Any:
        """One logical request: the HTTP call with transport retries (tenacity)."""
        if kwargs.get("messages") and len(kwargs["messages"]) > 2:
            self.counters.reasks += 1  # instructor appended the failed answer and the error
        extra = kwargs.get("extra_body")
        body = {**{k: v for k, v in kwargs.items() if k != "extra_body"}, **extra} if extra else kwargs
        try:  # fast path: no retry machinery unless something fails
            return await self._send(body)
        except _TRANSIENT as first:
            if self.config.transport_retries < 1 or hard_connection_error(first):
                raise
            self.counters.retries += 1
            await asyncio.sleep(self._backoff(first, 1))
        retryable = retry_if_exception_type(_TRANSIENT) & retry_if_exception(lambda e: not hard_connection_error(e))
        retrying = AsyncRetrying(stop=stop_after_attempt(self.config.transport_retries), retry=retryable,
                                 wait=self._wait,
                                 before_sleep=self._count_retry, reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._send(body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _params(self, temperature: float, max_tokens: int | None, seed: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.config.model, "temperature": temperature}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if seed is not None:
            params["seed"] = seed
        if self.config.extra_body:
            params["extra_body"] = self.config.extra_body
        return params

    def body(self, messages: list[dict[str, str]], response_model: type[BaseModel], *, temperature: float = 0.0,
             max_tokens: int | None = None, seed: int | None = None) -> dict[str, Any]:
        """The request body :meth:`complete` sends first for these messages (the Batch API sends it too)."""
        structured = self._structured(response_model)
        body = {"messages": structured.messages(messages), **structured.params,
                **self._params(temperature, max_tokens, seed)}
        extra = body.pop("extra_body", None)
        return {**body, **extra} if extra else body

    def parse(self, completion: dict[str, Any], response_model: type[BaseModel]) -> BaseModel:
        """Validate a chat completion's answer exactly as :meth:`complete` does.

        Raises:
            ResponseError: not a chat completion, or an answer that does not validate.
        """
        try:
            return self._structured(response_model).parse(ChatCompletion.model_validate(completion))
        except (ValidationError, AnswerFormatError) as exc:
            error = validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ResponseError(f"invalid answer: {error}") from None

    def _structured(self, model: type[BaseModel]) -> Structured:
        structured = self._wrapped.get(model)
        if structured is None:  # schema parts built once per model: they are large and never change
            structured = self._wrapped[model] = Structured.build(model, self.config.mode)
        return structured

    async def complete(
        self,
        messages: list[dict[str, str]],
        response_model: type[BaseModel],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> BaseModel:
        """Send one structured request; return the validated answer.

        The re-ask loop is ours (public APIs only, see :mod:`annotator.llm.structured`): an
        invalid answer is sent back with what was wrong, at most ``reasks`` times.

        Raises:
            EndpointError: the endpoint cannot serve (refused, unknown host, TLS, 401/403, 404, not a chat API).
            TransportError: transport failures after every retry, or a 4xx answer.
            ResponseError: the answer stayed invalid after every re-ask.
        """
        params = self._params(temperature, max_tokens, seed)
        structured = self._structured(response_model)
        conversation = structured.messages(messages)
        try:
            for attempt in range(self.config.reasks + 1):
                response = await self._raw_create(messages=conversation, **structured.params, **params)
                try:
                    return structured.parse(response)
                except (ValidationError, AnswerFormatError) as exc:
                    if attempt == self.config.reasks:
                        raise
                    error = validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)
                    conversation = structured.reask(conversation, response, error)
            raise AssertionError("unreachable")  # pragma: no cover
        except Exception as exc:  # openai and pydantic raise many types; translate every one
            raise translate(exc, self.config) from None
