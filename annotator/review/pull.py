"""``annotator review pull``: reviewers' answers -> the labels table with a ``review_status``.

Per dimension the submitted answers are resolved by majority (a tie is a ``conflict``).
``review_status``: ``confirmed`` (reviewers kept every suggestion), ``corrected`` (some
dimension changed), ``conflict`` (a tie on some dimension), ``discarded`` (only discards),
``pending`` (no answer yet). Dimension columns hold the resolved human labels for confirmed and
corrected rows and the LLM's suggestion otherwise; ``llm_<dimension>`` keeps the suggestion.

Incremental: the first pull reads every record; later pulls ask Argilla only for records that
have responses or were inserted/updated since the last pull (Argilla 2.8 has no response-time
filter), and re-resolve only those whose responses changed (``<output>.state.json``).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import argilla as rg
import pyarrow as pa
from pydantic import BaseModel

from annotator.accounting import write_json_atomic
from annotator.errors import ReviewError
from annotator.review.connect import connect, guarded
from annotator.review.layout import COMMENT, dataset_version
from annotator.store import write_table
from annotator.taxonomy import Dimension, load_taxonomy

CONFLICT = "conflict"


class PullResult(BaseModel):
    """What a pull did."""

    dataset: str
    output: str
    records: int
    fetched: int
    changed: int
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


def _value(value: Any, dim: Dimension) -> Any:
    return tuple(value) if dim.multi else value


def resolve(answers: list[Any], dim: Dimension) -> Any:
    """Majority over submitted answers of one dimension; ``conflict`` on a tie."""
    counts = Counter(_value(a, dim) for a in answers if a is not None)
    if not counts:
        return None
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return CONFLICT
    best = ranked[0][0]
    return list(best) if dim.multi else best


def record_row(record: rg.Record, dims: list[Dimension], users: dict[str, str]) -> dict[str, Any]:
    """One output row for an Argilla record with its suggestions and responses."""
    suggestions = {s.question_name: s for s in record.suggestions}
    by_user = user_answers(record)
    submitted = [a for a in by_user.values() if a["status"] == "submitted"]
    discarded = [a for a in by_user.values() if a["status"] == "discarded"]
    llm = {d.id: (list(suggestions[d.id].value) if d.multi else suggestions[d.id].value)
           if d.id in suggestions else None for d in dims}
    resolved = {d.id: resolve([a.get(d.id) for a in submitted], d) for d in dims}
    if submitted:
        if any(v == CONFLICT for v in resolved.values()):
            status = "conflict"
        elif all(resolved[d.id] in (None, llm[d.id]) for d in dims):
            status = "confirmed"
        else:
            status = "corrected"
    else:
        status = "discarded" if discarded else "pending"
    meta = record.metadata.to_dict() if record.metadata else {}
    agent = next((s.agent for s in suggestions.values() if s.agent), "") or ""
    labeler, _, prompt_version = agent.rpartition("/")
    row: dict[str, Any] = {"id": record.id, "source": meta.get("source"), "kind": None}
    for d in dims:
        human = resolved[d.id] if status in ("confirmed", "corrected") and resolved[d.id] is not None else None
        row[d.id] = human if human is not None else llm[d.id]
        row[f"{d.id}_confidence"] = meta.get(f"{d.id}_confidence")
        row[f"llm_{d.id}"] = llm[d.id]
    row.update({
        "rationale": record.fields.get("rationale") if record.fields else None,
        "labeler": labeler or None, "taxonomy_version": meta.get("taxonomy_version"),
        "prompt_version": prompt_version or None, "status": "ok", "error": None,
        "review_status": status,
        "reviewers": sorted(users.get(uid, uid) for uid, a in by_user.items() if a["status"] != "draft"),
        "n_submitted": len(submitted), "n_discarded": len(discarded),
        "comments": [a[COMMENT] for a in submitted if a.get(COMMENT)],
        "audit": meta.get("audit"), "subset": meta.get("subset"),
        "responses": json.dumps({users.get(uid, uid): a for uid, a in by_user.items()}, sort_keys=True),
    })
    return row


def user_answers(record: rg.Record) -> dict[str, dict[str, Any]]:
    """User id -> {"status": ..., <question>: value, ...} for every response of the record.

    Read from the record's API model: the SDK's flattened ``record.responses`` has one entry per
    answered question, so a discard (sent with empty values) would vanish from it.
    """
    out: dict[str, dict[str, Any]] = {}
    for resp in record._model.responses or []:
        status = str(getattr(resp.status, "value", resp.status))
        entry: dict[str, Any] = {"status": status}
        for question, value in (resp.values or {}).items():
            entry[question] = value.get("value") if isinstance(value, dict) else value
        out[str(resp.user_id)] = entry
    return out


def _signature(record: rg.Record) -> str:
    """Everything a row is computed from: responses, suggestions, metadata, fields."""
    suggestions = sorted((s.question_name, str(s.value), str(s.score), s.agent) for s in record.suggestions)
    meta = record.metadata.to_dict() if record.metadata else {}
    return json.dumps([sorted(user_answers(record).items()), suggestions, meta, dict(record.fields or {})],
                      sort_keys=True, default=str)


def pull(dataset: str, output: str | Path, *, workspace: str | None = None,
         taxonomy_path: str | None = None, client: rg.Argilla | None = None) -> PullResult:
    """Resolve reviewers' answers of ``dataset`` into ``output`` (Parquet or JSONL).

    Raises:
        ReviewError: server problems, an unknown dataset, or a taxonomy that does not match.
    """
    client = client or connect()
    url = str(getattr(client, "api_url", ""))
    ds, version, kind = open_dataset(client, dataset, workspace)
    taxonomy = load_taxonomy(taxonomy_path)
    if taxonomy.version != version:
        raise ReviewError(f"dataset {dataset!r} uses {version}; pass --taxonomy with that file")
    dims = taxonomy.dimensions(kind)
    users = {str(u.id): u.username for u in guarded(url, lambda: list(client.users))}
    state_path = Path(f"{output}.state.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("dataset_id") != str(ds.id):
        state = {}
    started = datetime.now(UTC).replace(tzinfo=None).isoformat()
    rows: dict[str, dict[str, Any]] = state.get("rows", {})
    signatures: dict[str, str] = state.get("signatures", {})
    if state:
        queries = [rg.Query(filter=rg.Filter(("response.status", "in", ["submitted", "discarded", "draft"]))),
                   rg.Query(filter=rg.Filter(("updated_at", ">=", state["pulled_at"])))]
    else:
        queries = [None]
    fetched: dict[str, rg.Record] = {}
    for query in queries:
        for record in guarded(url, lambda q=query: list(ds.records(query=q, with_responses=True,
                                                                   with_suggestions=True))):
            fetched[record.id] = record
    changed = 0
    for rid, record in fetched.items():
        sig = _signature(record)
        if rid in rows and signatures.get(rid) == sig and state.get("rows_version") == 1:
            continue
        row = record_row(record, dims, users)
        row["kind"] = kind
        rows[rid], signatures[rid] = row, sig
        changed += 1
    ordered = [rows[k] for k in sorted(rows)]
    table = pa.Table.from_pylist(ordered) if ordered else pa.table({})
    write_table(table, output)
    write_json_atomic(state_path, {"dataset_id": str(ds.id), "pulled_at": started, "rows_version": 1,
                                   "rows": rows, "signatures": signatures})
    counts = Counter(r["review_status"] for r in ordered)
    return PullResult(dataset=ds.name, output=str(output), records=len(ordered), fetched=len(fetched),
                      changed=changed, counts=dict(counts))
