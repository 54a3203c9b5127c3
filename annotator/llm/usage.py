"""Money and counts: the price table (data, overridable) and the run summary.

Prices are USD per 1M tokens from ``schemas/prices.yaml``; ``--prices FILE`` or the
``[prices]`` table of ``annotator.toml`` override or extend it. ``--dry-run`` estimates tokens
as characters / 4 (no tokenizer is downloaded) and a fixed answer size per dimension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from annotator.config import resource_path
from annotator.errors import ConfigError
from annotator.io import load_yaml

CHARS_PER_TOKEN = 4.0
ANSWER_TOKENS_PER_DIMENSION = 14
RATIONALE_TOKENS = 40


class Price(BaseModel):
    """USD per 1M tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    batch_input: float | None = Field(default=None, ge=0)
    batch_output: float | None = Field(default=None, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """Cost in USD; cached prompt tokens are billed at ``cached_input`` when known."""
        cached_rate = self.input if self.cached_input is None else self.cached_input
        fresh = max(0, prompt_tokens - cached_tokens)
        return (fresh * self.input + cached_tokens * cached_rate + completion_tokens * self.output) / 1e6

    def batch_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Cost in USD through the Batch API; None when the table has no batch price for the model."""
        if self.batch_input is None or self.batch_output is None:
            return None
        return (prompt_tokens * self.batch_input + completion_tokens * self.batch_output) / 1e6


def load_prices(extra_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Price]:
    """The shipped price table, updated by ``extra_file`` and then ``overrides``.

    Raises:
        ConfigError: naming the file and model of a malformed entry.
    """
    table: dict[str, Price] = {}
    sources: list[tuple[str, dict[str, Any]]] = []
    default = resource_path("schemas") / "prices.yaml"
    for file in [default, Path(extra_file) if extra_file else None]:
        if file is None:
            continue
        try:
            data = load_yaml(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{file}: cannot read price table: {exc}") from exc
        sources.append((str(file), data.get("models", data)))
    if overrides:
        sources.append(("annotator.toml [prices]", overrides))
    for where, models in sources:
        for name, spec in models.items():
            try:
                table[name] = Price.model_validate(spec)
            except ValidationError as exc:
                raise ConfigError(f"{where}: price of {name!r}: {exc.errors()[0]['msg']}") from None
    return table


def price_for(model: str, table: dict[str, Price]) -> Price | None:
    """Exact match first, then the longest listed name the model starts with (dated snapshots)."""
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name)]
    return table[max(matches, key=len)] if matches else None


def estimate_tokens(text: str) -> int:
    """Rough token count (chars / 4)."""
    return int(len(text) / CHARS_PER_TOKEN) + 1


def estimate_answer_tokens(n_dims: int, rationale: bool) -> int:
    """Expected completion tokens of one item's answer (``--dry-run`` and the batch budget)."""
    return n_dims * ANSWER_TOKENS_PER_DIMENSION + (RATIONALE_TOKENS if rationale else 0)


class Counters(BaseModel):
    """Request accounting shared by every call of one run (updated by :mod:`annotator.llm`)."""

    requests: int = 0
    retries: int = 0
    reasks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    throttled: int = 0  # 429 answers (rate limited)


def run_cost(price: Price | None, counters: Counters, batches: Any) -> float | None:
    """Online tokens at the online price, batch tokens at the batch price (None when a price is missing)."""
    if price is None:
        return None
    online = price.cost(counters.prompt_tokens, counters.completion_tokens, counters.cached_prompt_tokens)
    if batches is None or not (batches.prompt_tokens or batches.completion_tokens):
        return online
    batch = price.batch_cost(batches.prompt_tokens, batches.completion_tokens)
    return None if batch is None else online + batch
