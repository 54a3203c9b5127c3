"""Lexical cues per label, which rank an item's candidate labels beside its nearest neighbours.

The embedded 135M model picks, nearly always, the first of the candidate labels it is offered
(``--candidates``), so their ranking decides its labels. Ranked by the nearest labeled neighbours
alone, a benchmark that the pool does not hold gets the labels of whatever looks closest: on the
dev labels, leave one benchmark out, the top neighbour label was right for 9% of backgrounds. The
words of an item still name its subject, its task and its operations; the cues say which words
speak for which label. They are data (``schemas/label-cues.yaml``), written from the taxonomy's
label meanings and checked against the taxonomy when loaded.

A label's score is its neighbours' votes (summing to ``neighbours``, each weighted by the
neighbour's similarity, so texts from other benchmarks count little) plus ``weight`` times the
weights of its cues found in the text; only labels scoring at least ``keep`` times the best are
offered, because the 135M model otherwise copies its retrieved example's labels whenever they are
allowed (measured: with every label offered, the cues changed none of its answers). The file's
content hash enters the prompt version, so a change to the cues never reuses answers ranked by
the old ones.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from annotator.config import resource_path
from annotator.errors import TaxonomyError
from annotator.io import load_yaml
from annotator.taxonomy import Dimension


class Cue(BaseModel):
    """One pattern and what it counts."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    weight: float = Field(1.0, gt=0)


class CueFile(BaseModel):
    """The YAML file: ``kind``, ``weight``, ``text_chars`` and dimension -> label -> cues."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    weight: float = Field(1.0, ge=0)
    neighbours: float = Field(1.0, ge=0)
    keep: float = Field(0.5, ge=0, le=1)
    text_chars: int = Field(4000, gt=0)
    dimensions: dict[str, dict[str, list[Cue | str]]]


@dataclass(frozen=True)
class Cues:
    """Compiled cues of one kind; call :meth:`scores` with a text."""

    kind: str
    weight: float
    neighbours: float
    keep: float
    text_chars: int
    patterns: dict[str, list[tuple[str, re.Pattern[str], float]]]  # dimension -> (label, pattern, weight)
    version: str

    def scores(self, text: str) -> dict[str, dict[str, float]]:
        """Dimension -> label -> the weight of the label's cues found in ``text`` (labels with none left out)."""
        text = text[: self.text_chars]
        out: dict[str, dict[str, float]] = {}
        for dim, cues in self.patterns.items():
            found: dict[str, float] = {}
            for label, pattern, weight in cues:
                if pattern.search(text):
                    found[label] = found.get(label, 0.0) + weight * self.weight
            if found:
                out[dim] = found
        return out


def default_cues_path() -> Path:
    """The shipped cue file."""
    return resource_path("schemas") / "label-cues.yaml"


def load_cues(dims: list[Dimension], kind: str, path: str | Path | None = None) -> Cues | None:
    """The cues for ``kind``'s dimensions, or None when the file holds another kind's.

    Raises:
        TaxonomyError: naming the file and the entry that does not parse, does not compile or
            names a dimension or label the taxonomy does not have.
    """
    path = Path(path) if path else default_cues_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read the label cues: {exc.strerror}") from exc
    try:
        data = load_yaml(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        spec = CueFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}"
                             for err in exc.errors())
        raise TaxonomyError(f"{path}: {problems}") from None
    if spec.kind != kind:
        return None
    labels = {d.id: set(d.label_ids) for d in dims}
    patterns: dict[str, list[tuple[str, re.Pattern[str], float]]] = {}
    for dim, by_label in spec.dimensions.items():
        if dim not in labels:
            raise TaxonomyError(f"{path}: dimensions.{dim}: no such {kind} dimension (known: {', '.join(labels)})")
        for label, cues in by_label.items():
            if label not in labels[dim]:
                raise TaxonomyError(f"{path}: dimensions.{dim}.{label}: no such label in {dim}")
            for i, cue in enumerate(cues):
                cue = Cue(pattern=cue) if isinstance(cue, str) else cue
                try:
                    compiled = re.compile(cue.pattern, re.IGNORECASE | re.MULTILINE)
                except re.error as exc:
                    raise TaxonomyError(f"{path}: dimensions.{dim}.{label}[{i}]: pattern does not compile: {exc}") \
                        from exc
                patterns.setdefault(dim, []).append((label, compiled, cue.weight))
    return Cues(kind=kind, weight=spec.weight, neighbours=spec.neighbours, keep=spec.keep,
                text_chars=spec.text_chars, patterns=patterns,
                version=hashlib.sha256(raw).hexdigest()[:12])
