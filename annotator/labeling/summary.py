"""What a labeling run did: the counts kept while rows stream past and the summary printed and saved.

``Tally`` counts outcomes as annotations are written; ``Summary`` is ``<output>.summary.json`` and
the terminal block. The request and token counters it extends belong to the LLM boundary
(:class:`annotator.llm.usage.Counters`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from annotator.llm.usage import Counters


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
    job_fingerprint: str | None = None  # a run that labeled every item: what it was a function of
    table_sha256: str | None = None  # ... and the table it wrote (annotator.labeling.uptodate)
    up_to_date: bool = False  # this run found that table up to date and returned it

    @classmethod
    def combined(cls, per_model: dict[str, Summary]) -> Summary:
        """The summary of several models labeling the same items (``--model A --model B``).

        Request and token counts and costs add up (a cost is unknown when any model's is); the
        item counts are the first model's until the joined table is written; ``per_model`` keeps
        each model's own counts and ``failure_reasons`` names the model of each reason.
        """
        first = next(iter(per_model.values()))
        costs = [s.estimated_cost_usd for s in per_model.values()]
        batch_costs = [s.estimated_batch_cost_usd for s in per_model.values()]
        batches = [s.batch for s in per_model.values() if s.batch]
        return first.model_copy(update={
            **{k: sum(getattr(s, k) for s in per_model.values()) for k in Counters.model_fields},
            "estimated_cost_usd": None if None in costs else sum(c for c in costs if c is not None),
            "estimated_batch_cost_usd": None if None in batch_costs else sum(c for c in batch_costs if c is not None),
            "labeler": "consensus(" + ", ".join(s.labeler for s in per_model.values()) + ")",
            "per_model": {n: {"ok": s.ok, "failed": s.failed, "requests": s.requests, "cost_usd": s.estimated_cost_usd}
                          for n, s in per_model.items()},
            "output": None, "failed_ids": [],
            "failure_reasons": {f"{n}: {r}": c for n, s in per_model.items() for r, c in s.failure_reasons.items()},
            "batch": {k: sum(b.get(k, 0) for b in batches) for k in batches[0]
                      if all(isinstance(b.get(k, 0), int) for b in batches)} if batches else None,
        })

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
        if self.up_to_date:
            lines.append("  up to date: same inputs, settings and labeler as the run that wrote the table, which is "
                         "unchanged; nothing sent or read (--recheck answers every item again from the cache)")
        if self.budget_stopped:
            lines.append("  stopped at --max-cost: rerun to continue")
        for reason, n in sorted(self.failure_reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  failed x{n}: {reason}")
        if self.output:
            lines.append(f"  labels -> {self.output}")
        if self.rejects_file:
            lines.append(f"  rejected records -> {self.rejects_file}")
        return "\n".join(lines)


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
