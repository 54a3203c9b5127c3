"""Per-sample eval results in, with what the model wrote: lm-evaluation-harness logs and plain tables.

Accepted, one or more files or directories per checkpoint (read with :func:`annotator.io.records`,
so ``.gz`` / ``.zst`` JSONL, CSV and Parquet all work):

* lm-evaluation-harness ``samples_<task>_<time>.jsonl`` (``--log_samples``): each line has the
  logged ``doc``, per-sample metrics (``acc``, ``exact_match``, ...), ``resps`` (the raw
  generations), ``filtered_resps`` (what the task's filter extracted; ``[invalid]`` or empty =
  nothing), ``target`` and ``arguments`` (the generation arguments: ``until``,
  ``max_gen_toks``). The id is the content hash ``annotator label`` gives the record (sha256 of the
  canonical JSON of ``doc``), so a labels table made from the same benchmark file joins with no id
  mapping; with ``id_field`` the id is ``doc[id_field]``. With several filters logged (GSM8K's
  ``strict-match`` and ``flexible-extract``), ``lm_eval_filter`` picks one, else the first in the
  file. Log-likelihood tasks log scores, not text: their response state is ``n/a``.
* CSV / JSONL / Parquet with ``id`` and one of ``correct`` (0/1, true/false), ``score`` (0-1), or
  ``n`` and ``c`` (``c`` of ``n`` samples correct: unbiased pass@k), plus optional ``response``,
  ``prediction`` (null/empty = nothing extracted), ``target``, ``task`` and ``finish_reason``
  columns; :class:`Fields` names other columns (MMLU-Pro writes ``generated_text`` / ``pred``).

Every score is checked against its metric's range (``metric_ranges`` in ``schemas/diagnosis.yaml``;
0-1 unless listed; a listed range is rescaled to 0-1), NaN and infinity are refused, and an id seen
twice with different scores is an error naming both places. Files found under a directory that
are not results (a benchmark file lying beside the logs) are skipped and counted; a file named
directly must be results.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from annotator.diagnose.responses import Classifier, Response, turn_markers
from annotator.errors import InputError
from annotator.io import find_files, records
from annotator.labeling.sources import content_id
from annotator.records import Reject
from annotator.stats import pass_at_k

LM_EVAL_METRICS = ("acc", "exact_match", "pass@1", "acc_norm", "em", "f1", "bleu", "score")
_TASK = re.compile(r"^samples_(.+?)(?:_\d{4}-\d{2}-\d{2}T[\w\-.:]+)?\.jsonl(?:\.gz|\.zst)?$")
SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".csv", ".parquet")
EXAMPLE_CHARS = 600
EXAMPLES_PER_STATE = 5


@dataclass(frozen=True)
class Fields:
    """Column names of a plain results table (the defaults are the documented ones)."""

    response: str = "response"
    prediction: str = "prediction"
    target: str = "target"


@dataclass
class Results:
    """One checkpoint's per-sample results.

    Attributes:
        frame: one row per item id: ``id``, ``task``, ``n``, ``c``, ``score``, ``state``,
            ``length``, ``repetition``.
        metric: what ``score`` is (``acc``, ``correct``, ``pass@8``, several joined by ``/``).
        metrics: task -> metric.
        binary: every score is 0 or 1.
        files: the files read.
        skipped: files found under a directory that are not results (skipped).
        duplicates: ids seen again with the same score (kept once).
        examples: state -> a few trimmed responses (``id``, ``task``, ``text``, ``why``).
    """

    frame: pd.DataFrame
    metric: str
    metrics: dict[str, str]
    binary: bool
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return float(value.strip().lower() == "true")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field {name!r}: {value!r} is not a number") from None
    if not math.isfinite(out):
        raise InputError(f"{where}: field {name!r}: {value!r} is not a finite number")
    return out


def _scaled(value: float, where: str, name: str, ranges: dict[str, list[float]]) -> float:
    lo, hi = ranges.get(name, [0.0, 1.0])
    if not lo <= value <= hi:
        raise InputError(f"{where}: field {name!r}: {value:g} is outside {lo:g}-{hi:g} "
                         f"(the range of {name!r}; other ranges go in metric_ranges of schemas/diagnosis.yaml)")
    return (value - lo) / (hi - lo)


def _text(value: Any) -> str | None:
    """A generation as text: lm-eval's ``resps`` is a list (per repeat) of lists (per request)."""
    while isinstance(value, (list, tuple)):
        if not value:
            return None
        if len(value) == 2 and isinstance(value[1], bool):  # (log-likelihood, is_greedy): not a generation
            return None
        value = value[0]
    if value is None or isinstance(value, (int, float, bool)):
        return None
    return str(value)


def _gen_args(rec: dict[str, Any]) -> tuple[tuple[str, ...], int | None, str | None]:
    args = rec.get("arguments")
    if isinstance(args, dict):  # lm-eval >= 0.4.3: {"gen_args_0": {"arg_0": prompt, "arg_1": {...}}}
        args = next(iter(args.values()), None)
        args = list(args.values()) if isinstance(args, dict) else args
    if isinstance(args, list) and args and isinstance(args[0], list):
        args = args[0]
    kwargs = next((a for a in args if isinstance(a, dict)), {}) if isinstance(args, list) else {}
    prompt = next((a for a in args if isinstance(a, str)), None) if isinstance(args, list) else None
    until = kwargs.get("until") or ()
    until = (until,) if isinstance(until, str) else tuple(str(u) for u in until)
    limit = kwargs.get("max_gen_toks") or kwargs.get("max_tokens")
    return until, (int(limit) if isinstance(limit, (int, float)) else None), prompt


class _Reader:
    """Rows of one checkpoint's files, response states judged as they are read."""

    def __init__(self, id_field: str | None, metric: str | None, lm_eval_filter: str | None, fields: Fields,
                 cfg: dict[str, Any]) -> None:
        self.id_field, self.metric, self.filter, self.fields = id_field, metric, lm_eval_filter, fields
        self.classifier = Classifier(cfg["responses"])
        self.ranges = {k: [float(x) for x in v] for k, v in (cfg.get("metric_ranges") or {}).items()}
        self.rows: list[dict[str, Any]] = []
        self.metrics: dict[str, str] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}

    def add(self, item_id: str, task: str | None, n: int, c: float, response: Response | None, where: str) -> None:
        correct = n == 1 and c == 1.0
        judged = self.classifier.judge(response or Response(), correct)
        self.rows.append({"id": item_id, "task": task, "n": n, "c": c, "state": judged.state,
                          "length": judged.length, "repetition": judged.repetition, "where": where})
        bucket = self.examples.setdefault(judged.state, [])
        if response is not None and response.text and judged.state != "answered" and len(bucket) < EXAMPLES_PER_STATE:
            text = response.text if len(response.text) <= EXAMPLE_CHARS else (
                response.text[:EXAMPLE_CHARS // 2] + " [...] " + response.text[-EXAMPLE_CHARS // 2:])
            bucket.append({"id": item_id, "task": task, "text": text, "why": judged.why, "length": judged.length})

    def lm_eval(self, path: Path, rows: Any) -> None:
        match = _TASK.match(path.name)
        task = match.group(1) if match else path.name.split(".")[0]
        chosen, used = self.filter, self.metric
        for where, rec in rows:
            if isinstance(rec, Reject):
                raise InputError(f"{where}: {rec.reason}")
            if "doc" not in rec:
                raise InputError(f"{where}: field 'doc': missing (not an lm-eval sample log line)")
            chosen = chosen or rec.get("filter")
            if rec.get("filter") not in (None, chosen):
                continue
            if used is None:
                used = next((m for m in LM_EVAL_METRICS if m in rec), None) or next(iter(rec.get("metrics") or []),
                                                                                    None)
                if used is None:
                    raise InputError(f"{where}: no per-sample metric found; pass --metric")
            if used not in rec:
                raise InputError(f"{where}: field {used!r}: missing")
            doc = rec["doc"]
            if self.id_field:
                if not isinstance(doc, dict) or self.id_field not in doc:
                    raise InputError(f"{where}: field 'doc.{self.id_field}': missing (--id-field)")
                item_id = str(doc[self.id_field])
            else:
                item_id = content_id(doc)
            value = _scaled(_number(rec[used], where, used), where, used, self.ranges)
            text = _text(rec.get("resps"))
            response = None
            if text is not None:
                until, limit, prompt = _gen_args(rec)
                filtered = rec.get("filtered_resps")
                prediction = _text(filtered) if filtered is not None else text
                response = Response(text=text, prediction=prediction, target=rec.get("target"), until=until,
                                    turns=turn_markers(prompt), max_gen_toks=limit)
            self.add(item_id, task, 1, value, response, where)
        self.metrics[task] = str(used or self.metric or "?")

    def table(self, path: Path, rows: Any) -> None:
        f = self.fields
        kind = None
        for where, rec in rows:
            if isinstance(rec, Reject):
                raise InputError(f"{where}: {rec.reason}")
            if kind is None:
                kind = self._kind(path, rec)
            if rec.get("id") is None or rec.get("id") == "":
                raise InputError(f"{where}: field 'id': missing")
            if kind == "n,c":
                n = int(_number(rec.get("n"), where, "n"))
                c = _number(rec.get("c"), where, "c")
                if n < 1 or not 0 <= c <= n:
                    raise InputError(f"{where}: fields 'n','c': need 0 <= c <= n and n >= 1 (n={n}, c={c})")
            else:
                n, c = 1, _scaled(_number(rec.get(kind), where, kind), where, kind, self.ranges)
            response = None
            if f.response in rec:
                response = Response(text=rec.get(f.response), prediction=rec.get(f.prediction),
                                    target=rec.get(f.target), finish_reason=rec.get("finish_reason"))
            task = rec.get("task")
            self.add(str(rec["id"]), None if task in (None, "") else str(task), n, c, response, where)
            self.metrics[str(task) if task not in (None, "") else ""] = kind

    def _kind(self, path: Path, rec: dict[str, Any]) -> str:
        cols = set(rec)
        if "id" not in cols:
            raise InputError(f"{path}: field 'id': missing (columns: {', '.join(map(str, rec))})")
        if self.metric:
            if self.metric not in cols:
                raise InputError(f"{path}: field {self.metric!r}: missing (--metric)")
            return self.metric
        kind = ("n,c" if {"n", "c"} <= cols else "correct" if "correct" in cols else "score" if "score" in cols
                else None)
        if kind is None:
            raise InputError(f"{path}: needs columns id,correct or id,score or id,n,c "
                             f"(found: {', '.join(map(str, rec))})")
        return kind


def looks_like_results(path: Path, fields: Fields = Fields()) -> bool:
    """Whether a file's first record is an lm-eval sample line or a results row (id + a score column)."""
    try:
        first = next((rec for _, rec in records(path)), None)
    except InputError:
        return False
    if not isinstance(first, dict):
        return False
    return "doc" in first or ("id" in first and bool({"correct", "score", "c"} & set(first)))


def expand(paths: list[str | Path], fields: Fields = Fields()) -> tuple[list[Path], list[Path]]:
    """(result files, skipped files): files named directly, plus result files found under directories."""
    files, skipped = [], []
    for raw in paths:
        found = find_files([raw], SUFFIXES, "results")
        if Path(raw).is_dir():
            for path in found:
                (files if looks_like_results(path, fields) else skipped).append(path)
        else:
            files += found
    if not files:
        raise InputError(f"no results files in {', '.join(map(str, paths))} "
                         f"({len(skipped)} files there are not results: e.g. {', '.join(map(str, skipped[:3]))})")
    return files, skipped


def read_results(paths: list[str | Path], *, id_field: str | None = None, metric: str | None = None,
                 k: int = 1, lm_eval_filter: str | None = None, fields: Fields | None = None,
                 cfg: dict[str, Any] | None = None) -> Results:
    """Read one checkpoint's results (several files, one per task, or directories).

    Raises:
        InputError: naming the file, line/row and field of anything unusable.
    """
    from annotator.diagnose.verdict import diagnosis_config

    cfg = cfg or diagnosis_config()
    fields = fields or Fields()
    files, skipped = expand(paths, fields)
    reader = _Reader(id_field, metric, lm_eval_filter, fields, cfg)
    for path in files:
        rows = records(path)
        first = next(rows, None)
        if first is None:
            continue
        head = first[1]
        rows_all = _chain(first, rows)
        if isinstance(head, dict) and ("doc" in head or path.name.startswith("samples_")):
            reader.lm_eval(path, rows_all)
        else:
            reader.table(path, rows_all)
    if not reader.rows:
        raise InputError(f"no results in {', '.join(map(str, files))}")
    frame = pd.DataFrame(reader.rows)
    frame, duplicates = _dedupe(frame)
    too_few = frame[frame.n < k]
    if len(too_few):
        raise InputError(f"pass@{k} needs n >= {k} samples; item {too_few.id.iloc[0]!r} has n={too_few.n.iloc[0]}")
    frame["score"] = [pass_at_k(int(n), c, k) if n > 1 else c for n, c in zip(frame.n, frame.c, strict=True)]
    binary = bool(frame.score.isin([0.0, 1.0]).all() and (frame.n == 1).all())
    metrics = {t: m for t, m in reader.metrics.items()}
    name = "/".join(sorted(set(metrics.values())))
    if (frame.n > 1).any():
        name = f"pass@{k}"
        metrics = {t: name for t in metrics}
    return Results(frame=frame.drop(columns=["where"]), metric=name, metrics=metrics, binary=binary,
                   files=[str(p) for p in files], skipped=[str(p) for p in skipped], duplicates=duplicates,
                   examples=reader.examples)


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def _dedupe(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    dup = frame.duplicated("id", keep=False)
    if not dup.any():
        return frame.reset_index(drop=True), 0
    groups = frame[dup].groupby("id", sort=False)
    for item_id, group in groups:
        if group["c"].nunique() > 1 or group["n"].nunique() > 1:
            a, b = group.iloc[0], group.iloc[1]
            raise InputError(f"result id {item_id!r} appears twice with different scores: {a['where']} "
                             f"(score {a['c']:g}) and {b['where']} (score {b['c']:g}); keep one")
    counts = Counter(frame.loc[dup, "id"])
    kept = frame.drop_duplicates("id", keep="first").reset_index(drop=True)
    return kept, sum(v - 1 for v in counts.values())
