"""The distilled corpus classifier: hashed word and character n-grams + one linear model per dimension.

Features (no vocabulary, no fitting, fastText-class speed): lower-cased words of the first
8,000 characters plus character 5-grams (stride 4) of the first 256 characters, each hashed with
CRC-32 into 2^20 columns, counted and L2-normalised per document. CRC-32 is deterministic on
every machine and needs no scikit-learn at inference time, so a worker holds only numpy and
scipy (scikit-learn alone costs ~120 MB per process; training still uses it).

Models: per single-label dimension a multinomial logistic regression; for the multi-label
``operation`` dimension one logistic regression per label, a label predicted when its
probability reaches 0.5 (at most the dimension's ``max``, most probable first). Only non-zero
weights are kept (sparse). ``<dim>_confidence`` is the probability of the predicted label, or
for a label set the least certain of its decisions (the lowest p among chosen labels and 1 - p
of the likeliest label left out). Probabilities are the logistic model's own; the model card
reports how well they are calibrated (ECE on held-out teacher labels).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from annotator.errors import InputError
from annotator.features import CLASSIFIER
from annotator.taxonomy import Dimension


def featurize(texts: list[str]) -> sp.csr_matrix:
    """Hashed, L2-normalised token counts of texts (rows: documents), as :data:`annotator.features.CLASSIFIER`."""
    return CLASSIFIER.matrix(texts)


@dataclass
class Linear:
    """A fitted linear model kept compact: sparse weights over the hashed features.

    ``kind`` is ``softmax`` (one row per class) or ``sigmoid`` (one row: the positive class).
    """

    classes: list[str]
    weights: sp.csr_matrix
    bias: np.ndarray
    kind: str

    def proba(self, x: Any) -> np.ndarray:
        """Class probabilities (softmax) or the positive-class probability (sigmoid)."""
        z = np.asarray((x @ self.weights.T).todense()) + self.bias
        if self.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z[:, 0]))
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @classmethod
    def from_sklearn(cls, model: Any, columns: np.ndarray | None = None) -> Linear:
        """Keep only the non-zero weights of a ``LogisticRegression`` fitted on ``columns`` of the features."""
        dense = model.coef_.astype(np.float32)
        if columns is not None:
            rows = np.repeat(np.arange(dense.shape[0]), len(columns))
            coef = sp.csr_matrix((dense.ravel(), (rows, np.tile(columns, dense.shape[0]))),
                                 shape=(dense.shape[0], CLASSIFIER.buckets))
        else:
            coef = sp.csr_matrix(dense)
        coef.eliminate_zeros()
        classes = [str(c) for c in model.classes_]
        kind = "sigmoid" if len(classes) == 2 and coef.shape[0] == 1 else "softmax"
        return cls(classes, coef, model.intercept_.astype(np.float64), kind)

    @classmethod
    def constant(cls, label: str, positive: bool | None = None) -> Linear:
        """A model that always answers ``label`` (or, for a label-set member, always yes/no)."""
        if positive is None:
            return cls([label], sp.csr_matrix((1, CLASSIFIER.buckets), dtype=np.float32), np.zeros(1), "softmax")
        return cls(["0", "1"], sp.csr_matrix((1, CLASSIFIER.buckets), dtype=np.float32),
                   np.array([30.0 if positive else -30.0]), "sigmoid")


class CorpusClassifier:
    """Per-dimension linear models over hashed features; picklable, loaded once per worker."""

    def __init__(self, dims: list[Dimension], models: dict[str, Any], meta: dict[str, Any]) -> None:
        self.dims = dims
        self.models = models
        self.meta = meta

    @property
    def model_id(self) -> str:
        """The card's id (content hash of the model)."""
        return str(self.meta.get("model_id", ""))

    def predict(self, texts: list[str]) -> tuple[dict[str, list[Any]], dict[str, np.ndarray]]:
        """Labels and confidences per dimension for a batch of texts."""
        x = featurize(texts)
        labels: dict[str, list[Any]] = {}
        conf: dict[str, np.ndarray] = {}
        for dim in self.dims:
            model = self.models[dim.id]
            if dim.multi:
                labels[dim.id], conf[dim.id] = _label_sets(model, x, dim.max)
            else:
                probs = model.proba(x)
                best = probs.argmax(axis=1)
                labels[dim.id] = [model.classes[j] for j in best]
                conf[dim.id] = probs[np.arange(len(best)), best]
        return labels, conf

    def save(self, directory: Path) -> Path:
        """Write ``model.pkl`` into ``directory``."""
        path = directory / "model.pkl"
        with open(path, "wb") as fh:
            pickle.dump({"dims": [d.model_dump(by_alias=True) for d in self.dims], "models": self.models,
                         "meta": self.meta}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path


def _label_sets(model: dict[str, Any], x: Any, cap: int | None) -> tuple[list[list[str]], np.ndarray]:
    """Vectorised label-set decision: labels at p >= 0.5, at most ``cap``, most probable first."""
    names = model["labels"]
    n = x.shape[0]
    if not names:
        return [[] for _ in range(n)], np.ones(n)
    probs = np.column_stack([m.proba(x) for m in model["models"]])
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked = np.take_along_axis(probs, order, axis=1)
    cap = min(cap or len(names), len(names))
    chosen = (ranked >= 0.5) & (np.arange(len(names)) < cap)
    count = chosen.sum(axis=1)
    lowest_in = np.where(count > 0, np.where(chosen, ranked, np.inf).min(axis=1), np.inf)
    first_out = np.where(count < len(names), ranked[np.arange(n), np.minimum(count, len(names) - 1)], 0.0)
    conf = np.minimum(lowest_in, 1.0 - first_out)
    sets: list[list[str]] = [[] for _ in range(n)]
    for i in np.nonzero(count)[0]:
        sets[i] = [names[j] for j in order[i, : count[i]]]
    return sets, conf


def load_classifier(directory: str | Path) -> CorpusClassifier:
    """Load a model directory written by ``annotator distill``.

    Raises:
        InputError: no model there, or it cannot be read.
    """
    path = Path(directory) / "model.pkl"
    if not path.is_file():
        raise InputError(f"{directory}: no distilled model (model.pkl); run `annotator distill` first")
    try:
        with open(path, "rb") as fh:
            blob = pickle.load(fh)  # noqa: S301 - our own artifact
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise InputError(f"{path}: cannot load the model: {exc}") from None
    dims = [Dimension.model_validate(d) for d in blob["dims"]]
    return CorpusClassifier(dims, blob["models"], blob["meta"])
