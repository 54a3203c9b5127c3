"""Consistency within a subset: a benchmark subset is nearly constant in its format dimensions.

Which dimensions, and what a clear majority is, are data (``evidence.consistency`` of a kind in the
taxonomy YAML). As annotations stream past, :class:`SubsetConsistency` counts each dimension's
labels per (source, subset) — memory grows with the number of subsets, not of items. When the
labels table is committed, :meth:`SubsetConsistency.revise` sees every row once more: a label that
differs from a clear majority of its subset (at least ``clear_majority`` of at least ``min_items``
labeled items) is flagged (``subset outlier: ...``) or, with ``take_majority`` (the embedded
default, or ``--subset-majority``), replaced by the majority and flagged (``subset majority: ...``),
so one run's outliers do not become slices of their own. A row whose record rules the subset's
label out (its ``evidence`` admits the row's label but not the majority's) is left alone: the
record outranks its neighbours.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from annotator.records import Annotation
from annotator.taxonomy import Consistency

OUTLIER = "subset outlier"
MAJORITY = "subset majority"


class SubsetConsistency:
    """Counts labels per subset while rows stream past, then flags (or fixes) the outliers."""

    def __init__(self, rules: Consistency, *, take_majority: bool) -> None:
        self.rules = rules
        self.take_majority = take_majority
        self.counts: dict[tuple[str, str], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.outliers = 0  # rows flagged as unlike their subset
        self.taken = 0  # rows given their subset's majority label (on at least one dimension)

    def observe(self, annotation: Annotation) -> None:
        """Count one annotation's labels (failed rows are not counted)."""
        if annotation.status != "ok":
            return
        group = self.counts[(annotation.source, annotation.subset)]
        for dim in self.rules.dimensions:
            value = annotation.labels.get(dim)
            if isinstance(value, str):
                group[dim][value] += 1

    def uniformity(self, limit: int = 200) -> dict[str, dict[str, Any]]:
        """Per subset (``source/subset``): items counted, and each dimension's majority label and share."""
        out: dict[str, dict[str, Any]] = {}
        for (source, subset), dims in list(self.counts.items())[:limit]:
            entry: dict[str, Any] = {}
            for dim, counts in dims.items():
                n = sum(counts.values())
                label, count = counts.most_common(1)[0]
                entry[dim] = {"majority": label, "share": round(count / n, 3), "n": n}
            out[f"{source}/{subset}" if subset else source] = entry
        return out

    def majority(self, source: str, subset: str, dim: str) -> tuple[str, int, int] | None:
        """``(label, count, n)`` of a clear majority of the subset on ``dim``, or None."""
        counts = self.counts.get((source, subset), {}).get(dim)
        if not counts:
            return None
        n = sum(counts.values())
        label, count = counts.most_common(1)[0]
        if n < self.rules.min_items or count / n < self.rules.clear_majority:
            return None
        return label, count, n

    def reviser(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """:meth:`revise`, or None when no subset has a clear majority that some of its rows lack.

        Then the commit joins the parts as they are, without a pass over every row in Python.
        """
        for (source, subset), dims in self.counts.items():
            for dim in dims:
                found = self.majority(source, subset, dim)
                if found is not None and found[1] < found[2]:
                    return self.revise
        return None

    def revise(self, row: dict[str, Any]) -> dict[str, Any]:
        """One labels-table row, flagged or given its subset's majority where it is an outlier."""
        if row.get("status") != "ok":
            return row
        source, subset = str(row.get("source") or ""), str(row.get("subset") or "")
        evidence = json.loads(row["evidence"]) if row.get("evidence") else {}
        flags = [f for f in (row.get("flags") or "").split("; ") if f]
        where = f"{source}/{subset}" if subset else source
        outlier = taken = False
        for dim in self.rules.dimensions:
            found = self.majority(source, subset, dim)
            label = row.get(dim)
            if found is None or label == found[0]:
                continue
            top, count, n = found
            admitted = evidence.get(dim)
            if admitted is not None and label in admitted and top not in admitted:
                continue  # the record rules the subset's label out: it decides
            if self.take_majority:
                row[dim] = top
                if f"{dim}_confidence" in row:
                    row[f"{dim}_confidence"] = None  # the model's confidence was in another label
                flags.append(f"{MAJORITY}: {dim} {label} -> {top} ({count} of {n} in {where})")
                taken = True
            else:
                flags.append(f"{OUTLIER}: {dim} {label}, but {count} of {n} in {where} are {top}")
                outlier = True
        self.outliers += outlier
        self.taken += taken
        row["flags"] = "; ".join(flags) or None
        return row
