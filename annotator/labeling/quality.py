"""Label quality against reference labels (``annotator eval-labels PREDICTIONS REFERENCE``).

Joins by id. Per dimension: accuracy, macro-F1, Cohen's kappa, the majority-class baseline
(accuracy of always answering the reference's most frequent label) and the most frequent
confusions. Multi-label dimensions are scored on their primary (first) label for those, plus
exact-set match and mean Jaccard. Scores cover items with an ``ok`` prediction; coverage says
how many reference items were missing or failed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from annotator.errors import InputError
from annotator.labeling.store import read_table
from annotator.stats import accuracy, cohen_kappa, jaccard, macro_f1
from annotator.taxonomy import Dimension


class DimensionScore(BaseModel):
    """Scores of one dimension."""

    dimension: str
    n: int
    accuracy: float
    macro_f1: float
    kappa: float
    majority_baseline: float
    majority_label: str
    exact_set: float | None = None
    jaccard: float | None = None
    confusions: list[tuple[str, str, int]] = []


class Report(BaseModel):
    """The whole evaluation: coverage and one score per dimension."""

    predictions: str
    reference: str
    reference_items: int
    scored: int
    missing: int
    failed: int
    dimensions: list[DimensionScore]

    def text(self) -> str:
        """A plain table for the terminal."""
        lines = [f"{self.predictions} vs {self.reference}: {self.scored}/{self.reference_items} scored "
                 f"(missing {self.missing}, failed {self.failed})",
                 f"| {'dimension':<18} | {'n':>3} | {'acc':>5} | {'maj.':>5} | {'acc-maj':>7} | {'macroF1':>7} | "
                 f"{'kappa':>6} | {'exact':>5} | {'jacc.':>5} |",
                 "|" + "|".join("-" * w for w in (20, 5, 7, 7, 9, 9, 8, 7, 7)) + "|"]
        for d in self.dimensions:
            ex = "" if d.exact_set is None else f"{d.exact_set:.2f}"
            ja = "" if d.jaccard is None else f"{d.jaccard:.2f}"
            lines.append(f"| {d.dimension:<18} | {d.n:>3} | {d.accuracy:>5.2f} | {d.majority_baseline:>5.2f} | "
                         f"{d.accuracy - d.majority_baseline:>+7.2f} | {d.macro_f1:>7.2f} | {d.kappa:>6.2f} | "
                         f"{ex:>5} | {ja:>5} |")
        lines += confusion_lines(self.dimensions, "confusions (reference->predicted)")
        return "\n".join(lines)


def confusion_lines(dimensions: list[Any], heading: str) -> list[str]:
    """``  <dimension> <heading>: a->b xN, ...`` for every dimension with confusions."""
    return [f"  {d.dimension} {heading}: " + ", ".join(f"{a}->{b} x{c}" for a, b, c in d.confusions)
            for d in dimensions if d.confusions]


def score_dimension(dim: Dimension, ref: list[Any], pred: list[Any], top: int = 5) -> DimensionScore:
    """Scores of one dimension over aligned reference and predicted values."""
    if dim.multi:
        ref_p = [r[0] if r else "(none)" for r in ref]
        pred_p = [p[0] if p else "(none)" for p in pred]
    else:
        ref_p, pred_p = [str(r) for r in ref], [str(p) for p in pred]
    majority, count = Counter(ref_p).most_common(1)[0] if ref_p else ("", 0)
    confusions = Counter((r, p) for r, p in zip(ref_p, pred_p, strict=True) if r != p).most_common(top)
    score = DimensionScore(
        dimension=dim.id, n=len(ref_p), accuracy=accuracy(ref_p, pred_p), macro_f1=macro_f1(ref_p, pred_p),
        kappa=cohen_kappa(ref_p, pred_p), majority_baseline=count / len(ref_p) if ref_p else 0.0,
        majority_label=majority, confusions=[(r, p, c) for (r, p), c in confusions],
    )
    if dim.multi:
        pairs = list(zip(ref, pred, strict=True))
        score.exact_set = sum(set(r) == set(p) for r, p in pairs) / len(pairs) if pairs else 0.0
        score.jaccard = sum(jaccard(r, p) for r, p in pairs) / len(pairs) if pairs else 0.0
    return score


def _rows(path: str | Path) -> dict[str, dict[str, Any]]:
    try:
        rows = read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read labels: {exc}") from None
    out = {}
    for i, row in enumerate(rows):
        if "id" not in row:
            raise InputError(f"{path}: row {i}: field 'id' missing")
        out[str(row["id"])] = row
    return out


def evaluate_all(predictions: str | Path, reference: str | Path, dims: list[Dimension]) -> list[Report]:
    """The labels table scored as it is, then each model of a multi-model table (``<dimension>__<model>``).

    For a multi-model table the first report is the consensus; one report per model follows.
    Each file is read once.
    """
    pred_rows, ref_rows = _rows(predictions), _rows(reference)
    first = f"{dims[0].id}__"
    columns = next(iter(pred_rows.values()), {})
    suffixes = [c[len(first):] for c in columns if c.startswith(first)]
    reports = [_score(pred_rows, ref_rows, dims, predictions, reference)]
    for suffix in suffixes:
        reports.append(_score(_one_model(pred_rows, dims, suffix), ref_rows, dims, f"{predictions} [{suffix}]",
                              reference))
    if suffixes:
        reports[0] = reports[0].model_copy(update={"predictions": f"{predictions} [consensus]"})
    return reports


def _one_model(pred_rows: dict[str, dict[str, Any]], dims: list[Dimension], suffix: str) -> dict[str, dict[str, Any]]:
    """One model's columns of a multi-model table as the plain dimension columns."""
    return {i: {**r, **{d.id: r.get(f"{d.id}__{suffix}") for d in dims},
                "status": "ok" if all(r.get(f"{d.id}__{suffix}") is not None for d in dims) else "failed"}
            for i, r in pred_rows.items()}


def evaluate(predictions: str | Path, reference: str | Path, dims: list[Dimension]) -> Report:
    """Compare a labels table with reference labels, joined by id.

    Raises:
        InputError: unreadable files, rows without ids, or a reference lacking a dimension.
    """
    return _score(_rows(predictions), _rows(reference), dims, predictions, reference)


def _score(pred_rows: dict[str, dict[str, Any]], ref_rows: dict[str, dict[str, Any]], dims: list[Dimension],
           predictions: str | Path, reference: str | Path) -> Report:
    missing = [i for i in ref_rows if i not in pred_rows]
    failed = [i for i in ref_rows if i in pred_rows and pred_rows[i].get("status", "ok") != "ok"]
    scored = [i for i in ref_rows if i in pred_rows and i not in failed]
    scores = []
    for dim in dims:
        bad = next((i for i in ref_rows if ref_rows[i].get(dim.id) is None), None)
        if bad is not None:
            raise InputError(f"{reference}: item {bad}: field {dim.id!r} missing")
        ref = [ref_rows[i][dim.id] for i in scored]
        pred = [pred_rows[i].get(dim.id) or ([] if dim.multi else "(none)") for i in scored]
        scores.append(score_dimension(dim, ref, pred))
    return Report(predictions=str(predictions), reference=str(reference), reference_items=len(ref_rows),
                  scored=len(scored), missing=len(missing), failed=len(failed), dimensions=scores)
