"""Typed records that flow between stages.

``Item`` is one input unit (an eval sample or a corpus document); ``Annotation`` is one labeled
(or failed) item; ``Reject`` is an input record that could not become an item. Dimensions are
taxonomy data, so labels are keyed by dimension id. ``ReviewStatus`` / ``PASSING`` are the review's
vocabulary, which labeling (few-shot pools), corpus (teachers) and the gate share.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["eval", "corpus"]
Status = Literal["ok", "failed"]
LabelValue = str | list[str]
ReviewStatus = Literal["confirmed", "corrected", "conflict", "invalid", "discarded", "pending"]
PASSING: tuple[str, ...] = ("confirmed", "corrected")  # the review statuses the gate lets through


def trusted(row: dict[str, Any]) -> bool:
    """A labels-table row whose labels may be learned from: status ok and, when reviewed, passed.

    Rows without a ``review_status`` (an unreviewed table) count as trusted; the gate
    (:mod:`annotator.review.gate`) decides separately whether unreviewed labels may go on.
    """
    return (row.get("status") or "ok") == "ok" and (row.get("review_status") or "confirmed") in PASSING


class Item(BaseModel):
    """One unit to label.

    Attributes:
        id: stable identifier (from ``--id-field`` or a content hash).
        text: the text the labeler sees (already rendered from ``--template``).
        source: where it came from (file stem, e.g. ``date_understanding``).
        location: ``file:line`` (or ``file:record N``) for error messages.
        fields: the input record's own fields, kept in the output unless disabled.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    source: str
    location: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)


class Annotation(BaseModel):
    """The labels of one item, or the reason it has none.

    Attributes:
        text: the item's text as labeled (rendered from ``--template``; before ``--max-chars``
            clipping, which only shortens what the model is sent).
        labels: dimension id -> label id (single-label) or list of ids (multi-label).
        confidence: dimension id -> 0..1 (model-stated, or the vote share with ``--votes``).
        votes: dimension id -> {label: count}, only when more than one vote was taken.
        cached: True when every answer came from the cache (no request was sent).
        flags: what was repaired or is doubtful (a confidence outside 0..1, clipped; an answer
            the record contradicted, re-asked; a label unlike the rest of its subset).
        subset: the record's subset (MMLU's ``subject``, ...), "" when it names none.
        evidence: dimension -> the only labels the record admits (:mod:`annotator.labeling.evidence`).
    """

    id: str
    source: str
    kind: Kind
    subset: str = ""
    text: str = ""
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    confidence: dict[str, float] = Field(default_factory=dict)
    votes: dict[str, dict[str, int]] | None = None
    rationale: str = ""
    labeler: str
    taxonomy_version: str
    prompt_version: str
    status: Status
    error: str | None = None
    cached: bool = False
    flags: list[str] = Field(default_factory=list)
    evidence: dict[str, list[str]] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)


class Reject(BaseModel):
    """An input record that could not become an item.

    Attributes:
        location: ``file:line`` or ``file:record N``.
        field: the offending field, or None for whole-record problems.
        reason: what is wrong, in words.
        raw: a bounded excerpt of the raw record, for the rejects file.
    """

    location: str
    field: str | None = None
    reason: str
    raw: str = ""

    def message(self) -> str:
        """One line naming file, line/record and field."""
        where = f"{self.location}: field {self.field!r}" if self.field else self.location
        return f"{where}: {self.reason}"
