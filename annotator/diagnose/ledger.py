"""The intervention ledger: whether a sampling plan helped the slices it targeted.

``annotator slices report --results AFTER --baseline BEFORE --plan PLAN`` compares, on the same
items, the change of the plan's targeted slices (items in any ``data`` finding the plan was made
from) with the change of every other item: both deltas with paired bootstrap intervals and the
difference of the two (targeted minus untargeted) with its interval. The outcome is ``worked``
when that difference and the targeted delta are both above zero with 95% confidence, ``hurt``
when the difference is below zero, else ``no clear effect``. Every evaluation is appended to
``PLAN/ledger.jsonl``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from annotator.diagnose.slices import Items
from annotator.errors import InputError
from annotator.stats import bootstrap_difference_ci, bootstrap_mean_ci


def _group(items: Items, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    assert items.baseline is not None
    keep = mask & ~np.isnan(items.baseline)
    diff = items.score[keep] - items.baseline[keep]
    info = {"n": int(keep.sum())}
    if keep.any():
        info.update(before=round(float(items.baseline[keep].mean()), 4),
                    after=round(float(items.score[keep].mean()), 4), delta=round(float(diff.mean()), 4),
                    delta_ci=bootstrap_mean_ci(diff))
    return diff, info


def evaluate_plan(items: Items, plan_dir: str | Path, report_id: str, seed: int = 0) -> dict[str, Any]:
    """Targeted vs untargeted change for a plan; appended to the plan's ledger."""
    plan_dir = Path(plan_dir)
    mixture_path = plan_dir / "mixture.json"
    if not mixture_path.is_file():
        raise InputError(f"{mixture_path}: no plan (run `annotator map` first)")
    if items.baseline is None:
        raise InputError("--plan needs --baseline: the results of the checkpoint before the intervention")
    mixture = json.loads(mixture_path.read_text(encoding="utf-8"))
    targets = mixture.get("targets") or []
    mask = np.array([any(all(v in (lab.get(d) or []) for d, v in t.items()) for t in targets) for lab in items.labels],
                    dtype=bool)
    t_diff, targeted = _group(items, mask)
    u_diff, untargeted = _group(items, ~mask)
    outcome, did, did_ci = "no clear effect", None, None
    if len(t_diff) and len(u_diff):
        did = round(float(t_diff.mean() - u_diff.mean()), 4)
        did_ci = bootstrap_difference_ci(t_diff, u_diff, seed)
        if did_ci[0] > 0 and targeted["delta_ci"][0] > 0:
            outcome = "worked"
        elif did_ci[1] < 0:
            outcome = "hurt"
    summary = (f"Plan {mixture['plan_id']} ({len(targets)} targeted slice(s)): targeted items "
               f"{targeted.get('before', float('nan')):.3f} -> {targeted.get('after', float('nan')):.3f} "
               f"(n {targeted['n']}), other items {untargeted.get('before', float('nan')):.3f} -> "
               f"{untargeted.get('after', float('nan')):.3f} (n {untargeted['n']}); difference of changes "
               + (f"{did:+.3f} (95% CI {did_ci[0]:+.3f} to {did_ci[1]:+.3f})" if did is not None else "n/a")
               + f": {outcome}.")
    entry = {"plan_id": mixture["plan_id"], "report_id": report_id, "targets": targets, "targeted": targeted,
             "untargeted": untargeted, "difference": did, "difference_ci": did_ci, "outcome": outcome,
             "summary": summary, "coverage": mixture.get("coverage", []),
             "time": datetime.now(UTC).isoformat(timespec="seconds")}
    with open(plan_dir / "ledger.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({k: v for k, v in entry.items() if k != "coverage"}) + "\n")
    return entry
