"""The review gate in front of the mapping step.

Only eval labels that reviewers confirmed or corrected go on. ``allow_unreviewed=True`` lets
unreviewed (``status == ok``) labels through, but it must be asked for explicitly and it is
recorded: every row gets ``gate`` = ``reviewed`` or ``unreviewed-allowed``, and the returned
:class:`GateRecord` is meant to be written into the mapping step's outputs.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel

from annotator.errors import GateError
from annotator.resolve import PASSING


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
