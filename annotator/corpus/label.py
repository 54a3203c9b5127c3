"""``annotator shards label``: classify every shard, on one machine, on Ray, or as a Slurm job.

The same datatrove pipeline (``LabelShards`` wrapping ``ClassifyDocuments``) runs on every
executor, one task per shard: datatrove's ``LocalPipelineExecutor`` (default; all cores),
``RayPipelineExecutor`` (``--executor ray``: ``--ray-address`` / ``RAY_ADDRESS``, else a local
Ray) or ``SlurmPipelineExecutor`` (``--executor slurm``: writes the job and submits it with
``sbatch``; rerun the command after the job to collect the manifest). Same input, same rows on
every executor.

Resumable: ``OUTDIR/manifest.json`` records each shard's outcome; a shard is skipped when it is
done with the same classifier, its output exists and the shard's size and modification time are
unchanged. A rerun redoes only unfinished or failed shards; outputs are written under a
temporary name and renamed when complete, so rows are never duplicated.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from annotator.corpus.shards import list_shards
from annotator.corpus.steps import ClassifyDocuments, LabelShards, output_name
from annotator.errors import ConfigError, InputError
from annotator.io import write_json_atomic


class ShardsSummary(BaseModel):
    """What a ``shards label`` run did."""

    out_dir: str
    shards: int
    skipped: int
    ran: int
    failed_shards: int
    documents: int
    labeled: int
    failed_records: int
    classifier_rows: int
    llm_rows: int
    seconds: float
    executor: str
    submitted: str | None = None

    def text(self) -> str:
        """One line for the terminal."""
        if self.submitted:
            return f"{self.submitted}; rerun the same command after the job to collect {self.out_dir}/manifest.json"
        rate = self.labeled / self.seconds if self.seconds else 0.0
        return (f"{self.shards} shards ({self.skipped} already done, {self.ran} run, {self.failed_shards} failed): "
                f"{self.labeled} of {self.documents} documents labeled ({self.classifier_rows} classifier, "
                f"{self.llm_rows} LLM), {self.failed_records} bad records; {self.seconds:.1f} s "
                f"({rate:,.0f} docs/s, {self.executor}) -> {self.out_dir}/manifest.json")


def _complete(entry: dict[str, Any] | None, shard: Path, model_id: str) -> bool:
    if not entry or entry.get("status") != "done" or entry.get("model_id") != model_id:
        return False
    if not Path(entry.get("output", "")).is_file() or not shard.exists():
        return False
    stat = shard.stat()
    return entry.get("size") == stat.st_size and entry.get("mtime") == stat.st_mtime


def _card(classifier: str | Path) -> dict[str, Any]:
    """The model card (model id, taxonomy version); the model itself must be there too."""
    directory = Path(classifier)
    if not (directory / "model.pkl").is_file() or not (directory / "card.json").is_file():
        raise InputError(f"{directory}: no distilled model (model.pkl and card.json); run `annotator distill` first")
    try:
        return json.loads((directory / "card.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{directory / 'card.json'}: unreadable model card: {exc}") from None


def _merge_status(out: Path, manifest: dict[str, Any]) -> None:
    for part in sorted((out / ".status").glob("*.json")):
        try:
            entry = json.loads(part.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        manifest["shards"][entry["shard"]] = entry


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (ours and the workers') to ``path`` while datatrove runs: its INFO logs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _executor(kind: str, pipeline: list[Any], tasks: int, workers: int, logs: Path, options: dict[str, Any]) -> Any:
    if kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                                     skip_completed=False)
    if kind == "ray":
        import ray
        from datatrove.executor import RayPipelineExecutor

        if not ray.is_initialized():
            address = options.get("ray_address") or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        return RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                                   skip_completed=False, cpus_per_task=1, mem_per_cpu_gb=1)
    if kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                                     skip_completed=False, time=options.get("slurm_time") or "04:00:00",
                                     partition=options.get("slurm_partition") or "cpu", job_name="slice-annotator",
                                     cpus_per_task=1, mem_per_cpu_gb=2)
    raise ConfigError(f"unknown executor {kind!r} (local, ray, slurm)")


def label_shards(inputs: list[str | Path], out_dir: str | Path, classifier: str | Path, *, executor: str = "local",
                 workers: int | None = None, keep_text: bool = False, llm_below: float | None = None,
                 llm_settings: dict[str, Any] | None = None, batch_size: int = 4096,
                 **options: Any) -> ShardsSummary:
    """Label every shard into ``out_dir`` and write ``out_dir/manifest.json``.

    Raises:
        InputError: missing inputs or classifier; ConfigError: an unknown executor or no ``sbatch``.
    """
    started = time.perf_counter()
    shards = list_shards(inputs)
    classify = ClassifyDocuments(str(classifier), batch_size=batch_size, llm_below=llm_below,
                                 llm_settings=llm_settings)
    card = _card(classifier)  # the workers load the model itself; this process stays light
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise InputError(f"{out}: output directory is not writable")
    if executor == "slurm" and not any((Path(p) / "sbatch").exists() for p in os.environ.get("PATH", "").split(":")):
        raise ConfigError("--executor slurm needs `sbatch` on PATH (run on the cluster's login node)")
    path = out / "manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"shards": {}}
    _merge_status(out, manifest)
    done = [s for s in shards if _complete(manifest["shards"].get(str(s)), s, card["model_id"])]
    pending = [s for s in shards if s not in set(done)]
    for shard in pending:
        (out / ".status" / f"{Path(output_name(shard)).stem}.json").unlink(missing_ok=True)
        manifest["shards"].pop(str(shard), None)
    workers = max(1, min(workers or os.cpu_count() or 1, len(pending) or 1))
    submitted = None
    if pending:
        step = LabelShards([str(s) for s in pending], str(out), classify, keep_text=keep_text)
        logs = out / ".datatrove" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        runner = _executor(executor, [step], len(pending), workers, logs, options)
        with _stderr_to(logs / "stderr.log"):
            runner.run()
        if executor == "slurm":
            submitted = f"submitted Slurm job {getattr(runner, 'job_id', '?')} ({len(pending)} tasks; script " \
                        f"{logs / 'launch_script.slurm'})"
        _merge_status(out, manifest)
    manifest.update(model_id=card["model_id"], classifier=str(classifier),
                    taxonomy_version=card.get("taxonomy_version"), executor=executor)
    entries = [manifest["shards"].get(str(s), {}) for s in shards]
    keys = ("read", "labeled", "failed", "classifier", "llm")
    totals = {k: sum(int(e.get(k, 0) or 0) for e in entries) for k in keys}
    manifest["totals"] = {**totals, "shards": len(shards),
                          "failed_shards": sum(e.get("status") == "failed" for e in entries),
                          "pending_shards": sum(not e for e in entries)}
    write_json_atomic(path, manifest)
    for entry in entries:
        if entry.get("status") == "failed":
            print(f"error: shard {entry['shard']}: {entry['error']}", file=sys.stderr)
        for err in entry.get("record_errors", [])[:5]:
            print(f"error: {entry['shard']}:{err['line']}: {err['reason']}", file=sys.stderr)
    return ShardsSummary(
        out_dir=str(out), shards=len(shards), skipped=len(done), ran=len(pending),
        failed_shards=manifest["totals"]["failed_shards"], documents=totals["read"],
        labeled=totals["labeled"], failed_records=totals["failed"], classifier_rows=totals["classifier"],
        llm_rows=totals["llm"], seconds=round(time.perf_counter() - started, 3), executor=executor,
        submitted=submitted)
