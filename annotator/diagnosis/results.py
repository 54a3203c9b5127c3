"""Per-sample eval results in: lm-evaluation-harness sample logs and plain tables.

Accepted, one or more files or directories per checkpoint:

* lm-evaluation-harness ``samples_<task>_<time>.jsonl`` (``--log_samples``): each line has the
  logged ``doc`` and per-sample metrics (``acc``, ``exact_match``, ...). The id is the same
  content hash ``annotator label`` gives the record (sha256 of the canonical JSON of ``doc``), so
  a labels table made from the same benchmark file joins without any id mapping; with
  ``id_field`` the id is ``doc[id_field]`` instead. When a task logs several filters (GSM8K's
  ``strict-match`` and ``flexible-extract``), ``lm_eval_filter`` picks one, else the first
  filter in the file is used.
* CSV / JSONL / Parquet with ``id`` and one of ``correct`` (0/1, true/false), ``score`` (0-1),
  or ``n`` and ``c`` (``c`` of ``n`` samples correct: unbiased pass@k, k from 1 to n).

Each item's ``score`` is its accuracy, score or pass@k estimate; ``binary`` says whether every
score is 0 or 1 (exact tests and Wilson intervals apply then, bootstrap otherwise).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from annotator.errors import InputError
from annotator.readers import find_files
from annotator.sources import content_id
from annotator.stats import pass_at_k

LM_EVAL_METRICS = ("acc", "exact_match", "pass@1", "acc_norm", "em", "f1", "bleu", "score")
_TASK = re.compile(r"^samples_(.+?)(?:_\d{4}-\d{2}-\d{2}T[\w\-.:]+)?\.jsonl$")
SUFFIXES = (".jsonl", ".csv", ".parquet")


@dataclass
class Results:
    """One checkpoint's per-sample results.

    Attributes:
        frame: one row per item id: ``id``, ``task``, ``n``, ``c``, ``score``.
        metric: what ``score`` is (``acc``, ``correct``, ``pass@8``, ...).
        binary: every score is 0 or 1.
        files: the files read.
        duplicates: ids seen again after their first row (the first is kept).
    """

    frame: pd.DataFrame
    metric: str
    binary: bool
    files: list[str] = field(default_factory=list)
    duplicates: int = 0


def expand(paths: list[str | Path]) -> list[Path]:
    """Files named directly, plus result files found under directories."""
    return find_files(paths, SUFFIXES, "results")


def _lm_eval_rows(path: Path, lines: list[str], id_field: str | None, metric: str | None,
                  lm_eval_filter: str | None) -> tuple[list[dict[str, Any]], str]:
    match = _TASK.match(path.name)
    task = match.group(1) if match else path.stem
    rows, chosen, used = [], lm_eval_filter, metric
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if "doc" not in rec:
            raise InputError(f"{path}:{number}: field 'doc': missing (not an lm-eval sample log line)")
        chosen = chosen or rec.get("filter")
        if rec.get("filter") not in (None, chosen):
            continue
        if used is None:
            used = next((m for m in LM_EVAL_METRICS if m in rec), None) or next(iter(rec.get("metrics") or []), None)
            if used is None:
                raise InputError(f"{path}:{number}: no per-sample metric found; pass --metric")
        if used not in rec:
            raise InputError(f"{path}:{number}: field {used!r}: missing")
        doc = rec["doc"]
        if id_field:
            if not isinstance(doc, dict) or id_field not in doc:
                raise InputError(f"{path}:{number}: field 'doc.{id_field}': missing (--id-field)")
            item_id = str(doc[id_field])
        else:
            item_id = content_id(doc)
        rows.append({"id": item_id, "task": task, "n": 1, "c": _number(rec[used], path, number, used)})
    return rows, str(used)


def _number(value: Any, path: Path, where: Any, name: str) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return float(value.lower() == "true")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}:{where}: field {name!r}: {value!r} is not a number") from None
    if out != out:
        raise InputError(f"{path}:{where}: field {name!r}: NaN")
    return out


def _table_rows(path: Path, frame: pd.DataFrame, metric: str | None) -> tuple[list[dict[str, Any]], str]:
    cols = set(frame.columns)
    if "id" not in cols:
        raise InputError(f"{path}: field 'id': missing (columns: {', '.join(map(str, frame.columns))})")
    if metric and metric not in cols:
        raise InputError(f"{path}: field {metric!r}: missing (--metric)")
    kind = metric or ("n,c" if {"n", "c"} <= cols else "correct" if "correct" in cols else
                      "score" if "score" in cols else None)
    if kind is None:
        raise InputError(f"{path}: needs columns id,correct or id,score or id,n,c "
                         f"(found: {', '.join(map(str, frame.columns))})")
    rows = []
    for i, rec in enumerate(frame.to_dict("records"), 1):
        where = f"row {i}"
        if kind == "n,c":
            n = int(_number(rec["n"], path, where, "n"))
            c = _number(rec["c"], path, where, "c")
            if n < 1 or not 0 <= c <= n:
                raise InputError(f"{path}:{where}: fields 'n','c': need 0 <= c <= n and n >= 1 (n={n}, c={c})")
        else:
            n, c = 1, _number(rec[kind], path, where, kind)
            if not 0 <= c <= 1:
                raise InputError(f"{path}:{where}: field {kind!r}: {c} is outside 0-1")
        rows.append({"id": str(rec["id"]), "task": path.stem, "n": n, "c": c})
    return rows, kind


def _read_one(path: Path, id_field: str | None, metric: str | None,
              lm_eval_filter: str | None) -> tuple[list[dict[str, Any]], str]:
    try:
        if path.suffix == ".parquet":
            return _table_rows(path, pd.read_parquet(path), metric)
        if path.suffix == ".csv":
            return _table_rows(path, pd.read_csv(path), metric)
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    first = next((line for line in lines if line.strip()), "")
    try:
        head = json.loads(first) if first else {}
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:1: not JSON ({exc.msg})") from None
    if "doc" in head or path.name.startswith("samples_"):
        return _lm_eval_rows(path, lines, id_field, metric, lm_eval_filter)
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return _table_rows(path, pd.DataFrame.from_records(records), metric)


def read_results(paths: list[str | Path], *, id_field: str | None = None, metric: str | None = None,
                 k: int = 1, lm_eval_filter: str | None = None) -> Results:
    """Read one checkpoint's results (several files, one per task, or directories).

    Raises:
        InputError: naming the file, line/row and field of anything unusable.
    """
    files = expand(paths)
    rows: list[dict[str, Any]] = []
    metrics: set[str] = set()
    for path in files:
        got, used = _read_one(path, id_field, metric, lm_eval_filter)
        rows += got
        metrics.add(used)
    if not rows:
        raise InputError(f"no results in {', '.join(map(str, files))}")
    frame = pd.DataFrame(rows)
    before = len(frame)
    frame = frame.drop_duplicates("id", keep="first").reset_index(drop=True)
    too_few = frame[frame.n < k]
    if len(too_few):
        raise InputError(f"pass@{k} needs n >= {k} samples; item {too_few.id.iloc[0]!r} has n={too_few.n.iloc[0]}")
    frame["score"] = [pass_at_k(int(n), c, k) if n > 1 else c for n, c in zip(frame.n, frame.c, strict=True)]
    binary = bool(frame.score.isin([0.0, 1.0]).all() and (frame.n == 1).all())
    name = "/".join(sorted(metrics))
    if (frame.n > 1).any():
        name = f"pass@{k}"
    return Results(frame=frame, metric=name, binary=binary, files=[str(p) for p in files],
                   duplicates=before - len(frame))
