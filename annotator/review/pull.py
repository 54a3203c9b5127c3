"""``annotator review pull``: reviewers' answers -> the labels table with a ``review_status``.

Resolution rules live in :mod:`annotator.review.resolve` (majority per dimension, a tie or a
submit-vs-discard dispute is a ``conflict``, answers that break the taxonomy are ``invalid``,
multi-label answers compared as sets with the order taken from the primary question).
Dimension columns hold the resolved human labels for confirmed and corrected rows and the LLM's
suggestion otherwise; ``llm_<dimension>`` keeps the suggestion, ``text`` the labeled text and
``flags`` why a record is disputed or invalid.

Every pull lists all records of the dataset from Argilla's database (REST listing, pages of
1,000): Argilla 2.8 bumps no timestamp when a response is deleted or a suggestion is replaced,
so no filter-based fetch can be trusted to see every change. The state file
(``<output>.state.json``) keeps one signature per record, so only records whose responses,
suggestions, fields or metadata changed are resolved again (``changed``), records deleted in
Argilla leave the table (``removed``), and the result always equals a pull from scratch.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import argilla as rg
import pyarrow as pa
from pydantic import BaseModel

from annotator.errors import ReviewError
from annotator.io import write_json_atomic
from annotator.labeling.store import write_table
from annotator.review.connect import Rest, connect, guarded
from annotator.review.layout import COMMENT, dataset_version
from annotator.review.resolve import resolve
from annotator.taxonomy import Dimension, load_taxonomy

ROWS_VERSION = 2


class PullResult(BaseModel):
    """What a pull did."""

    dataset: str
    output: str
    records: int
    fetched: int
    changed: int
    removed: int = 0
    counts: dict[str, int]


def open_dataset(client: rg.Argilla, name: str, workspace: str | None) -> tuple[rg.Dataset, str, str]:
    """The dataset plus the taxonomy version and kind its guidelines name."""
    url = str(getattr(client, "api_url", ""))
    ws = workspace or guarded(url, lambda: client.workspaces.default.name)
    ds = guarded(url, lambda: client.datasets(name=name, workspace=ws))
    if ds is None:
        raise ReviewError(f"no dataset {name!r} in workspace {ws!r}")
    found = dataset_version(ds.settings.guidelines)
    if found is None:
        raise ReviewError(f"dataset {name!r} was not created by annotator review push (no taxonomy marker)")
    return ds, found[0], found[1]


class Reader:
    """Reads a dataset's records through the REST API, with question and user names resolved."""

    def __init__(self, client: rg.Argilla, ds: rg.Dataset) -> None:
        self.rest = Rest.like(client)
        self.dataset_id = str(ds.id)
        self.questions = self.rest.question_names(self.dataset_id)
        self.users = self.rest.usernames()

    def records(self) -> list[dict[str, Any]]:
        """Every record, with responses and suggestions."""
        return list(self.rest.records(self.dataset_id))

    def answers(self, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Reviewer name -> ``{"status": ..., <question>: value}`` (discards included)."""
        out: dict[str, dict[str, Any]] = {}
        for resp in record.get("responses") or []:
            entry: dict[str, Any] = {"status": resp["status"]}
            for question, value in (resp.get("values") or {}).items():
                entry[question] = value.get("value") if isinstance(value, dict) else value
            out[self.users.get(resp["user_id"], resp["user_id"])] = entry
        return out

    def suggestions(self, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Question name -> suggestion (value, score, agent)."""
        return {self.questions.get(s["question_id"], s["question_id"]): s for s in record.get("suggestions") or []}

    def signature(self, record: dict[str, Any]) -> str:
        """Everything a row is computed from: responses, suggestions, metadata, fields."""
        suggestions = sorted((q, json.dumps(s.get("value")), str(s.get("score")), s.get("agent"))
                             for q, s in self.suggestions(record).items())
        return json.dumps([sorted(self.answers(record).items()), suggestions, record.get("metadata") or {},
                           record.get("fields") or {}], sort_keys=True, default=str)

    def row(self, record: dict[str, Any], dims: list[Dimension], kind: str) -> dict[str, Any]:
        """One output row."""
        suggestions = self.suggestions(record)
        answers = self.answers(record)
        llm = {d.id: (list(suggestions[d.id]["value"]) if d.multi else suggestions[d.id]["value"])
               if d.id in suggestions else None for d in dims}
        res = resolve(answers, llm, dims)
        meta = record.get("metadata") or {}
        fields = record.get("fields") or {}
        agent = next((s.get("agent") for s in suggestions.values() if s.get("agent")), "") or ""
        row: dict[str, Any] = {"id": record.get("external_id") or record["id"], "source": meta.get("source"),
                               "kind": kind, "text": fields.get("text")}
        for d in dims:
            row[d.id] = res.labels.get(d.id)
            row[f"{d.id}_confidence"] = meta.get(f"{d.id}_confidence")
            row[f"llm_{d.id}"] = llm[d.id]
        submitted = [a for a in answers.values() if a["status"] == "submitted"]
        row.update({
            "rationale": fields.get("rationale"),
            "labeler": meta.get("labeler") or agent.rpartition("/")[0] or None,
            "taxonomy_version": meta.get("taxonomy_version"),
            "prompt_version": meta.get("prompt_version") or agent.rpartition("/")[2] or None,
            "status": "ok", "error": None,
            "review_status": res.status, "flags": res.flags,
            "reviewers": sorted(who for who, a in answers.items() if a["status"] != "draft"),
            "n_submitted": len(submitted), "n_discarded": sum(a["status"] == "discarded" for a in answers.values()),
            "comments": [a[COMMENT] for a in submitted if a.get(COMMENT)],
            "audit": meta.get("audit"), "subset": meta.get("subset"),
            "responses": json.dumps(answers, sort_keys=True),
            "answers": json.dumps(res.answers, sort_keys=True),
        })
        return row


def pull(dataset: str, output: str | Path, *, workspace: str | None = None,
         taxonomy_path: str | None = None, client: rg.Argilla | None = None) -> PullResult:
    """Resolve reviewers' answers of ``dataset`` into ``output`` (Parquet or JSONL).

    Raises:
        ReviewError: server problems, an unknown dataset, or a taxonomy that does not match.
    """
    client = client or connect()
    ds, version, kind = open_dataset(client, dataset, workspace)
    taxonomy = load_taxonomy(taxonomy_path)
    if taxonomy.version != version:
        raise ReviewError(f"dataset {dataset!r} uses {version}; pass --taxonomy with that file")
    dims = taxonomy.dimensions(kind)
    reader = Reader(client, ds)
    state_path = Path(f"{output}.state.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("dataset_id") != str(ds.id) or state.get("rows_version") != ROWS_VERSION:
        state = {}
    old_rows: dict[str, dict[str, Any]] = state.get("rows", {})
    old_signatures: dict[str, str] = state.get("signatures", {})
    rows: dict[str, dict[str, Any]] = {}
    signatures: dict[str, str] = {}
    records = reader.records()
    changed = 0
    for record in records:
        rid = str(record.get("external_id") or record["id"])
        sig = reader.signature(record)
        if rid in old_rows and old_signatures.get(rid) == sig:
            rows[rid], signatures[rid] = old_rows[rid], sig
            continue
        rows[rid], signatures[rid] = reader.row(record, dims, kind), sig
        changed += 1
    ordered = [rows[k] for k in sorted(rows)]
    table = pa.Table.from_pylist(ordered) if ordered else pa.table({})
    write_table(table, output)
    write_json_atomic(state_path, {"dataset_id": str(ds.id), "rows_version": ROWS_VERSION,
                                   "rows": rows, "signatures": signatures})
    counts = Counter(r["review_status"] for r in ordered)
    return PullResult(dataset=ds.name, output=str(output), records=len(ordered), fetched=len(records),
                      changed=changed, removed=len(set(old_rows) - set(rows)), counts=dict(counts))
