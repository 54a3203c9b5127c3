"""What a record shows about its labels: the answer's shape, options in the text, benchmark and subset.

A 135M model misreads a GSM8K profit question as multiple choice; the record says otherwise: its
``answer`` ends ``#### 18``. The rules are data (``kinds.<kind>.evidence`` in the taxonomy YAML,
validated by :mod:`annotator.taxonomy`): *answer shapes* are tried in order on the answer field
(``--answer-field``, else the first of ``answer_fields`` the record has), the first that matches
decides the dimensions it names; *text cues* (lettered options, yes/no options, a function to write,
format instructions) decide the dimensions no shape decided, and a cue that is absent may exclude
labels (no lettered options: not ``option_letter``).

What it is used for (:mod:`annotator.labeling.planning`, :mod:`annotator.labeling.tagging`):

* every labeler is shown the evidence in the item message (benchmark, subset, answer shape, what
  it admits);
* the embedded default, whose answers are already restricted per item (``--candidates``), is
  restricted to the admitted labels too;
* any other model's answer that picks a label the record does not admit is asked again within the
  admitted labels, and the annotation is flagged (``evidence: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from annotator.records import Item
from annotator.taxonomy import Dimension, EvidenceRules, Shape

SHOWN_CHARS = 40  # of the answer, shown to the labeler beside its shape


@dataclass(frozen=True)
class Found:
    """The evidence of one record.

    Attributes:
        subset: the record's subset (``--subset-field`` or the first of ``subset_fields``), "" if none.
        admitted: dimension -> the only labels the record allows (dimensions it decides only).
        said: what the record shows, one short line each (for the prompt and for flags).
    """

    subset: str = ""
    admitted: dict[str, list[str]] = field(default_factory=dict)
    said: tuple[str, ...] = ()

    def contradicted(self, answer: dict[str, Any]) -> list[str]:
        """The dimensions whose answered label the record does not admit."""
        return [dim for dim, labels in self.admitted.items() if dim in answer and answer[dim] not in labels]


EvidenceFor = Callable[[Item], Found]
"""An item's evidence."""


class Evidence:
    """Reads records with one kind's rules; call it with an item."""

    def __init__(self, rules: EvidenceRules, dims: list[Dimension], *, answer_field: str | None = None,
                 subset_field: str | None = None) -> None:
        """Compile the rules.

        Args:
            rules: the kind's evidence rules from the taxonomy.
            dims: the kind's dimensions (label order of excluded-from sets).
            answer_field: the field holding the answer (None: the first of ``rules.answer_fields``).
            subset_field: the field naming the subset (None: the first of ``rules.subset_fields``).
        """
        self.rules = rules
        self.labels = {d.id: d.label_ids for d in dims}
        self.answer_fields = [answer_field] if answer_field else rules.answer_fields
        self.subset_fields = [subset_field] if subset_field else rules.subset_fields
        self._shapes = [(s, re.compile(s.pattern), [re.compile(x) for x in s.extract]) for s in rules.answer_shapes]
        self._cues = [(c, re.compile(c.pattern)) for c in rules.text_cues]

    def __call__(self, item: Item) -> Found:
        """The evidence of one item (from its text and its record's fields)."""
        fields = item.fields
        subset = next((str(fields[f]) for f in self.subset_fields if _present(fields.get(f))), "")
        said = [f"benchmark: {item.source}" + (f", subset: {subset}" if subset else "")]
        admitted: dict[str, list[str]] = {}
        choices = self._choices(fields)
        answer_field = next((f for f in self.answer_fields if _present(fields.get(f))), None)
        if answer_field is not None:
            value = _as_text(fields[answer_field])
            shape, shown = self._shape(value, choices)
            if shape is not None:
                admitted.update(self._allowed(shape.admits, shape.excludes))
                said.append(f"answer field {answer_field!r} is {shape.says} ({_short(shown)})")
        seen = {cue.id for cue, pattern in self._cues
                if (cue.or_choices and choices > 1) or any(_present(fields.get(f)) for f in cue.or_fields)
                or _at_least(pattern, item.text, cue.min_matches)}
        for cue, _ in self._cues:  # cues that are there decide first, then the absent ones exclude
            allowed = self._allowed(cue.admits, cue.excludes)
            if cue.id in seen and (open_dims := {d: v for d, v in allowed.items() if d not in admitted}):
                admitted.update(open_dims)
                said.append(f"the item shows {cue.says}")
        for cue, _ in self._cues:
            if cue.id not in seen and (open_dims := {d: v for d, v in cue.absent_excludes.items()
                                                     if d not in admitted}):
                for dim, out in open_dims.items():
                    admitted[dim] = [lab for lab in self.labels[dim] if lab not in out]
                said.append(f"the item shows no {cue.says}")
        for dim, labels in admitted.items():
            said.append(f"{dim} must be {' or '.join(labels)}" if len(labels) <= 3
                        else f"{dim} is not {' or '.join(lab for lab in self.labels[dim] if lab not in labels)}")
        return Found(subset=subset, admitted=admitted, said=tuple(said))

    def _allowed(self, admits: dict[str, list[str]], excludes: dict[str, list[str]]) -> dict[str, list[str]]:
        """Admitted labels per dimension: those named, or all but the excluded ones."""
        out = dict(admits)
        for dim, out_labels in excludes.items():
            if dim not in out:
                out[dim] = [lab for lab in self.labels[dim] if lab not in out_labels]
        return out

    def _choices(self, fields: dict[str, Any]) -> int:
        """How many choices the record lists (ARC's ``{"text": [...], "label": [...]}`` too)."""
        for name in self.rules.choice_fields:
            value = fields.get(name)
            if isinstance(value, dict):
                value = next((v for v in value.values() if isinstance(v, list | tuple)), None)
            if isinstance(value, list | tuple):
                return len(value)
        return 0

    def _shape(self, value: str, choices: int) -> tuple[Shape | None, str]:
        for shape, pattern, extracts in self._shapes:
            proper = value
            for extract in extracts:
                m = extract.search(value)
                if m:
                    proper = m.group(1)
                    break
            else:
                if extracts and len(value) > 200:  # a long text is a solution, not an answer proper
                    continue
            proper = proper.strip()
            if not pattern.search(proper):
                continue
            if shape.needs_choices and not (choices > 1 and proper.isdigit() and int(proper) < choices):
                continue
            return shape, proper
        return None, value


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return False
    return not (isinstance(value, str) and not value.strip())


def _as_text(value: Any) -> str:
    """The answer as text; a structured answer (DROP's ``{number, date, spans}``) by its first non-empty part."""
    if isinstance(value, dict):
        parts = [_as_text(v) for v in value.values()]
        return next((p for p in parts if p), "")
    if isinstance(value, list | tuple):
        parts = [_as_text(v) for v in value]
        return " ".join(p for p in parts if p)
    return str(value).strip()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _at_least(pattern: re.Pattern[str], text: str, n: int) -> bool:
    """``pattern`` matches ``text`` at least ``n`` times (it stops looking at the n-th match)."""
    if n <= 0:
        return True
    for count, _ in enumerate(pattern.finditer(text), 1):
        if count >= n:
            return True
    return False
