"""The review queue, without Argilla: each labels row's priority, audit flag and queue text.

Low confidence and vote disagreement first (priority above 1), rows that models disagree on or
that their record or subset contradicts before those (``3 - certainty``), then a random audit
sample of confident rows (``audit_fraction``, chosen by a hash of the id so it is stable across
pushes; priority 1), then the rest. ``push`` sends what this module computes.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from annotator.taxonomy import Dimension

CONFIDENT = 0.8


def as_number(value: Any) -> float | None:
    """A confidence as a float; None when missing, not a number or NaN."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _agreement(votes: Any) -> float | None:
    """Smallest majority share over dimensions, from the ``votes`` column (None without votes)."""
    if not votes:
        return None
    data = json.loads(votes) if isinstance(votes, str) else votes
    shares = []
    for counts in data.values():
        total = sum(counts.values())
        if total:
            shares.append(max(counts.values()) / total)
    return min(shares) if shares else None


def _in_audit(item_id: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"audit:{item_id}".encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def plan(row: dict[str, Any], dims: list[Dimension], audit_fraction: float) -> dict[str, Any]:
    """Review metadata of one labels row: confidences, agreement, priority, audit flag."""
    confs = {d.id: as_number(row.get(f"{d.id}_confidence")) for d in dims}
    known = [c for c in confs.values() if c is not None]
    lowest = min(known) if len(known) == len(confs) else 0.0  # unknown confidence = review it
    agreement = _agreement(row.get("votes"))
    certain = min(lowest, agreement if agreement is not None else 1.0)
    audit = certain >= CONFIDENT and _in_audit(str(row["id"]), audit_fraction)
    priority = 2.0 - certain if certain < CONFIDENT else (1.0 if audit else 1.0 - certain)
    doubt = doubtful(row.get("flags"))
    if row.get("disagreement") or doubt:  # models differ, the record contradicted it, or its subset: first
        priority = 3.0 - certain
    meta: dict[str, Any] = {f"{d}_confidence": c for d, c in confs.items() if c is not None}
    meta.update({"priority": round(priority, 4), "audit": "yes" if audit else "no",
                 "source": str(row.get("source") or "")})
    if agreement is not None:
        meta["agreement"] = round(agreement, 4)
    if row.get("disagreement"):
        meta["disagreement"] = str(row["disagreement"])
    if row.get("subset") not in (None, ""):
        meta["subset"] = str(row["subset"])
    if doubt:
        meta["flagged"] = doubt
    return meta


DOUBT_FLAGS = ("evidence:", "subset outlier:", "subset majority:")


def doubtful(flags: Any) -> str:
    """The flags that put a row first in review: re-asked against its record, unlike its subset."""
    return "; ".join(f for f in str(flags or "").split("; ") if f.startswith(DOUBT_FLAGS))


def model_name(labeler: str) -> str:
    """The model of a ``provider:model`` labeler, without provider, host or port (``consensus`` for several)."""
    if labeler.startswith("consensus("):
        return "consensus"
    _, sep, rest = labeler.partition(":")
    if not sep:
        return labeler
    port, sep, model = rest.partition(":")
    return model if sep and port.isdigit() else rest  # older tables wrote host:port:model


def queue_text(meta: dict[str, Any], dims: list[Dimension]) -> str:
    """The ``queue`` field: why this record sits where it does in the review queue."""
    confs = {d.id: meta[f"{d.id}_confidence"] for d in dims if f"{d.id}_confidence" in meta}
    if confs:
        weakest = min(confs, key=lambda k: confs[k])
        why = f"least confident: **{weakest}** {confs[weakest]:.2f}"
    else:
        why = "model confidence not stated"
    if "agreement" in meta:
        why += f" · vote agreement {meta['agreement']:.2f}"
    if meta.get("disagreement"):
        why = f"models disagree on **{meta['disagreement']}** · " + why
    if meta.get("flagged"):
        why = f"flagged: {meta['flagged']} · " + why
    audit = " · **audit sample**" if meta["audit"] == "yes" else ""
    first = "above 1: reviewed first" if meta["priority"] > 1.0 else "1 or below: after the unsure ones"
    return f"**Priority {meta['priority']:.2f}** ({first}) · {why}{audit}"
