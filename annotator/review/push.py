"""``annotator review push``: LLM labels -> Argilla records with suggestions.

Record id = item id, so pushing again updates suggestions and metadata in place, never
duplicates a record and never touches reviewers' responses. Records go in review-priority
order (:mod:`annotator.review.queue`).
Suggestions carry ``score`` = confidence and ``agent`` = ``<labeler>/<prompt_version>`` (Argilla
does not accept ``@`` in an agent name).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import argilla as rg
from pydantic import BaseModel

from annotator.config import guidelines_dir as default_guidelines_dir
from annotator.errors import InputError, ReviewError
from annotator.labeling.sources import SourceSpec, items_from_records
from annotator.labeling.store import read_table
from annotator.review.connect import connect, guarded
from annotator.review.layout import QUEUE, dataset_version, settings, write_guidelines
from annotator.review.queue import as_number, model_name, plan, queue_text
from annotator.review.resolve import primary_question
from annotator.taxonomy import Taxonomy, load_taxonomy


class PushResult(BaseModel):
    """What a push did."""

    dataset: str
    workspace: str
    created: bool
    pushed: int
    skipped_failed: int
    low_confidence: int
    audit: int
    guidelines: str
    queue_url: str


def _dataset(client: rg.Argilla, name: str, workspace: str, taxonomy: Taxonomy, kind: str,
             min_submitted: int, new_version: bool) -> tuple[rg.Dataset, bool]:
    existing = client.datasets(name=name, workspace=workspace)
    if existing is not None:
        found = dataset_version(existing.settings.guidelines)
        if found == (taxonomy.version, kind):
            return _distributed(existing, min_submitted), False
        if not new_version:
            raise ReviewError(
                f"dataset {name!r} in workspace {workspace!r} was built for "
                f"{found[0] + ' (' + found[1] + ')' if found else 'something else'}, not {taxonomy.version} "
                f"({kind}); pass --new-version to create a fresh dataset"
            )
        name = f"{name}-{taxonomy.content_hash[:8]}"
        again = client.datasets(name=name, workspace=workspace)
        if again is not None:
            return again, False
    dataset = rg.Dataset(name=name, workspace=workspace, settings=settings(taxonomy, kind, min_submitted),
                         client=client)
    return dataset.create(), True


def _distributed(ds: rg.Dataset, min_submitted: int) -> rg.Dataset:
    """Apply ``--min-submitted`` to an existing dataset (a second review pass), or say why it cannot be."""
    current = getattr(ds.settings.distribution, "min_submitted", None)
    if current == min_submitted:
        return ds
    ds.settings.distribution = rg.TaskDistribution(min_submitted=min_submitted)
    try:
        ds.update()
    except Exception as exc:  # the server refuses (argilla raises its own API error types)
        raise ReviewError(f"dataset {ds.name!r}: cannot change --min-submitted from {current} to {min_submitted} "
                          f"({exc}); push to a new dataset (--dataset NAME) for a second review pass") from None
    return ds


def push(
    labels: str | Path,
    dataset: str,
    *,
    workspace: str | None = None,
    taxonomy_path: str | None = None,
    text_field: str | None = None,
    template: str | None = None,
    min_submitted: int = 1,
    audit_fraction: float = 0.1,
    new_version: bool = False,
    guidelines_dir: Path | None = None,
    client: rg.Argilla | None = None,
    audit_all: bool = False,
) -> PushResult:
    """Push a labels table's ok rows to an Argilla dataset (created from the taxonomy if needed).

    ``audit_all`` flags every record as an audit record (a random sample pushed to estimate the
    accuracy of labels nobody else reviews, e.g. a classified corpus).

    Raises:
        InputError: unreadable table, mixed kinds, or rows without text.
        ReviewError: server problems, or a dataset built for another taxonomy version.
    """
    rows = read_table(labels).to_pylist()
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    if not ok:
        raise InputError(f"{labels}: no rows with status ok to push")
    kinds = {r.get("kind", "eval") for r in ok}
    if len(kinds) != 1:
        raise InputError(f"{labels}: mixes kinds {sorted(kinds)}; push one kind per dataset")
    kind = kinds.pop()
    taxonomy = load_taxonomy(taxonomy_path)
    versions = {r.get("taxonomy_version") for r in ok} - {None}
    if versions and versions != {taxonomy.version}:
        raise InputError(f"{labels}: labeled with {sorted(versions)}, but the taxonomy is {taxonomy.version}; "
                         "pass --taxonomy with the file the labels were made with")
    dims = taxonomy.dimensions(kind)
    if text_field is None and template is None:
        if all(r.get("text") for r in ok):
            text_field = "text"  # the labels table's own column: the exact text that was labeled
        else:  # a table from before the text column: find the input field
            ok = [{k: v for k, v in r.items() if k != "text"} for r in ok]
    spec = SourceSpec(text_field=text_field, template=template, id_field="id")
    texts = {}
    for rec in items_from_records(ok, spec, name=str(labels)):
        if not hasattr(rec, "text"):
            raise InputError(f"{rec.message()} (the labels table needs the input text: label without "
                             "--no-keep-fields, or pass --text-field/--template)")
        texts[rec.id] = rec.text
    client = client or connect()
    url = str(getattr(client, "api_url", ""))
    ws = workspace or guarded(url, lambda: client.workspaces.default.name)
    ds, created = guarded(url, lambda: _dataset(client, dataset, ws, taxonomy, kind, min_submitted, new_version))
    records, low, audit = [], 0, 0
    for row in ok:
        meta = plan(row, dims, audit_fraction)
        if audit_all:
            meta["audit"] = "yes"
        meta["taxonomy_version"] = taxonomy.version
        low += meta["priority"] > 1.0
        labeler = str(row.get("labeler") or "llm")
        meta["labeler"] = labeler  # provenance for pull; hidden from reviewers (it can name a host and port)
        if row.get("prompt_version"):
            meta["prompt_version"] = str(row["prompt_version"])
        agent = f"{model_name(labeler)}/{row.get('prompt_version') or ''}".replace("@", "/").strip("/")
        suggestions = []
        for d in dims:
            value = row.get(d.id)
            if value is None or (d.multi and not value):
                continue
            value = list(value) if d.multi else value
            score = as_number(row.get(f"{d.id}_confidence"))
            suggestions.append(rg.Suggestion(question_name=d.id, value=value, agent=agent,
                                             score=([score] * len(value) if d.multi else score)
                                             if score is not None else None))
            if primary_question(d) and value:
                suggestions.append(rg.Suggestion(question_name=primary_question(d), value=value[0], agent=agent,
                                                 score=score))
        audit += meta["audit"] == "yes"
        fields = {QUEUE: queue_text(meta, dims), "text": texts[str(row["id"])],
                  "rationale": row.get("rationale") or None}
        records.append((meta["priority"], rg.Record(id=str(row["id"]), fields=fields, metadata=meta,
                                                    suggestions=suggestions)))
    records.sort(key=lambda pair: -pair[0])
    ordered = [r for _, r in records]
    if not created:  # a dataset made by an earlier layout: send only the fields and questions it has
        ordered = _fit(ds, ordered)
    with contextlib.redirect_stderr(io.StringIO()):  # the SDK draws a progress bar per batch
        guarded(url, lambda: ds.records.log(ordered))
    directory = guidelines_dir or default_guidelines_dir()
    written = write_guidelines(taxonomy, kind, directory)
    return PushResult(dataset=ds.name, workspace=ws, created=created, pushed=len(records),
                      skipped_failed=len(rows) - len(ok), low_confidence=low, audit=audit,
                      guidelines=str(written), queue_url=queue_url(url, str(ds.id)))


def _fit(ds: rg.Dataset, records: list[rg.Record]) -> list[rg.Record]:
    fields = {f.name for f in ds.settings.fields}
    questions = {q.name for q in ds.settings.questions}
    if {QUEUE, "text", "rationale"} <= fields and all(s.question_name in questions
                                                      for r in records for s in r.suggestions):
        return records
    return [rg.Record(id=r.id, fields={k: v for k, v in r.fields.to_dict().items() if k in fields},
                      metadata=r.metadata.to_dict(),
                      suggestions=[s for s in r.suggestions if s.question_name in questions])
            for r in records]


def queue_url(api_url: str, dataset_id: str) -> str:
    """The dataset's annotation view sorted by review priority, highest first.

    Argilla 2.8 shows each annotator a per-user shuffled order by default (the search engine's
    ``random_score`` seeded by the user id), which no push can change; this link sorts instead.
    """
    return f"{api_url.rstrip('/')}/dataset/{dataset_id}/annotation-mode?sort=metadata.priority.desc"
