"""datatrove steps: the distilled classifier (with optional LLM fallback) and the shard labeler.

``ClassifyDocuments`` is a plain datatrove ``PipelineStep`` for anyone's pipeline: it batches
documents, predicts the corpus dimensions and writes them into ``doc.metadata`` (``domain``,
``genre``, ``operation``, ``content_form``, ``<dim>_confidence``, ``labeler``). With
``llm_below`` it sends documents whose lowest confidence is under the threshold through the LLM
path (same endpoint settings and answer cache as ``annotator label``) and records which labeler
produced each row.

``LabelShards`` is what ``annotator shards label`` runs on every executor: each rank takes its
shards, streams each through ``ClassifyDocuments`` and writes one Parquet file per shard
(temporary name, renamed when complete) plus the shard's manifest entry. Record errors become
``status=failed`` rows (or, without an id, manifest entries); a shard that cannot be read is
reported and the rank goes on to its next shard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from annotator.corpus.shards import Doc, DocError, ShardError, read_shard
from annotator.io import table_writer, write_text_atomic
from annotator.taxonomy import Dimension

LABELER = "classifier"
MAX_ERRORS = 50


def _batches(data: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in data:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class ClassifyDocuments(PipelineStep):
    """Label documents with the distilled corpus classifier (datatrove step)."""

    name = "slice-annotator corpus classifier"
    type = "🏷 - LABELER"

    def __init__(self, model_dir: str, batch_size: int = 4096, llm_below: float | None = None,
                 llm_settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model_dir = str(model_dir)
        self.batch_size = batch_size
        self.llm_below = llm_below
        self.llm_settings = dict(llm_settings or {})
        self._model: Any = None
        self._session: Any = None  # the LLM fallback's labeling session, opened on first need

    @property
    def model(self) -> Any:
        """The classifier, loaded once per worker."""
        if self._model is None:
            from annotator.corpus.model import load_classifier

            self._model = load_classifier(self.model_dir)
        return self._model

    def classify(self, ids: list[str], texts: list[str], sources: list[Any]) -> dict[str, list[Any]]:
        """Columns for a batch: every dimension, ``<dim>_confidence``, ``labeler`` and ``error``."""
        model = self.model
        labels, conf = model.predict(texts)
        n = len(texts)
        cols: dict[str, list[Any]] = {}
        for dim in model.dims:
            cols[dim.id] = labels[dim.id]
            cols[f"{dim.id}_confidence"] = conf[dim.id].tolist()
        cols["labeler"] = [f"{LABELER}:{model.model_id}"] * n
        cols["error"] = [None] * n
        if self.llm_below is not None:
            lowest = np.min(np.column_stack([conf[d.id] for d in model.dims]), axis=1)
            unsure = np.nonzero(lowest < self.llm_below)[0].tolist()
            if unsure:
                self._llm(unsure, ids, texts, sources, cols, model.dims)
        self.stat_update("documents", value=n)
        return cols

    def label_batch(self, docs: list[Document]) -> None:
        """Predict for a batch of datatrove documents, in place (``doc.metadata``)."""
        cols = self.classify([str(d.id) for d in docs], [d.text for d in docs],
                             [d.metadata.get("source") for d in docs])
        errors = cols.pop("error")
        for i, doc in enumerate(docs):
            doc.metadata.update({k: v[i] for k, v in cols.items()})
            if errors[i] is not None:
                doc.metadata["llm_error"] = errors[i]

    def _llm(self, rows: list[int], ids: list[str], texts: list[str], sources: list[Any],
             cols: dict[str, list[Any]], dims: list[Dimension]) -> None:
        from annotator.records import Item

        items = [Item(id=ids[i], text=texts[i], source=str(sources[i] or "corpus")) for i in rows]
        table = {a.id: a for a in self.session().label(items)}
        for i in rows:
            annotation = table[ids[i]]
            if annotation.status != "ok":
                cols["error"][i] = f"llm fallback failed: {annotation.error}"
                continue
            for dim in dims:
                value = annotation.labels[dim.id]
                cols[dim.id][i] = [str(v) for v in value] if dim.multi else str(value)
                confidence = annotation.confidence.get(dim.id)
                cols[f"{dim.id}_confidence"][i] = None if confidence is None else float(confidence)
            cols["labeler"][i] = annotation.labeler
        self.stat_update("llm_fallback", value=len(rows))

    def session(self) -> Any:
        """The LLM fallback's :class:`~annotator.labeling.session.Session`, opened once per worker.

        One settings resolution, one cache, one client and event loop, and with the embedded model
        one server for every batch of unsure documents; :meth:`close` ends it.
        """
        if self._session is None:
            from annotator.config import load_settings
            from annotator.labeling.session import Session

            self._session = Session(load_settings({**self.llm_settings, "kind": "corpus"})).__enter__()
        return self._session

    def close(self) -> None:
        """End the LLM fallback's session (the embedded server stops); a later batch opens a new one."""
        if self._session is not None:
            session, self._session = self._session, None
            session.__exit__(None, None, None)

    def run(self, data: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        """Yield every document with its labels in ``metadata`` (an ``llm_error`` when the fallback failed).

        With ``llm_below`` the LLM fallback's session (and the embedded model's server) is opened
        once for the whole run, not once per batch, and closed when the run ends.
        """
        try:
            for batch in _batches(data, self.batch_size):
                with self.track_time("batch"):
                    self.label_batch(batch)
                yield from batch
        finally:
            self.close()


def output_name(shard: Path) -> str:
    """``<shard name>-<hash of its path>.parquet``: flat under OUTDIR, never colliding."""
    import hashlib

    digest = hashlib.sha256(str(shard).encode()).hexdigest()[:8]
    stem = shard.name.split(".")[0]
    return f"{stem}-{digest}.parquet"


def schema(dims: list[Dimension], keep_text: bool) -> pa.Schema:
    """The labeled shard's columns."""
    fields = [pa.field("id", pa.string())]
    fields += [pa.field(d.id, pa.list_(pa.string()) if d.multi else pa.string()) for d in dims]
    fields += [pa.field(f"{d.id}_confidence", pa.float64()) for d in dims]
    fields += [pa.field(n, pa.string()) for n in ("labeler", "taxonomy_version", "status", "error")]
    if keep_text:
        fields.append(pa.field("text", pa.string()))
    return pa.schema(fields)


class LabelShards(PipelineStep):
    """Label whole shards: one Parquet output and one manifest entry per shard (``annotator shards label``)."""

    name = "slice-annotator shard labeler"
    type = "🏷 - LABELER"

    def __init__(self, shards: list[str], out_dir: str, classify: ClassifyDocuments, keep_text: bool = False) -> None:
        super().__init__()
        self.shards = shards
        self.out_dir = out_dir
        self.classify = classify
        self.keep_text = keep_text

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        """Process the shards of this rank; yields nothing (outputs are files)."""
        try:
            for shard in self.shards[rank::world_size]:
                self.label_shard(Path(shard))
        finally:
            self.classify.close()  # the LLM fallback's session, when one was opened
        yield from ()

    def label_shard(self, shard: Path) -> dict[str, Any]:
        """Label one shard, write its output and its manifest entry; never raises for bad data."""
        started = time.perf_counter()
        out_dir = Path(self.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model = self.classify.model
        dims = model.dims
        target = out_dir / output_name(shard)
        entry: dict[str, Any] = {"shard": str(shard), "output": str(target), "read": 0, "labeled": 0, "failed": 0,
                                 "classifier": 0, "llm": 0, "record_errors": [], "status": "done", "error": None,
                                 "model_id": model.model_id, "size": shard.stat().st_size if shard.exists() else None,
                                 "mtime": shard.stat().st_mtime if shard.exists() else None}
        version = str(model.meta.get("taxonomy_version", ""))
        try:  # written under a temporary name, renamed when complete (removed on failure)
            with table_writer(target, schema(dims, self.keep_text)) as write:
                for batch in _batches(read_shard(shard), self.classify.batch_size):
                    table = self._table(batch, dims, version, entry)
                    if table is not None:
                        write(table)
        except ShardError as exc:
            entry.update(status="failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is this shard's, reported, never the run's
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        entry["seconds"] = round(time.perf_counter() - started, 3)
        status_dir = out_dir / ".status"
        status_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(status_dir / f"{target.stem}.json", json.dumps(entry))
        return entry

    def _table(self, batch: list[Doc | DocError], dims: list[Dimension], version: str,
               entry: dict[str, Any]) -> pa.Table | None:
        docs = [r for r in batch if isinstance(r, Doc)]
        errors = [r for r in batch if isinstance(r, DocError)]
        cols: dict[str, list[Any]] = {"id": [d.id for d in docs]}
        if docs:
            cols.update(self.classify.classify(cols["id"], [d.text for d in docs], [d.source for d in docs]))
        else:
            cols.update({name: [] for name in schema(dims, False).names if name != "id"})
        cols["taxonomy_version"] = [version] * len(docs)
        cols["status"] = ["ok"] * len(docs)
        if self.keep_text:
            cols["text"] = [d.text for d in docs]
        llm = sum(1 for tag in cols["labeler"] if not str(tag).startswith(LABELER))
        entry["llm"] += llm
        entry["classifier"] += len(docs) - llm
        entry["read"] += len(batch)
        entry["labeled"] += len(docs)
        for rec in errors:
            entry["failed"] += 1
            if len(entry["record_errors"]) < MAX_ERRORS:
                entry["record_errors"].append({"line": rec.line, "id": rec.id, "reason": rec.reason})
            if rec.id is None:
                continue
            for name in cols:
                cols[name].append(None)
            cols["id"][-1], cols["taxonomy_version"][-1] = rec.id, version
            cols["status"][-1], cols["error"][-1] = "failed", f"line {rec.line}: {rec.reason}"
        if not cols["id"]:
            return None
        return pa.Table.from_pydict(cols, schema=schema(dims, self.keep_text))
