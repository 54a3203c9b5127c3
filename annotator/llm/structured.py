"""Structured output through public APIs only: request parameters per mode, parsing, re-ask messages.

The schema comes from instructor's public ``openai_schema`` (the function definition for
``tools``) and pydantic's ``model_json_schema``; the answer is parsed with pydantic-core from the
message content (``json_schema``, ``json``, ``md_json``) or the tool call's arguments
(``tools``). An invalid answer is re-asked by our own short loop in :mod:`annotator.llm.client`
with the message built here: the model's answer, then what was wrong with it. No private
instructor internals are used, so an instructor upgrade cannot silently change labeling.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import instructor
from pydantic import BaseModel

_JSON_HINT = ("\n\nAnswer with one JSON object that follows this JSON schema exactly (an instance, not the "
              "schema itself):\n{schema}")
_MD_BLOCK = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.S)


class AnswerFormatError(ValueError):
    """The completion holds no answer in the expected place (no tool call, no JSON, cut off)."""


@dataclass(frozen=True)
class Structured:
    """The static request parts and the parser for one response model in one mode."""

    model: type[BaseModel]
    mode: str
    params: dict[str, Any]
    system_suffix: str

    @classmethod
    def build(cls, model: type[BaseModel], mode: str) -> Structured:
        """Compute the schema parts once per model (they are large and never change)."""
        schema = model.model_json_schema()
        if mode == "tools":
            function = instructor.openai_schema(model).openai_schema
            return cls(model, mode, {"tools": [{"type": "function", "function": function}],
                                     "tool_choice": {"type": "function", "function": {"name": function["name"]}}}, "")
        if mode == "json_schema":
            return cls(model, mode, {"response_format": {"type": "json_schema", "json_schema": {
                "name": model.__name__, "schema": schema}}}, "")
        hint = _JSON_HINT.format(schema=json.dumps(schema, indent=1))
        params = {"response_format": {"type": "json_object"}} if mode == "json" else {}
        return cls(model, mode, params, hint)

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation as sent: the schema hint joins the system message in json modes."""
        if not self.system_suffix or not messages or messages[0].get("role") != "system":
            return list(messages)
        return [{**messages[0], "content": messages[0]["content"] + self.system_suffix}, *messages[1:]]

    def raw_answer(self, completion: Any) -> str:
        """The answer text: the tool call's arguments, or the message content."""
        choice = completion.choices[0] if getattr(completion, "choices", None) else None
        if choice is None:
            raise AnswerFormatError("the completion has no choices")
        if getattr(choice, "finish_reason", None) == "length":
            raise AnswerFormatError("the answer was cut off (max_tokens reached)")
        message = choice.message
        if self.mode == "tools":
            calls = getattr(message, "tool_calls", None) or []
            if not calls:
                raise AnswerFormatError("no tool call in the answer")
            return calls[0].function.arguments or ""
        content = message.content or ""
        if self.mode == "md_json":
            match = _MD_BLOCK.search(content)
            if match:
                return match.group(1)
        return content

    def parse(self, completion: Any) -> BaseModel:
        """The validated answer (pydantic ``ValidationError`` or :class:`AnswerFormatError` otherwise)."""
        return self.model.model_validate_json(self.raw_answer(completion), strict=True)

    def reask(self, messages: list[dict[str, Any]], completion: Any, error: str) -> list[dict[str, Any]]:
        """The conversation for one more try: the invalid answer, then what was wrong with it."""
        try:
            answer = self.raw_answer(completion)
        except AnswerFormatError:
            answer = ""
        return [*messages, {"role": "assistant", "content": answer or "(no answer)"},
                {"role": "user", "content": f"That answer is not valid: {error}. Answer again with one JSON object "
                                            "that follows the schema exactly, using only the allowed label ids."}]
