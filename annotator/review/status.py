"""``annotator review status``: progress and agreement of a review dataset.

Per reviewer: submitted / discarded / draft counts, counted from the responses themselves (not
from Argilla's per-user search filters, which the bundled noida-db engine does not implement).
Per dimension: LLM-vs-human accuracy and Cohen's kappa over resolved records (multi-label
dimensions: answers compared as sets ordered by the primary question, see
:mod:`annotator.review.resolve`; primary label for kappa, the whole list for accuracy),
inter-annotator Krippendorff's alpha (nominal) over records with two or more submitted answers,
and the top confusions. The audit sample (random among confident
records) estimates the accuracy of the labels nobody reviewed, with a 95% Wilson interval.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import argilla as rg
from pydantic import BaseModel

from annotator.labeling.quality import confusion_lines
from annotator.records import PASSING
from annotator.review.connect import connect
from annotator.review.pull import Reader, open_dataset
from annotator.stats import cohen_kappa, krippendorff_alpha, wilson
from annotator.taxonomy import load_taxonomy


class DimensionAgreement(BaseModel):
    """LLM-vs-human and human-vs-human agreement on one dimension."""

    dimension: str
    n: int
    llm_accuracy: float | None
    llm_kappa: float | None
    alpha: float | None
    alpha_units: int
    confusions: list[tuple[str, str, int]]
    audit_n: int
    audit_accuracy: float | None
    audit_ci95: tuple[float, float] | None


class StatusReport(BaseModel):
    """Progress and agreement of one review dataset."""

    dataset: str
    records: int
    review_status: dict[str, int]
    reviewers: dict[str, dict[str, int]]
    dimensions: list[DimensionAgreement]
    audit_all_correct: float | None
    audit_all_correct_ci95: tuple[float, float] | None
    attention: dict[str, list[str]] = {}

    def text(self) -> str:
        """A plain report for the terminal."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.review_status.items()))
        lines = [f"{self.dataset}: {self.records} records ({counts})", "reviewers:"]
        for name, c in sorted(self.reviewers.items()):
            lines.append(f"  {name:<20} submitted {c.get('submitted', 0)}  discarded {c.get('discarded', 0)}  "
                         f"draft {c.get('draft', 0)}")
        lines.append(f"| {'dimension':<18} | {'n':>3} | {'LLM acc':>7} | {'LLM k':>6} | {'alpha':>6} | "
                     f"{'audit n':>7} | {'audit acc (95% CI)':>22} |")
        for d in self.dimensions:
            acc = "-" if d.llm_accuracy is None else f"{d.llm_accuracy:.2f}"
            kap = "-" if d.llm_kappa is None else f"{d.llm_kappa:.2f}"
            alp = "-" if d.alpha is None else f"{d.alpha:.2f}"
            aud = "-" if d.audit_accuracy is None else (
                f"{d.audit_accuracy:.2f} ({d.audit_ci95[0]:.2f}-{d.audit_ci95[1]:.2f})")
            lines.append(f"| {d.dimension:<18} | {d.n:>3} | {acc:>7} | {kap:>6} | {alp:>6} | {d.audit_n:>7} | "
                         f"{aud:>22} |")
        lines += confusion_lines(self.dimensions, "(LLM->human)")
        if self.attention:
            lines.append(f"needs attention ({len(self.attention)} conflict or invalid):")
            for rid, flags in list(self.attention.items())[:20]:
                lines.append(f"  {rid}: " + "; ".join(flags))
        return "\n".join(lines)


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def review_status(dataset: str, *, workspace: str | None = None, taxonomy_path: str | None = None,
                  client: rg.Argilla | None = None) -> StatusReport:
    """Compute progress and agreement of ``dataset`` from the server."""
    client = client or connect()
    ds, version, kind = open_dataset(client, dataset, workspace)
    dims = load_taxonomy(taxonomy_path).dimensions(kind)
    reader = Reader(client, ds)
    rows = [reader.row(r, dims, kind) for r in reader.records()]
    reviewers: dict[str, Counter] = {}
    for row in rows:
        for name, answer in json.loads(row["responses"]).items():
            reviewers.setdefault(name, Counter())[answer["status"]] += 1
    resolved = [r for r in rows if r["review_status"] in PASSING]
    audit = [r for r in resolved if r.get("audit") == "yes"]
    out = []
    for d in dims:
        pairs = [(r[f"llm_{d.id}"], r[d.id]) for r in resolved if r[f"llm_{d.id}"] is not None]
        llm_acc = sum(_key(a) == _key(b) for a, b in pairs) / len(pairs) if pairs else None
        prim = [((a[0] if a else "") if d.multi else a, (b[0] if b else "") if d.multi else b) for a, b in pairs]
        kappa = cohen_kappa([h for _, h in prim], [m for m, _ in prim]) if prim else None
        units = []
        for r in rows:
            answers = [a.get(d.id) for a in json.loads(r["answers"]).values()]
            units.append([_key(a) for a in answers if a is not None])
        # whole answers: a multi-label answer that differs in any label (or its primary) is a confusion
        def show(value: Any, multi: bool = d.multi) -> str:
            return " + ".join(map(str, value or [])) if multi else str(value)

        confusions = Counter((show(m), show(h)) for m, h in pairs if _key(m) != _key(h)).most_common(5)
        hits = sum(_key(r[f"llm_{d.id}"]) == _key(r[d.id]) for r in audit)
        out.append(DimensionAgreement(
            dimension=d.id, n=len(pairs), llm_accuracy=llm_acc, llm_kappa=kappa,
            alpha=krippendorff_alpha(units), alpha_units=sum(len(u) >= 2 for u in units),
            confusions=[(a, b, c) for (a, b), c in confusions], audit_n=len(audit),
            audit_accuracy=hits / len(audit) if audit else None,
            audit_ci95=wilson(hits, len(audit)) if audit else None,
        ))
    all_ok = sum(all(_key(r[f"llm_{d.id}"]) == _key(r[d.id]) for d in dims) for r in audit)
    return StatusReport(
        dataset=ds.name, records=len(rows), review_status=dict(Counter(r["review_status"] for r in rows)),
        reviewers={k: dict(v) for k, v in reviewers.items()}, dimensions=out,
        attention={str(r["id"]): r["flags"] for r in rows if r["review_status"] in ("conflict", "invalid")},
        audit_all_correct=all_ok / len(audit) if audit else None,
        audit_all_correct_ci95=wilson(all_ok, len(audit)) if audit else None,
    )
