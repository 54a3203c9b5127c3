"""Money and counts: the price table (data, overridable) and the run summary.

Prices are USD per 1M tokens from ``schemas/prices.yaml``; ``--prices FILE`` or the
``[prices]`` table of ``annotator.toml`` override or extend it. ``--dry-run`` estimates tokens
as characters / 4 (no tokenizer is downloaded) and a fixed answer size per dimension.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from annotator.atomic import atomic_path
from annotator.errors import ConfigError, OutputError
from annotator.resources import resource_path

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
            data = yaml.safe_load(file.read_text()) or {}
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


class Summary(Counters):
    """What a run did; printed and saved as ``<output>.summary.json``."""

    items: int = 0
    ok: int = 0
    failed: int = 0
    cached: int = 0
    rejected: int = 0
    duplicates: int = 0
    estimated_cost_usd: float | None = None
    wall_seconds: float = 0.0
    items_per_second: float = 0.0
    labeler: str = ""
    taxonomy_version: str = ""
    prompt_version: str = ""
    output: str | None = None
    rejects_file: str | None = None
    budget_stopped: bool = False
    dry_run: bool = False
    failed_ids: list[str] = Field(default_factory=list)
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    duplicate_ids: list[str] = Field(default_factory=list)
    structured_output: str = ""  # what the endpoint probe chose (--mode auto)
    estimated_batch_cost_usd: float | None = None  # --dry-run: the same job through the Batch API
    per_model: dict[str, dict[str, Any]] | None = None  # several --model: each model's ok/failed/requests/cost
    batch: dict[str, int] | None = None  # --batch-api: what the batches did (tokens billed at batch prices)
    reasked_by_evidence: int = 0  # answers the record contradicted, asked again within its evidence
    subset_outliers: int = 0  # items unlike a clear majority of their subset, flagged (not changed)
    subset_majority_taken: int = 0  # items given their subset's clear majority label (flagged)
    subset_uniformity: dict[str, dict[str, Any]] | None = None  # per subset: each dimension's majority share

    def text(self) -> str:
        """Human-readable block for the terminal."""
        cost = ("n/a (no price for this model)" if self.estimated_cost_usd is None
                else f"${self.estimated_cost_usd:.4f}")
        lines = [
            f"{'estimated' if self.dry_run else 'labeled'} {self.items} items with {self.labeler}",
            f"  ok {self.ok}  failed {self.failed}  cached {self.cached}  rejected {self.rejected}  "
            f"duplicates {self.duplicates}",
            f"  requests {self.requests}  retries {self.retries}  re-asks {self.reasks}  "
            f"rate-limited {self.throttled}",
            f"  tokens: prompt {self.prompt_tokens}  completion {self.completion_tokens}  cost {cost}",
            f"  wall {self.wall_seconds:.2f}s  {self.items_per_second:.1f} items/s",
        ]
        if self.dry_run and self.estimated_batch_cost_usd is not None:
            lines.append(f"  with --batch-api: ${self.estimated_batch_cost_usd:.4f}")
        if self.batch:
            b = self.batch
            lines.append(f"  batch API: {b['batches']} batch(es) ({b['attached']} attached), {b['requests']} "
                         f"requests: answered {b['answered']}, invalid {b['invalid']}, failed {b['failed']}, "
                         f"not run {b['not_run']} (these went online); batch tokens: prompt "
                         f"{b['prompt_tokens']}  completion {b['completion_tokens']} (at batch prices)")
            if b.get("over_budget"):
                lines.append(f"  batch API: {b['over_budget']} requests not submitted: --max-cost reached "
                             f"(estimated at batch prices)")
        for name, m in (self.per_model or {}).items():
            cost = "n/a" if m["cost_usd"] is None else f"${m['cost_usd']:.4f}"
            lines.append(f"  {name}: ok {m['ok']}  failed {m['failed']}  requests {m['requests']}  cost {cost}")
        if self.structured_output:
            lines.append(f"  {self.structured_output}")
        if self.reasked_by_evidence or self.subset_outliers or self.subset_majority_taken:
            lines.append(f"  flagged: {self.reasked_by_evidence} answers contradicted by their record (re-asked), "
                         f"{self.subset_outliers} unlike their subset, {self.subset_majority_taken} given their "
                         "subset's majority (see the flags column; review push puts them first)")
        if self.budget_stopped:
            lines.append("  stopped at --max-cost: rerun to continue")
        for reason, n in sorted(self.failure_reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  failed x{n}: {reason}")
        if self.output:
            lines.append(f"  labels -> {self.output}")
        if self.rejects_file:
            lines.append(f"  rejected records -> {self.rejects_file}")
        return "\n".join(lines)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename (never half-written).

    Raises:
        OutputError: the file cannot be written (a full disk, a read-only folder), naming it.
    """
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, ensure_ascii=False, default=str)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def run_cost(price: Price | None, counters: Counters, batches: Any) -> float | None:
    """Online tokens at the online price, batch tokens at the batch price (None when a price is missing)."""
    if price is None:
        return None
    online = price.cost(counters.prompt_tokens, counters.completion_tokens, counters.cached_prompt_tokens)
    if batches is None or not (batches.prompt_tokens or batches.completion_tokens):
        return online
    batch = price.batch_cost(batches.prompt_tokens, batches.completion_tokens)
    return None if batch is None else online + batch


class Tally:
    """Counts of a run's outcomes, kept while rows stream past (first 1000 failed ids)."""

    def __init__(self) -> None:
        self.ok = self.failed = self.reasked = 0
        self.failed_ids: list[str] = []
        self.reasons: dict[str, int] = {}

    def add(self, annotation: Any) -> None:
        """Count one annotation (an :class:`~annotator.records.Annotation`)."""
        self.reasked += any(f.startswith("evidence:") for f in annotation.flags)
        if annotation.status != "failed":
            self.ok += 1
            return
        self.failed += 1
        if len(self.failed_ids) < 1000:
            self.failed_ids.append(annotation.id)
        reason = annotation.error or "unknown"
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
