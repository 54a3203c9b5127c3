"""The distilled corpus classifier: hashed word and character n-grams + one linear model per dimension.

Features (no vocabulary, no fitting, fastText-class speed): lower-cased words of the first
8,000 characters plus character 5-grams (stride 4) of the first 256 characters, hashed into 2^20
columns (scikit-learn ``HashingVectorizer``). Per single-label dimension a multinomial logistic
regression; for the multi-label ``operation`` dimension one logistic regression per label, a
label predicted when its probability reaches 0.5 (at most the dimension's ``max``, most probable
first). ``<dim>_confidence`` is the probability of the predicted label (single-label) or, for a
label set, the least certain of its decisions (``min`` over chosen labels' p and 1 - p of the
likeliest label left out). Probabilities are the logistic model's own; the model card reports
how well they are calibrated (ECE on held-out teacher labels).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from annotator.errors import InputError
from annotator.taxonomy import Dimension

WORD_CHARS, CHAR_PREFIX, N_FEATURES = 8000, 256, 2**20


def analyze(text: str) -> list[str]:
    """Tokens of one document: lower-cased words + character 5-grams of its beginning."""
    head = text[:CHAR_PREFIX]
    return text[:WORD_CHARS].lower().split() + [head[i:i + 5] for i in range(0, len(head) - 4, 4)]


def vectorizer() -> HashingVectorizer:
    """The stateless featurizer (identical in training and in every worker)."""
    return HashingVectorizer(analyzer=analyze, n_features=N_FEATURES, alternate_sign=False, norm="l2")


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
                                 shape=(dense.shape[0], N_FEATURES))
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
            return cls([label], sp.csr_matrix((1, N_FEATURES), dtype=np.float32), np.zeros(1), "softmax")
        return cls(["0", "1"], sp.csr_matrix((1, N_FEATURES), dtype=np.float32),
                   np.array([30.0 if positive else -30.0]), "sigmoid")


class CorpusClassifier:
    """Per-dimension linear models over hashed features; picklable, loaded once per worker."""

    def __init__(self, dims: list[Dimension], models: dict[str, Any], meta: dict[str, Any]) -> None:
        self.dims = dims
        self.models = models
        self.meta = meta
        self._vec = vectorizer()

    @property
    def model_id(self) -> str:
        """The card's id (content hash of the model)."""
        return str(self.meta.get("model_id", ""))

    def predict(self, texts: list[str]) -> tuple[dict[str, list[Any]], dict[str, np.ndarray]]:
        """Labels and confidences per dimension for a batch of texts."""
        x = self._vec.transform(texts)
        labels: dict[str, list[Any]] = {}
        conf: dict[str, np.ndarray] = {}
        for dim in self.dims:
            model = self.models[dim.id]
            if dim.multi:
                names = model["labels"]
                probs = (np.column_stack([m.proba(x) for m in model["models"]]) if names
                         else np.zeros((x.shape[0], 0)))
                cap = dim.max or len(names)
                order = np.argsort(-probs, axis=1)
                out, c = [], np.ones(x.shape[0])
                for i in range(x.shape[0]):
                    row, ranked = probs[i], order[i]
                    chosen = [j for j in ranked[:cap] if row[j] >= 0.5]
                    out.append([names[j] for j in chosen])
                    left_out = ranked[len(chosen)] if len(chosen) < len(ranked) else None
                    c[i] = min([row[j] for j in chosen] + [1.0 - (row[left_out] if left_out is not None else 0.0)])
                labels[dim.id], conf[dim.id] = out, c
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
