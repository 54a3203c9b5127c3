"""Few-shot examples retrieved from already-labeled items (nearest by text).

The pool is a JSONL file (or a labels table) of items with their labels: by default
``prompts/fewshot/<kind>.jsonl`` (the adjudicated reference labels of the dev set), or the
user's confirmed labels. Retrieval is TF-IDF cosine over words and character 4-grams (numpy,
no model download). An item never sees itself: pool entries with the same id or the same text
are excluded, so a figure measured on the pool's own items is leave-one-out.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from annotator.config import resource_path
from annotator.errors import InputError
from annotator.features import RETRIEVAL
from annotator.labeling.cues import Cues
from annotator.labeling.prompts import Example, clip
from annotator.labeling.store import read_table
from annotator.records import Item, trusted
from annotator.taxonomy import Dimension


@dataclass(frozen=True)
class PoolEntry:
    """One labeled item of the pool."""

    id: str
    text: str
    labels: dict[str, Any]


def default_pool_path(kind: str) -> Path:
    """The shipped pool for ``kind``."""
    return resource_path("prompts") / "fewshot" / f"{kind}.jsonl"


def load_pool(path: str | Path, dims: list[Dimension]) -> list[PoolEntry]:
    """Read a pool: JSONL/Parquet rows with ``id``, ``text`` and one column per dimension.

    Rows whose ``status``/``review_status`` says they are not usable (failed, pending,
    conflict, discarded) are skipped.

    Raises:
        InputError: naming the file and row of an entry without text or labels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: few-shot pool not found")
    rows = read_table(path).to_pylist()
    pool = []
    for i, row in enumerate(rows):
        if not trusted(row):
            continue
        text = row.get("text") or row.get("input") or row.get("question")
        missing = [d.id for d in dims if row.get(d.id) is None]
        if not text or missing:
            raise InputError(f"{path}: row {i}: missing {'text' if not text else ', '.join(missing)}")
        labels = {d.id: (list(row[d.id]) if d.multi else row[d.id]) for d in dims}
        pool.append(PoolEntry(id=str(row.get("id", i)), text=str(text), labels=labels))
    if len(pool) < len(rows) and str(path) not in _ANNOUNCED:
        _ANNOUNCED.add(str(path))
        print(f"few-shot pool {path}: {len(pool)} of {len(rows)} rows usable (failed, unreviewed, conflicting "
              "or discarded rows are left out)", file=sys.stderr)
    return pool


_ANNOUNCED: set[str] = set()  # pools whose usable count was already said in this process


class Retriever:
    """Nearest pool entries by TF-IDF cosine (leave-one-out by id and text)."""

    def __init__(self, pool: list[PoolEntry], text_chars: int = 2000) -> None:
        self.pool = pool
        self.text_chars = text_chars
        docs = []  # per entry: (bucket ids, term counts) as compact arrays
        for e in pool:
            hashed = RETRIEVAL.counts(e.text[:text_chars])
            docs.append((np.fromiter(hashed.keys(), np.int64, len(hashed)),
                         np.fromiter(hashed.values(), np.float64, len(hashed))))
        n = len(pool)
        every = np.concatenate([b for b, _ in docs]) if docs else np.zeros(0, np.int64)
        buckets, df = np.unique(every, return_counts=True)
        idf = np.log((1 + n) / (1 + df)) + 1.0
        self.idf = dict(zip(buckets.tolist(), idf.tolist(), strict=True))
        self.buckets = buckets.tolist()
        self.index = {b: i for i, b in enumerate(self.buckets)}
        cols = np.searchsorted(buckets, every)
        tfs = np.concatenate([t for _, t in docs]) if docs else np.zeros(0, np.float64)
        rows = np.repeat(np.arange(n), [len(b) for b, _ in docs])
        # sparse: a pool of thousands of texts touches ~2^18 buckets, which a dense matrix would hold for each
        matrix = sparse.csr_matrix((((1 + np.log(tfs)) * idf[cols]).astype(np.float32), (rows, cols)),
                                   shape=(n, len(buckets)), dtype=np.float32)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        self.matrix = sparse.diags((1.0 / np.maximum(norms, 1e-9)).astype(np.float32)) @ matrix
        self._texts = {e.text.strip() for e in pool}

    def nearest(self, item: Item, k: int) -> list[PoolEntry]:
        """The ``k`` most similar entries, never the item itself."""
        return [entry for entry, _ in self.scored(item, k)]

    def scored(self, item: Item, k: int) -> list[tuple[PoolEntry, float]]:
        """The ``k`` most similar entries with their cosine similarity (0..1), never the item itself."""
        vec = np.zeros(len(self.buckets), dtype=np.float32)
        for b, tf in RETRIEVAL.counts(item.text[: self.text_chars]).items():
            col = self.index.get(b)
            if col is not None:
                vec[col] = (1 + math.log(tf)) * self.idf[b]
        scores = np.asarray(self.matrix @ vec).ravel()
        norm = float(np.sqrt(vec @ vec)) or 1.0
        text = item.text.strip()
        out = []
        for row in np.argsort(-scores, kind="stable"):
            entry = self.pool[row]
            if entry.id == item.id or entry.text.strip() == text:
                continue
            out.append((entry, float(scores[row]) / norm))
            if len(out) == k:
                break
        return out


ExamplesFor = Callable[[Item], tuple[Example, ...]]
"""An item's retrieved few-shot examples (``--fewshot``)."""
CandidatesFor = Callable[[Item], dict[str, list[str]]]
"""An item's candidate labels per dimension, its answer's restriction (``--candidates``)."""


def examples_for_pool(pool: list[PoolEntry], k: int, chars: int = 400,
                      agree_with: CandidatesFor | None = None, among: int = 8) -> ExamplesFor:
    """A function giving each item its ``k`` nearest labeled examples, formatted for prompts.

    With ``agree_with`` (the item's ranked candidate labels), the examples are the ``k`` of the
    ``among`` nearest whose labels agree with the most of the candidates ranked first (nearest first
    among equals): a small model copies its example's labels whenever they are allowed, so on a
    benchmark the pool does not hold, the nearest text's labels would outvote the evidence.
    """
    retriever = Retriever(pool)

    def pick(item: Item) -> tuple[Example, ...]:
        if agree_with is None:
            near = retriever.nearest(item, k)
        else:
            first = {dim: labels[0] for dim, labels in agree_with(item).items() if labels}
            near = sorted(retriever.nearest(item, max(k, among)),
                          key=lambda e: -sum(_primary(e.labels.get(dim)) == lab for dim, lab in first.items()))[:k]
        return tuple(Example(text=clip(e.text, chars), labels=json.dumps(e.labels)) for e in near)

    return pick


def _primary(value: str | list[str] | None) -> str | None:
    """A label, or the first of a multi-label dimension's labels."""
    return value[0] if isinstance(value, list) and value else value if isinstance(value, str) else None


def candidates_for_pool(pool: list[PoolEntry], k: int, dims: list[Dimension],
                        cues: Cues | None = None) -> CandidatesFor:
    """A function giving each item, per dimension, its candidate labels, best first.

    Without ``cues``, a label's score is its neighbours' votes: the neighbour at rank r of the ``k``
    nearest counts 1/(r+1). With ``cues`` (:mod:`annotator.labeling.cues`), the votes are scaled to
    sum to ``cues.neighbours`` and each is weighted by its neighbour's cosine similarity, so
    neighbours from another benchmark (dissimilar texts) count little, and the weight of the label's
    cues found in the item's text is added; a label only the cues speak for is a candidate too. The
    order is the order of the constrained answer schema, and small models favour its first entries.
    """
    retriever = Retriever(pool)

    def pick(item: Item) -> dict[str, list[str]]:
        near = retriever.scored(item, k)
        said = cues.scores(item.text) if cues is not None else {}
        scale = cues.neighbours / sum(1.0 / (r + 1) for r in range(len(near))) if cues is not None and near else 1.0
        out: dict[str, list[str]] = {}
        for dim in dims:
            weights: Counter = Counter()
            for rank, (entry, sim) in enumerate(near):
                value = entry.labels[dim.id]
                vote = scale / (rank + 1) * (sim if cues is not None else 1.0)
                for lab in value if dim.multi else [value]:
                    weights[lab] += vote
            for lab, weight in said.get(dim.id, {}).items():
                weights[lab] += weight
            ranked = weights.most_common()
            if cues is not None and ranked:  # the model copies its example: offer only the contenders
                ranked = [(lab, w) for lab, w in ranked if w >= cues.keep * ranked[0][1]]
            out[dim.id] = [lab for lab, _ in ranked]
        return out

    return pick


def pool_fingerprint(pool: list[PoolEntry]) -> str:
    """Content hash of a pool (part of the prompt version)."""
    digest = hashlib.sha256()
    for e in pool:
        digest.update(json.dumps([e.id, e.text, e.labels], sort_keys=True).encode())
    return digest.hexdigest()[:12]
