"""Dataset layout and reviewer guidelines, both generated from the taxonomy.

Fields: the sample (``text``, markdown) and the LLM's ``rationale``. Questions: one
``LabelQuestion`` per single-label dimension and a ``MultiLabelQuestion`` per multi-label one,
named by the dimension id, labels titled by their descriptions; an optional ``comment``.
Metadata: source, subset, per-dimension confidence, vote agreement, review priority, audit flag
and the taxonomy version. The guidelines carry a machine-readable marker of the taxonomy
version, so a dataset built for another version is recognised and refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import argilla as rg

from annotator.taxonomy import Taxonomy

MARKER = re.compile(r"<!-- slice-annotator taxonomy_version=(\S+) kind=(\S+) -->")
COMMENT = "comment"


MAX_DATASET_GUIDELINES = 9800  # Argilla 2.8 refuses guidelines over 10,000 characters


def guidelines(taxonomy: Taxonomy, kind: str, full: bool = True) -> str:
    """Markdown guidelines for reviewers: every dimension and label (with examples when ``full``)."""
    spec = taxonomy.kinds[kind]
    lines = [
        f"# Reviewing {spec.unit}s ({taxonomy.version})",
        "",
        "Each record shows the text and the LLM's suggested labels. For every question, keep the "
        "suggestion if it is right or pick the right label(s); then **Submit**. **Discard** items "
        "that cannot be labeled (broken, empty, not a real " + spec.unit + "). Records are ordered by "
        "review priority: low model confidence and vote disagreement first; some confident records "
        "are in a random audit sample (metadata `audit`) so the accuracy of unreviewed labels can "
        "be estimated — review those as carefully as the rest.",
        "",
    ]
    for dim in spec.dimensions:
        card = ("exactly one label" if not dim.multi else
                f"{dim.min if dim.min is not None else 1} to {dim.max} labels"
                + (", most important first" if dim.cardinality == "ordered_list" else ""))
        lines += [f"## {dim.id}: {dim.question} ({card})", ""]
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
    path.write_text(guidelines(taxonomy, kind), encoding="utf-8")
    return path


def settings(taxonomy: Taxonomy, kind: str, min_submitted: int = 1) -> rg.Settings:
    """Argilla dataset settings for ``kind`` labels of ``taxonomy``."""
    dims = taxonomy.dimensions(kind)
    questions: list = []
    for dim in dims:
        labels = {lb.id: f"{lb.id} — {lb.description}" for lb in dim.labels}
        if dim.multi:
            questions.append(rg.MultiLabelQuestion(name=dim.id, title=dim.question, labels=labels,
                                                   required=bool(dim.min), visible_labels=len(labels)))
        else:
            questions.append(rg.LabelQuestion(name=dim.id, title=dim.question, labels=labels,
                                              visible_labels=len(labels)))
    questions.append(rg.TextQuestion(name=COMMENT, title="Comment (optional)", required=False))
    metadata = [rg.TermsMetadataProperty(name="source"), rg.TermsMetadataProperty(name="subset"),
                rg.TermsMetadataProperty(name="audit"), rg.TermsMetadataProperty(name="taxonomy_version"),
                rg.FloatMetadataProperty(name="priority"), rg.FloatMetadataProperty(name="agreement")]
    metadata += [rg.FloatMetadataProperty(name=f"{d.id}_confidence") for d in dims]
    return rg.Settings(
        fields=[rg.TextField(name="text", title="Text", use_markdown=True),
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
