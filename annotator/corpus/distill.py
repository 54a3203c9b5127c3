"""``annotator distill``: teacher labels (LLM or reviewed) -> a fast corpus classifier + model card.

The teacher is a labels table with ``text`` and the corpus dimensions (``annotator label --kind
corpus`` output, a ``review pull`` output, or any JSONL/Parquet with those columns); failed rows
and rows whose review did not pass are ignored. A seeded 20% is held out: the card reports, per
dimension, accuracy, macro-F1 and Cohen's kappa against the held-out teacher labels (for the
label-set dimension also exact-set match and mean Jaccard), the majority baseline, the ECE of
``<dim>_confidence`` (10 bins), per-label support, and the labels whose support is under
``min_support`` (kept in training, reported). The shipped model is then refitted on all teacher
rows. ``card.json`` also holds the teacher data hash, the taxonomy version and the model id.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from annotator.corpus.model import CorpusClassifier, Linear, featurize
from annotator.errors import InputError
from annotator.io import write_json_atomic
from annotator.labeling.store import read_table
from annotator.records import trusted
from annotator.stats import accuracy, cohen_kappa, jaccard, macro_f1
from annotator.taxonomy import Dimension, load_taxonomy


def teacher_rows(path: str | Path, dims: list[Dimension]) -> list[dict[str, Any]]:
    """Usable teacher rows: status ok, review passed (when reviewed), text and every single-label dimension."""
    try:
        rows = read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the teacher table: {exc}") from None
    out = []
    for i, row in enumerate(rows):
        if not trusted(row):
            continue
        if not row.get("text"):
            raise InputError(f"{path}: row {i}: field 'text': missing (label with slice-annotator >= the text column)")
        missing = [d.id for d in dims if not d.multi and row.get(d.id) in (None, "")]
        if missing:
            raise InputError(f"{path}: row {i}: field {missing[0]!r}: missing")
        for d in dims:  # a teacher label outside the taxonomy would be learned and written into every shard
            value = row.get(d.id)
            values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
            unknown = [v for v in values if v not in d.label_ids]
            if unknown:
                raise InputError(f"{path}: row {i}: field {d.id!r}: {unknown[0]!r} is not a label of the taxonomy "
                                 f"({', '.join(d.label_ids[:8])}, ...)")
        out.append(row)
    if len(out) < 10:
        raise InputError(f"{path}: {len(out)} usable teacher rows; distillation needs at least 10")
    return out


def _fit(dim: Dimension, x: Any, values: list[Any]) -> Any:
    """Fit on the feature columns the teacher texts use (the rest get weight 0): fast and exact."""
    columns = np.unique(x.indices)
    xs = x[:, columns]

    def logistic(y: Any) -> Linear:
        return Linear.from_sklearn(LogisticRegression(C=10.0, max_iter=2000).fit(xs, y), columns)

    if dim.multi:
        names = sorted({lab for v in values for lab in v})
        models = []
        for name in names:
            y = np.array([name in v for v in values], dtype=int)
            models.append(logistic(y) if 0 < y.sum() < len(y) else Linear.constant(name, positive=bool(y[0])))
        return {"labels": names, "models": models}
    if len(set(values)) < 2:
        return Linear.constant(values[0])
    return logistic(values)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: mean |accuracy - confidence| over equal-width bins, weighted by size."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(confidence)) if len(confidence) else 0.0


def _scores(dim: Dimension, ref: list[Any], pred: list[Any], conf: np.ndarray, train: list[Any],
            min_support: int) -> dict[str, Any]:
    support = Counter(lab for v in train for lab in (v if dim.multi else [v]))
    low = sorted(lab for lab in dim.label_ids if 0 < support.get(lab, 0) < min_support)
    if dim.multi:
        exact = np.array([set(a) == set(b) for a, b in zip(ref, pred, strict=True)])
        prim_r = [a[0] if a else "" for a in ref]
        prim_p = [b[0] if b else "" for b in pred]
        out = {"exact_set": float(exact.mean()), "jaccard": float(np.mean([jaccard(a, b) for a, b in zip(
            ref, pred, strict=True)])), "primary_accuracy": accuracy(prim_r, prim_p), "ece": ece(conf, exact),
            "kappa_primary": cohen_kappa(prim_r, prim_p)}
        majority = Counter(tuple(sorted(v)) for v in train).most_common(1)[0][0]
        out["majority_baseline"] = float(np.mean([tuple(sorted(a)) == majority for a in ref]))
    else:
        majority = Counter(train).most_common(1)[0][0]
        out = {"accuracy": accuracy(ref, pred), "macro_f1": macro_f1(ref, pred), "kappa": cohen_kappa(ref, pred),
               "ece": ece(conf, np.array([a == b for a, b in zip(ref, pred, strict=True)])),
               "majority_baseline": accuracy(ref, [majority] * len(ref))}
    out = {k: round(v, 4) for k, v in out.items()}
    out.update(support=dict(sorted(support.items())), low_support=low,
               never_seen=[lab for lab in dim.label_ids if lab not in support])
    return out


def distill(teacher: str | Path, out_dir: str | Path, *, taxonomy_path: str | None = None, holdout: float = 0.2,
            seed: int = 0, min_support: int = 5) -> dict[str, Any]:
    """Train, evaluate on the held-out share, refit on everything, write the model and its card."""
    started = time.perf_counter()
    taxonomy = load_taxonomy(taxonomy_path)
    dims = taxonomy.dimensions("corpus")
    rows = teacher_rows(teacher, dims)
    values = {d.id: [list(r.get(d.id) or []) if d.multi else str(r[d.id]) for r in rows] for d in dims}
    texts = [str(r["text"]) for r in rows]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(round(len(rows) * holdout)))
    test, train = order[:cut], order[cut:]
    x_all = featurize(texts)
    x_train = x_all[train]
    held = CorpusClassifier(dims, {d.id: _fit(d, x_train, [values[d.id][i] for i in train]) for d in dims}, {})
    pred, conf = held.predict([texts[i] for i in test])
    metrics = {d.id: _scores(d, [values[d.id][i] for i in test], pred[d.id], conf[d.id],
                             [values[d.id][i] for i in train], min_support) for d in dims}
    final = CorpusClassifier(dims, {d.id: _fit(d, x_all, values[d.id]) for d in dims}, {})
    digest = hashlib.sha256(json.dumps([[r.get("id"), r["text"][:2000], [values[d.id][i] for d in dims]]
                                        for i, r in enumerate(rows)], sort_keys=True, default=str).encode())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final.meta = {"taxonomy_version": taxonomy.version, "teacher_hash": digest.hexdigest()[:16]}
    path = final.save(out)
    model_id = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    final.meta["model_id"] = model_id
    final.save(out)
    card = {
        "model_id": model_id, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "teacher": str(teacher), "teacher_hash": final.meta["teacher_hash"], "taxonomy_version": taxonomy.version,
        "n_teacher": len(rows), "n_train": len(train), "n_heldout": len(test), "holdout": holdout, "seed": seed,
        "features": "lower-cased words (first 8,000 chars) + char 5-grams stride 4 (first 256 chars), CRC-32 "
                    "hashed into 2^20 columns, L2-normalised counts",
        "model": "logistic regression per dimension (one per label for operation); refitted on all teacher rows",
        "min_support": min_support, "dimensions": metrics, "seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(out / "card.json", card)
    return card
