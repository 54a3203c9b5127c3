"""Dataset layout and reviewer guidelines, both generated from the taxonomy.

Fields: ``queue`` (why the record is in the queue: priority, weakest dimension and its
confidence, audit flag — shown first, where the reviewer reads), the sample (``text``,
markdown) and the LLM's ``rationale``. Questions: one ``LabelQuestion`` per single-label
dimension and a ``MultiLabelQuestion`` per multi-label one, named by the dimension id and titled
as in the guidelines; labels are titled by their short ids, with every description in the
question's info tooltip and in the guidelines panel. Each ordered dimension also gets an
optional ``<dimension>_primary`` question ("which comes first"), preselected from the
suggestion, since the UI stores multi-label answers in label order. Then an optional
``comment``. Metadata: source, subset, per-dimension confidence, vote agreement, review
priority, audit flag and the taxonomy version. The guidelines carry a machine-readable marker of the taxonomy
version, so a dataset built for another version is recognised and refused. Only :func:`settings` needs
``argilla``; the guidelines are plain text (importable without the ``review`` extra).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.io import write_text_atomic
from annotator.review.resolve import primary_question
from annotator.taxonomy import Dimension, Taxonomy

if TYPE_CHECKING:
    import argilla as rg

MARKER = re.compile(r"<!-- slice-annotator taxonomy_version=(\S+) kind=(\S+) -->")
COMMENT = "comment"
QUEUE = "queue"


MAX_DATASET_GUIDELINES = 9800  # Argilla 2.8 refuses guidelines over 10,000 characters
MAX_QUESTION_DESCRIPTION = 1000  # and question descriptions over 1,000


def cardinality(dim: Dimension) -> str:
    """How many labels a dimension takes, in the words reviewers read (``1–3, most important first``)."""
    if not dim.multi:
        return "one label"
    span = f"{dim.min if dim.min is not None else 1}–{dim.max}" if dim.max else f"at least {dim.min or 1}"
    return f"{span}, most important first" if dim.cardinality == "ordered_list" else f"{span} labels"


def question_title(dim: Dimension) -> str:
    """The dimension as the guidelines name it: ``id: question (cardinality)``."""
    return f"{dim.id}: {dim.question} ({cardinality(dim)})"


def question_description(dim: Dimension) -> str:
    """Every label with its description, for the question's info tooltip (cut to Argilla's limit)."""
    lines, size = [], 0
    for label in dim.labels:
        line = f"{label.id}: {label.description}"
        if size + len(line) + 1 > MAX_QUESTION_DESCRIPTION - 40:
            lines.append("... (all labels in the guidelines)")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def guidelines(taxonomy: Taxonomy, kind: str, full: bool = True) -> str:
    """Markdown guidelines for reviewers: every dimension and label (with examples when ``full``)."""
    spec = taxonomy.kinds[kind]
    lines = [
        f"# Reviewing {spec.unit}s ({taxonomy.version})",
        "",
        "Each record shows the text and the LLM's suggested labels. For every question, keep the "
        "suggestion if it is right or pick the right label(s); then **Submit**. **Discard** items "
        "that cannot be labeled (broken, empty, not a real " + spec.unit + "): a discard next to "
        "another reviewer's submit marks the record as disputed, so its labels are not used until "
        "someone settles it. Open the queue with the link that `annotator review push` prints: it "
        "sorts records by review priority, highest first (low model confidence and vote "
        "disagreement). The first field, *Review queue*, shows each record's priority and its "
        "least confident dimension. Some confident records are in a random audit sample (`audit: "
        "yes`) so the accuracy of unreviewed labels can be estimated — review those as carefully as "
        "the rest.",
        "",
    ]
    for dim in spec.dimensions:
        lines += [f"## {question_title(dim)}", ""]
        if primary_question(dim):
            lines += [f"Tick every {dim.id} label that applies; the optional question *{primary_question(dim)}* "
                      "says which comes first (it starts with the suggestion's first label). The order in "
                      "which you tick labels is not kept.", ""]
        for label in dim.labels:
            lines.append(f"- **{label.id}** — {label.description}"
                         + (". Examples: " + "; ".join(label.examples) if full else "")
                         + (f". *Not to be confused with:* {label.confuse}" if label.confuse else ""))
        lines.append("")
    lines.append(f"<!-- slice-annotator taxonomy_version={taxonomy.version} kind={kind} -->")
    return "\n".join(lines) + "\n"


def dataset_guidelines(taxonomy: Taxonomy, kind: str) -> str:
    """The guidelines stored in the dataset: full if they fit Argilla's limit, else without examples."""
    text = guidelines(taxonomy, kind, full=True)
    if len(text) > MAX_DATASET_GUIDELINES:
        text = guidelines(taxonomy, kind, full=False)
    if len(text) > MAX_DATASET_GUIDELINES:
        marker = text.rstrip().rsplit("\n", 1)[1]
        text = text[: MAX_DATASET_GUIDELINES - len(marker) - 80] + "\n\n(see review/guidelines for the rest)\n" + marker
    return text


def write_guidelines(taxonomy: Taxonomy, kind: str, directory: Path) -> Path:
    """Write the guidelines into ``directory`` (the top-level ``review/`` folder by default)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"guidelines-{kind}.md"
    write_text_atomic(path, guidelines(taxonomy, kind))
    return path


def settings(taxonomy: Taxonomy, kind: str, min_submitted: int = 1) -> rg.Settings:
    """Argilla dataset settings for ``kind`` labels of ``taxonomy``."""
    import argilla as rg  # the Argilla boundary: the guidelines above need no argilla

    dims = taxonomy.dimensions(kind)
    questions: list = []
    for dim in dims:
        labels = {lb.id: lb.id for lb in dim.labels}
        common = {"name": dim.id, "title": question_title(dim), "labels": labels, "visible_labels": len(labels),
                  "description": question_description(dim)}
        if dim.multi:
            questions.append(rg.MultiLabelQuestion(required=bool(dim.min), **common))
        else:
            questions.append(rg.LabelQuestion(**common))
    for dim in dims:
        primary = primary_question(dim)
        if primary:
            questions.append(rg.LabelQuestion(
                name=primary, title=f"{dim.id}: which comes first? (optional; starts as the suggestion's first)",
                labels={lb.id: lb.id for lb in dim.labels}, visible_labels=len(dim.labels), required=False,
                description=f"The most important {dim.id} label; it must be one of those ticked above."))
    questions.append(rg.TextQuestion(name=COMMENT, title="Comment (optional)", required=False))
    metadata = [rg.TermsMetadataProperty(name="source"), rg.TermsMetadataProperty(name="subset"),
                rg.TermsMetadataProperty(name="audit"), rg.TermsMetadataProperty(name="taxonomy_version"),
                # provenance, not for reviewers: a self-hosted labeler names its endpoint's host and port
                rg.TermsMetadataProperty(name="labeler", visible_for_annotators=False),
                rg.TermsMetadataProperty(name="prompt_version", visible_for_annotators=False),
                rg.FloatMetadataProperty(name="priority"), rg.FloatMetadataProperty(name="agreement")]
    metadata += [rg.FloatMetadataProperty(name=f"{d.id}_confidence") for d in dims]
    return rg.Settings(
        fields=[rg.TextField(name=QUEUE, title="Review queue", use_markdown=True),
                rg.TextField(name="text", title="Text", use_markdown=True),
                rg.TextField(name="rationale", title="LLM rationale", required=False, use_markdown=True)],
        questions=questions,
        metadata=metadata,
        guidelines=dataset_guidelines(taxonomy, kind),
        distribution=rg.TaskDistribution(min_submitted=min_submitted),
        allow_extra_metadata=True,
    )


def dataset_version(guideline_text: str | None) -> tuple[str, str] | None:
    """(taxonomy_version, kind) from a dataset's guidelines marker, or None."""
    match = MARKER.search(guideline_text or "")
    return (match.group(1), match.group(2)) if match else None
