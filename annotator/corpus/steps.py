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
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from annotator.corpus.shards import Doc, DocError, ShardError, read_shard
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

    @property
    def model(self) -> Any:
        """The classifier, loaded once per worker."""
        if self._model is None:
            from annotator.corpus.model import load_classifier

            self._model = load_classifier(self.model_dir)
        return self._model

    def label_batch(self, docs: list[Document]) -> None:
        """Predict for a batch in place (metadata), then send unsure ones to the LLM when asked."""
        model = self.model
        labels, conf = model.predict([d.text for d in docs])
        names = [d.id for d in model.dims]
        for i, doc in enumerate(docs):
            meta = doc.metadata
            for dim in names:
                meta[dim] = labels[dim][i]
                meta[f"{dim}_confidence"] = float(conf[dim][i])
            meta["labeler"] = f"{LABELER}:{model.model_id}"
        if self.llm_below is not None:
            unsure = [d for d in docs if min(d.metadata[f"{n}_confidence"] for n in names) < self.llm_below]
            if unsure:
                self._llm(unsure, model.dims)
        self.stat_update("documents", value=len(docs))

    def _llm(self, docs: list[Document], dims: list[Dimension]) -> None:
        from annotator.pipeline import label
        from annotator.records import Item

        items = [Item(id=str(d.id), text=d.text, source=str(d.metadata.get("source") or "corpus")) for d in docs]
        table = label(items, kind="corpus", **self.llm_settings).set_index("id")
        for doc in docs:
            row = table.loc[str(doc.id)]
            if row["status"] != "ok":
                doc.metadata["llm_error"] = str(row["error"])
                continue
            for dim in dims:
                value = row[dim.id]
                doc.metadata[dim.id] = [str(v) for v in value] if dim.multi else str(value)
                confidence = row.get(f"{dim.id}_confidence")
                doc.metadata[f"{dim.id}_confidence"] = None if confidence is None or confidence != confidence \
                    else float(confidence)
            doc.metadata["labeler"] = str(row["labeler"])
        self.stat_update("llm_fallback", value=len(docs))

    def run(self, data: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        """Yield every document with its labels in ``metadata``."""
        for batch in _batches(data, self.batch_size):
            with self.track_time("batch"):
                self.label_batch(batch)
            yield from batch


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
        for shard in self.shards[rank::world_size]:
            self.label_shard(Path(shard))
        yield from ()

    def label_shard(self, shard: Path) -> dict[str, Any]:
        """Label one shard, write its output and its manifest entry; never raises for bad data."""
        started = time.perf_counter()
        out_dir = Path(self.out_dir)
        model = self.classify.model
        dims = model.dims
        target = out_dir / output_name(shard)
        tmp = out_dir / f".{target.name}.tmp"
        entry: dict[str, Any] = {"shard": str(shard), "output": str(target), "read": 0, "labeled": 0, "failed": 0,
                                 "classifier": 0, "llm": 0, "record_errors": [], "status": "done", "error": None,
                                 "model_id": model.model_id, "size": shard.stat().st_size if shard.exists() else None,
                                 "mtime": shard.stat().st_mtime if shard.exists() else None}
        version = str(model.meta.get("taxonomy_version", ""))
        try:
            with pq.ParquetWriter(tmp, schema(dims, self.keep_text)) as writer:
                for batch in _batches(read_shard(shard), self.classify.batch_size):
                    rows = self._rows(batch, dims, version, entry)
                    if rows:
                        writer.write_table(pa.Table.from_pylist(rows, schema(dims, self.keep_text)))
            os.replace(tmp, target)
        except ShardError as exc:
            entry.update(status="failed", error=str(exc))
            tmp.unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - any failure is this shard's, reported, never the run's
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            tmp.unlink(missing_ok=True)
        entry["seconds"] = round(time.perf_counter() - started, 3)
        status_dir = out_dir / ".status"
        status_dir.mkdir(parents=True, exist_ok=True)
        part = status_dir / f"{target.stem}.json"
        part_tmp = status_dir / f".{target.stem}.json.tmp"
        part_tmp.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(part_tmp, part)
        return entry

    def _rows(self, batch: list[Doc | DocError], dims: list[Dimension], version: str,
              entry: dict[str, Any]) -> list[dict[str, Any]]:
        docs = [Document(text=r.text, id=r.id, metadata={"source": r.source}) for r in batch if isinstance(r, Doc)]
        if docs:
            self.classify.label_batch(docs)
        rows = []
        for doc in docs:
            meta = doc.metadata
            failed = "llm_error" in meta
            row = {"id": str(doc.id), "labeler": meta["labeler"], "taxonomy_version": version,
                   "status": "ok", "error": None}
            for dim in dims:
                row[dim.id] = meta[dim.id]
                row[f"{dim.id}_confidence"] = meta[f"{dim.id}_confidence"]
            if failed:  # the LLM fallback failed: keep the classifier's labels, say so
                row["error"] = f"llm fallback failed: {meta['llm_error']}"
            if self.keep_text:
                row["text"] = doc.text
            entry["llm" if not str(meta["labeler"]).startswith(LABELER) else "classifier"] += 1
            rows.append(row)
        entry["read"] += len(batch)
        entry["labeled"] += len(rows)
        for rec in batch:
            if isinstance(rec, DocError):
                entry["failed"] += 1
                if len(entry["record_errors"]) < MAX_ERRORS:
                    entry["record_errors"].append({"line": rec.line, "id": rec.id, "reason": rec.reason})
                if rec.id is not None:
                    row = {"id": rec.id, "labeler": None, "taxonomy_version": version, "status": "failed",
                           "error": f"line {rec.line}: {rec.reason}"}
                    row.update({d.id: None for d in dims})
                    row.update({f"{d.id}_confidence": None for d in dims})
                    rows.append(row)
        return rows
