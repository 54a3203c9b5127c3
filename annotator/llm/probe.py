"""Find what the endpoint accepts before labeling: structured-output mode and prompt size.

With ``--mode auto`` (the default for an external ``--base-url``) one real request, the real
system prompt with a tiny sample and the real answer model, is tried per mode in order
``json_schema`` -> ``tools`` -> ``json``; the first mode whose answer parses wins. A mode the
server refuses (any 4xx/5xx other than 401/403/404, which stop the run) or answers unparsably
is skipped, with the reason printed; when the server accepts a mode but no probe answer validates
(a weak model), the first mode it accepted is used and the re-asks of the run do their work.
The served context length is read where the server tells
it (``/v1/models``: vLLM ``max_model_len``, OpenRouter ``context_length``, llama.cpp ``meta``;
llama.cpp's ``/props``) or from a context-overflow error of a probe; when the full prompt does
not fit, the short prompt is used, and ``--max-chars`` is lowered so items fit too. Each probe
request is counted in the run's requests and tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from annotator.errors import EndpointError, LLMError, ResponseError
from annotator.llm.cache import AnswerCache, request_key
from annotator.llm.client import LLMClient
from annotator.llm.endpoint import EndpointConfig
from annotator.llm.usage import Counters

MODES = ("json_schema", "tools", "json")
ANSWER_BUDGET = 400  # tokens kept free for the answer
CHARS_PER_TOKEN = 3.5  # conservative: more tokens than the usual ~4 characters each
_OVERFLOW = re.compile(r"(?:context window of|maximum context length is|context size|n_ctx\W{0,4})\D{0,20}(\d{3,7})",
                       re.I)
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx",
                 "n_ctx_train")

PROBE_TEXT = "Tom has 3 apples and buys 2 more. How many apples does he have?"  # the probe's sample
Request = Callable[[str], tuple[list[dict[str, str]], type[BaseModel]]]  # detail -> (messages, answer model)


@dataclass
class Choice:
    """What the probe chose, and why."""

    mode: str
    detail: str
    context: int | None = None
    max_chars: int | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """One line for the terminal."""
        ctx = f"context {self.context} tokens" if self.context else "context not told"
        skipped = f" (skipped: {'; '.join(self.notes)})" if self.notes else ""
        return f"structured output {self.mode}, {self.detail} prompt, {ctx}{skipped}"


def tokens(messages: list[dict[str, str]]) -> int:
    """A conservative token estimate of messages."""
    return int(sum(len(m.get("content") or "") for m in messages) / CHARS_PER_TOKEN) + 8 * len(messages)


def context_in(data: Any, model: str) -> int | None:
    """The context length in a ``/v1/models`` or ``/props`` answer, if it states one."""
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        entries = [e for e in data["data"] if isinstance(e, dict)]
        mine = [e for e in entries if e.get("id") == model] or (entries if len(entries) == 1 else [])
        return next((n for e in mine if (n := context_in(e, model))), None)
    if not isinstance(data, dict):
        return None
    for key in _CONTEXT_KEYS:
        if isinstance(data.get(key), int) and data[key] > 0:
            return data[key]
    for nested in ("meta", "default_generation_settings", "top_provider"):
        if isinstance(data.get(nested), dict) and (n := context_in(data[nested], model)):
            return n
    return None


def choose(config: EndpointConfig, request_for: Request, *, detail: str, max_chars: int, max_tokens: int | None,
           counters: Counters, cache: AnswerCache, version: str) -> Choice:
    """Probe the endpoint (its own event loop); return the mode and prompt size to label with.

    The choice is remembered in the answer cache under the endpoint, model, prompt and taxonomy
    (``version``), so a rerun sends no probe request.

    Raises:
        EndpointError: the endpoint cannot serve, or no mode gave a usable answer.
    """
    key = request_key({"probe": 1, "endpoint": config.labeler, "extra_body": config.extra_body, "detail": detail,
                       "max_chars": max_chars, "version": version})
    remembered = cache.get(key)
    if remembered is not None:
        try:
            choice = Choice(**remembered)
            if choice.mode in MODES:
                return choice
        except TypeError:
            pass
    choice = asyncio.run(_choose(config, request_for, detail, max_chars, max_tokens, counters))
    cache.set(key, dataclasses.asdict(choice))
    return choice


async def _choose(config: EndpointConfig, request_for: Request, detail: str, max_chars: int,
                  max_tokens: int | None, counters: Counters) -> Choice:
    client = LLMClient(dataclasses.replace(config, mode=MODES[0]), counters, 1)
    try:
        context = await _served_context(client)
    finally:
        await client.close()
    details = [detail, "short"] if detail == "full" else [detail]
    if context:
        details = [d for d in details if tokens(request_for(d)[0]) + ANSWER_BUDGET <= context] or ["short"]
    notes: list[str] = []
    served: list[str] = []  # modes the server accepted, though the answer did not validate
    for mode in MODES:
        probe = LLMClient(dataclasses.replace(config, mode=mode, transport_retries=1, reasks=0, pace=False),
                          counters, 1)
        try:
            while details:
                messages, model = request_for(details[0])
                try:
                    await probe.complete(messages, model, max_tokens=max_tokens)
                except EndpointError:
                    raise
                except ResponseError as exc:  # the server took the mode; this answer did not validate
                    served.append(mode)
                    notes.append(f"{mode}: {str(exc)[:100]}")
                    break
                except LLMError as exc:
                    told = _OVERFLOW.search(str(exc))
                    if told and len(details) > 1:  # the prompt did not fit: the server said how much does
                        context = int(told.group(1))
                        details = details[1:]
                        continue
                    notes.append(f"{mode}: {str(exc)[:100]}")
                    break
                return Choice(mode, details[0], context, _fit_chars(request_for(details[0])[0], context, max_chars),
                              notes)
        finally:
            await probe.close()
    if served and details:  # a weak model, not a refusing server: label with re-asks in the first mode served
        notes.append(f"no probe answer validated; using {served[0]}")
        return Choice(served[0], details[0], context, _fit_chars(request_for(details[0])[0], context, max_chars),
                      notes)
    raise EndpointError(f"{config.labeler}: no structured-output mode gave a usable answer ({'; '.join(notes)}); "
                        "pass --mode to choose one")


def _fit_chars(messages: list[dict[str, str]], context: int | None, max_chars: int) -> int | None:
    """A lower ``--max-chars`` when long items would overflow the served context."""
    if not context:
        return None
    room = int((context - tokens(messages) - ANSWER_BUDGET) * CHARS_PER_TOKEN * 0.9)
    return max(200, room) if room < max_chars else None


async def _served_context(client: LLMClient) -> int | None:
    base = (client.config.base_url or "").rstrip("/")
    for url in (f"{base}/models", re.sub(r"/v1$", "", base) + "/props"):
        try:
            raw = await client.get_raw(url)
            found = context_in(json.loads(raw), client.config.model)
        except Exception:  # noqa: BLE001 - a server that does not tell is normal
            continue
        if found:
            return found
    return None
