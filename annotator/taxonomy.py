"""The taxonomy is data: load and validate ``schemas/*.yaml``, build response models from it.

No label list is written in Python. A taxonomy file declares kinds (``eval``, ``corpus``), each
with dimensions; a dimension has a cardinality (``one``, ``ordered_list``, ``list``) and labels.
The taxonomy version is ``<name>@<sha256 of the file content, 12 hex>``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from annotator.config import resource_path
from annotator.errors import TaxonomyError
from annotator.io import load_yaml

DEFAULT_TAXONOMY = "taxonomy-v1.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Strict):
    """One label: id, description, at least two short examples, confusions to avoid."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=3)
    examples: list[str] = Field(min_length=2)
    confuse: str | None = None


class LabelsFrom(_Strict):
    """Reuse another dimension's labels, minus ``except``, plus ``add``."""

    kind: str
    dimension: str
    except_: list[str] = Field(default_factory=list, alias="except")
    add: list[Label] = Field(default_factory=list)


class Dimension(_Strict):
    """One dimension with its cardinality and label set."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    question: str
    cardinality: Literal["one", "ordered_list", "list"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)
    mirrors: str | None = None
    labels: list[Label] = Field(default_factory=list)
    labels_from: LabelsFrom | None = None

    @property
    def multi(self) -> bool:
        """True for list-valued dimensions."""
        return self.cardinality != "one"

    @property
    def label_ids(self) -> list[str]:
        """The label ids in declared order."""
        return [label.id for label in self.labels]


class Shape(_Strict):
    """An answer shape or a text cue: a pattern and the labels it admits (or, absent, excludes).

    Attributes:
        id: the shape's name (shown in prompts and flags).
        says: what the record shows, in words ("a number").
        pattern: a Python regular expression (searched; ``^``/``$`` anchor the whole value).
        extract: answer shapes only: patterns whose first group is the answer proper (GSM8K's
            ``#### 18``, MATH's ``boxed{...}``); the first that matches is used, else the whole value.
        needs_choices: answer shapes only: the record must list choices (an index into them).
        min_matches: text cues only: how many times the pattern must occur.
        or_choices: text cues only: a record that lists choices shows the cue too.
        or_fields: text cues only: a record that has one of these fields shows the cue too.
        admits: dimension -> the only labels it allows (single-label dimensions).
        excludes: dimension -> labels it rules out (the dimension's other labels stay admitted).
        absent_excludes: text cues only: dimension -> labels ruled out when the cue is absent.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    says: str
    pattern: str
    extract: list[str] = Field(default_factory=list)
    needs_choices: bool = False
    min_matches: int = Field(default=1, ge=1)
    or_choices: bool = False
    or_fields: list[str] = Field(default_factory=list)
    admits: dict[str, list[str]] = Field(default_factory=dict)
    excludes: dict[str, list[str]] = Field(default_factory=dict)
    absent_excludes: dict[str, list[str]] = Field(default_factory=dict)


class Consistency(_Strict):
    """How uniform a benchmark subset is expected to be (see :mod:`annotator.labeling.consistency`)."""

    dimensions: list[str] = Field(default_factory=list)
    clear_majority: float = Field(default=0.8, gt=0.5, le=1.0)
    min_items: int = Field(default=5, ge=2)


class EvidenceRules(_Strict):
    """What a record shows about its labels (see :mod:`annotator.labeling.evidence`)."""

    answer_fields: list[str] = Field(default_factory=list)
    subset_fields: list[str] = Field(default_factory=list)
    choice_fields: list[str] = Field(default_factory=list)
    answer_shapes: list[Shape] = Field(default_factory=list)
    text_cues: list[Shape] = Field(default_factory=list)
    consistency: Consistency = Field(default_factory=Consistency)


class KindSpec(_Strict):
    """The dimensions used for one kind of unit (eval sample, corpus document), and its evidence rules."""

    unit: str
    dimensions: list[Dimension] = Field(min_length=1)
    evidence: EvidenceRules | None = None


class PairRule(_Strict):
    """One row of a table mapping rule."""

    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    weight: float = Field(ge=0, le=1)
    why: str


class MappingRule(_Strict):
    """An eval-dimension -> corpus-dimension rule (used by the mapping step)."""

    eval: str
    corpus: str
    rule: Literal["identical", "table"]
    any_for: list[str] = Field(default_factory=list)
    pairs: list[PairRule] = Field(default_factory=list)
    weight: float = Field(default=1.0, ge=0, le=1)
    why: str = ""


class Taxonomy(_Strict):
    """A validated taxonomy file."""

    name: str
    description: str = ""
    kinds: dict[str, KindSpec]
    mapping: list[MappingRule] = Field(default_factory=list)
    content_hash: str = ""

    @field_validator("kinds")
    @classmethod
    def _some_kind(cls, value: dict[str, KindSpec]) -> dict[str, KindSpec]:
        if not value:
            raise ValueError("at least one kind is required")
        return value

    @property
    def version(self) -> str:
        """``name@hash``: changes whenever the file's content changes."""
        return f"{self.name}@{self.content_hash}"

    def dimensions(self, kind: str) -> list[Dimension]:
        """The dimensions of ``kind``.

        Raises:
            TaxonomyError: when the taxonomy has no such kind.
        """
        if kind not in self.kinds:
            raise TaxonomyError(
                f"taxonomy {self.name!r} has no kind {kind!r} (has: {', '.join(self.kinds)})"
            )
        return self.kinds[kind].dimensions

    def dimension(self, kind: str, dim_id: str) -> Dimension:
        """One dimension by id."""
        for dim in self.dimensions(kind):
            if dim.id == dim_id:
                return dim
        raise TaxonomyError(f"taxonomy {self.name!r} kind {kind!r} has no dimension {dim_id!r}")


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy file (the shipped v1 taxonomy by default).

    Args:
        path: a YAML file; None for ``schemas/taxonomy-v1.yaml``.

    Returns:
        The taxonomy with ``labels_from`` resolved and its content hash set.

    Raises:
        TaxonomyError: naming the file and the path inside it for every problem found.
    """
    file = Path(path) if path else resource_path("schemas") / DEFAULT_TAXONOMY
    try:
        raw_bytes = file.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"{file}: cannot read taxonomy: {exc.strerror or exc}") from exc
    try:
        data = load_yaml(raw_bytes.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TaxonomyError(f"{file}: top level must be a mapping")
    data["content_hash"] = hashlib.sha256(raw_bytes).hexdigest()[:12]
    try:
        taxonomy = Taxonomy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TaxonomyError(f"{file}: {problems}") from None
    return _check(_resolve(taxonomy, file), file)


def _resolve(taxonomy: Taxonomy, file: Path) -> Taxonomy:
    """Fill every ``labels_from`` dimension from the dimension it names."""
    kinds: dict[str, KindSpec] = {}
    for kind_id, spec in taxonomy.kinds.items():
        dims = []
        for i, dim in enumerate(spec.dimensions):
            where = f"kinds.{kind_id}.dimensions.{i}"
            if dim.labels_from is not None:
                if dim.labels:
                    raise TaxonomyError(f"{file}: {where}: give labels or labels_from, not both")
                src = dim.labels_from
                source_kind = taxonomy.kinds.get(src.kind)
                source = next(
                    (d for d in (source_kind.dimensions if source_kind else []) if d.id == src.dimension),
                    None,
                )
                if source is None or source.labels_from is not None:
                    raise TaxonomyError(
                        f"{file}: {where}.labels_from: no dimension {src.kind}.{src.dimension} "
                        "with its own labels"
                    )
                unknown = sorted(set(src.except_) - set(source.label_ids))
                if unknown:
                    raise TaxonomyError(f"{file}: {where}.labels_from.except: unknown labels {unknown}")
                labels = [lb for lb in source.labels if lb.id not in src.except_] + list(src.add)
                dim = dim.model_copy(update={"labels": labels, "labels_from": None})
            dims.append(dim)
        kinds[kind_id] = spec.model_copy(update={"dimensions": dims})
    return taxonomy.model_copy(update={"kinds": kinds})


def _check(taxonomy: Taxonomy, file: Path) -> Taxonomy:
    """Semantic checks pydantic cannot express: duplicates, empty sets, rule references."""
    problems: list[str] = []
    for kind_id, spec in taxonomy.kinds.items():
        seen_dims: set[str] = set()
        for i, dim in enumerate(spec.dimensions):
            where = f"kinds.{kind_id}.dimensions.{i} ({dim.id})"
            if dim.id in seen_dims:
                problems.append(f"{where}: duplicate dimension id {dim.id!r}")
            seen_dims.add(dim.id)
            if not dim.labels:
                problems.append(f"{where}.labels: empty label set")
            dupes = sorted({x for x in dim.label_ids if dim.label_ids.count(x) > 1})
            if dupes:
                problems.append(f"{where}.labels: duplicate label ids {dupes}")
            if dim.multi:
                lo, hi = dim.min if dim.min is not None else 1, dim.max
                if hi is None or lo > hi:
                    problems.append(f"{where}: list dimensions need 0 <= min <= max (got {lo}..{hi})")
            elif dim.min is not None or dim.max is not None:
                problems.append(f"{where}: min/max apply to list dimensions only")
        if spec.evidence is not None:
            problems.extend(_check_evidence(spec, f"kinds.{kind_id}.evidence"))
    for i, rule in enumerate(taxonomy.mapping):
        where = f"mapping.{i}"
        try:
            src = taxonomy.dimension("eval", rule.eval)
            dst = taxonomy.dimension("corpus", rule.corpus)
        except TaxonomyError as exc:
            problems.append(f"{where}: {exc}")
            continue
        names = set(src.label_ids)
        for lab in rule.any_for:
            if lab not in names:
                problems.append(f"{where}.any_for: unknown {rule.eval} label {lab!r}")
        for j, pair in enumerate(rule.pairs):
            if pair.from_ not in names:
                problems.append(f"{where}.pairs.{j}.from: unknown {rule.eval} label {pair.from_!r}")
            for lab in pair.to:
                if lab not in dst.label_ids:
                    problems.append(f"{where}.pairs.{j}.to: unknown {rule.corpus} label {lab!r}")
        if rule.rule == "identical":
            missing = sorted(names - set(dst.label_ids) - set(rule.any_for))
            if missing:
                problems.append(f"{where}: identical rule but {rule.corpus} lacks {missing}")
    if problems:
        raise TaxonomyError(f"{file}: " + "; ".join(problems))
    return taxonomy


def _check_evidence(spec: KindSpec, where: str) -> list[str]:
    """Every pattern compiles; every admitted or excluded label exists in a single-label dimension."""
    problems: list[str] = []
    dims = {d.id: d for d in spec.dimensions}
    rules = spec.evidence
    assert rules is not None
    for group, shapes in (("answer_shapes", rules.answer_shapes), ("text_cues", rules.text_cues)):
        for i, shape in enumerate(shapes):
            at = f"{where}.{group}.{i} ({shape.id})"
            for name, pattern in [("pattern", shape.pattern), *(("extract", x) for x in shape.extract)]:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    problems.append(f"{at}.{name}: not a valid regular expression: {exc}")
            for field_name, table in (("admits", shape.admits), ("excludes", shape.excludes),
                                      ("absent_excludes", shape.absent_excludes)):
                for dim_id, labels in table.items():
                    dim = dims.get(dim_id)
                    if dim is None or dim.multi:
                        problems.append(f"{at}.{field_name}: {dim_id!r} is not a single-label dimension")
                        continue
                    unknown = sorted(set(labels) - set(dim.label_ids))
                    if unknown or not labels:
                        problems.append(f"{at}.{field_name}.{dim_id}: unknown labels {unknown}" if unknown
                                        else f"{at}.{field_name}.{dim_id}: no labels")
    for dim_id in rules.consistency.dimensions:
        if dim_id not in dims or dims[dim_id].multi:
            problems.append(f"{where}.consistency.dimensions: {dim_id!r} is not a single-label dimension")
    return problems


def describe(taxonomy: Taxonomy) -> str:
    """Plain-text overview: kinds, dimensions with cardinality, labels, mapping rules."""
    lines = [f"{taxonomy.version}: {taxonomy.description}".rstrip(": ")]
    for kind, spec in taxonomy.kinds.items():
        lines.append(f"\n[{kind}] one label set per {spec.unit}")
        for dim in spec.dimensions:
            lo = dim.min if dim.min is not None else 1
            card = "exactly one" if not dim.multi else f"{dim.cardinality} {lo}-{dim.max}"
            lines.append(f"  {dim.id} ({card}): {dim.question}")
            lines.extend(f"    {lb.id:<24} {lb.description}" for lb in dim.labels)
    if taxonomy.mapping:
        lines.append("\n[mapping] eval -> corpus")
        for rule in taxonomy.mapping:
            lines.append(f"  {rule.eval} -> {rule.corpus} ({rule.rule}, {len(rule.pairs)} pairs)")
    return "\n".join(lines)
