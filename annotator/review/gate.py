"""The review gates in front of the mapping step.

Eval labels: only labels that reviewers confirmed or corrected go on. Corpus labels (machine
labels of many documents: a distilled classifier or an LLM teacher): they go on only when a
reviewed audit sample shows their accuracy passes (:func:`audit_gate`). ``allow_unreviewed=True`` lets
unreviewed (``status == ok``) labels through, but it must be asked for explicitly and it is
recorded: every row gets ``gate`` = ``reviewed`` or ``unreviewed-allowed``, and the returned
:class:`GateRecord` is meant to be written into the mapping step's outputs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from annotator.errors import GateError
from annotator.labeling.store import read_table
from annotator.records import PASSING
from annotator.stats import wilson


class GateRecord(BaseModel):
    """What the gate let through, for the outputs of the stage behind it."""

    allow_unreviewed: bool
    rows_in: int
    rows_out: int
    review_status_counts: dict[str, int]


def gate(labels: pd.DataFrame, *, allow_unreviewed: bool = False) -> tuple[pd.DataFrame, GateRecord]:
    """Keep the labels the mapping step may use.

    Raises:
        GateError: the table was never reviewed (no ``review_status``) and unreviewed labels
            were not explicitly allowed, or nothing passes.
    """
    counts = (labels["review_status"].value_counts().to_dict() if "review_status" in labels else {})
    if allow_unreviewed:
        ok = labels[labels.get("status", "ok") == "ok"] if "status" in labels else labels
        out = ok.assign(gate=[("reviewed" if s in PASSING else "unreviewed-allowed")
                              for s in ok.get("review_status", pd.Series([None] * len(ok), index=ok.index))])
    else:
        if "review_status" not in labels:
            raise GateError("these labels were never reviewed: pull confirmed labels with `annotator review pull`, "
                            "or pass --allow-unreviewed (it is recorded in the outputs)")
        out = labels[labels["review_status"].isin(PASSING)].assign(gate="reviewed")
        if out.empty:
            raise GateError(f"no confirmed or corrected labels yet (review status: {counts})")
    record = GateRecord(allow_unreviewed=allow_unreviewed, rows_in=len(labels), rows_out=len(out),
                        review_status_counts={str(k): int(v) for k, v in counts.items()})
    return out, record


class AuditRecord(BaseModel):
    """What the corpus audit showed, for the mapping step's outputs."""

    audit: str | None  # the pulled audit table, or None when unaudited labels were allowed
    min_accuracy: float
    dimensions: dict[str, dict[str, float | int | list[float]]]  # n, accuracy, ci95, passed


def audit_gate(audit: str | Path | None, dims: list[str], *, min_accuracy: float = 0.8,
               allow_unaudited: bool = False) -> AuditRecord:
    """Let corpus labels on only if the reviewed audit sample shows every used dimension is accurate enough.

    ``audit`` is ``review pull`` of the audit sample pushed with ``review push OUTDIR --kind corpus
    --sample N``: per record the reviewers' labels (``<dimension>``), the machine's (``llm_<dimension>``)
    and ``review_status``. A dimension passes when the lower end of the 95% Wilson interval of its
    accuracy over confirmed or corrected records reaches ``min_accuracy`` (multi-label dimensions
    compared as sets).

    Raises:
        GateError: no audit and unaudited labels not explicitly allowed, an unreadable audit, or a
            dimension whose audited accuracy does not pass (named, with n, accuracy and interval).
    """
    if audit is None:
        if not allow_unaudited:
            raise GateError("corpus labels go on only when an audit shows they are accurate: push an audit sample "
                            "(`annotator review push OUTDIR --kind corpus --sample 200`), review it, pull it and "
                            "pass --audit PULLED; or pass --allow-unaudited (it is recorded in the outputs)")
        return AuditRecord(audit=None, min_accuracy=min_accuracy, dimensions={})
    try:
        rows = read_table(audit).to_pylist()
    except (OSError, ValueError) as exc:
        raise GateError(f"{audit}: cannot read the audit: {exc}") from None
    reviewed = [r for r in rows if r.get("review_status") in PASSING]
    found: dict[str, dict[str, float | int | list[float]]] = {}
    failing = []
    for dim in dims:
        pairs = [(r.get(dim), r.get(f"llm_{dim}")) for r in reviewed if f"llm_{dim}" in r]
        right = sum(_same(human, machine) for human, machine in pairs)
        low, high = wilson(right, len(pairs))
        accuracy = right / len(pairs) if pairs else 0.0
        passed = bool(pairs) and low >= min_accuracy
        found[dim] = {"n": len(pairs), "accuracy": round(accuracy, 4), "ci95": [round(low, 4), round(high, 4)],
                      "passed": passed}
        if not passed:
            failing.append(f"{dim}: {right}/{len(pairs)} right, accuracy {accuracy:.2f} (95% CI {low:.2f}-{high:.2f})")
    if failing:
        raise GateError(f"{audit}: the audited accuracy does not pass (lower 95% bound below {min_accuracy:.2f}): "
                        + "; ".join(failing) + ". Review more of the audit sample, or fix the labeler")
    return AuditRecord(audit=str(audit), min_accuracy=min_accuracy, dimensions=found)


def _same(human: object, machine: object) -> bool:
    if isinstance(human, list | tuple) or isinstance(machine, list | tuple):
        return set(human or []) == set(machine or [])  # type: ignore[arg-type]
    return human == machine
