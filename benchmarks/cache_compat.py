"""A cache written by an earlier version answers every request of the same runs now: nothing is paid twice.

Each run below labels real benchmark records (GSM8K, MMLU-Redux, ARC, BBH, DROP, ... from
``tests/fixtures/records``) through the loopback server, first with the code of ``--rev`` (a
``git archive`` of it, default ``HEAD``) and an empty cache, then with the working tree and the
same cache. The second pass must send no completion request and create no batch, call every item
cached, and write the same labels. Runs: singles, ``--votes 3``, ``--items-per-request 4``,
``--fewshot 2 --candidates 4``, ``--batch-api``, and two models (``--model a --model b``); the
record's evidence and the subset check are on in all of them (the default).

    python benchmarks/cache_compat.py [--rev REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakellm import start_fake  # noqa: E402

RECORDS = ROOT / "tests" / "fixtures" / "records"
RUNS = {
    "singles": [],
    "--votes 3": ["--votes", "3"],
    "--items-per-request 4": ["--items-per-request", "4", "--fewshot", "0", "--candidates", "0"],
    "--fewshot 2 --candidates 4": ["--fewshot", "2", "--candidates", "4"],
    "--batch-api": ["--batch-api", "--batch-poll", "0.2"],
    "--model a --model b": ["--model", "b"],
}
LABELS = ["background", "task_type", "operation", "output_constraint", "status", "flags"]


def label(code: Path, inputs: list[Path], out: Path, cache: Path, url: str, extra: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), ANNOTATOR_CACHE_DIR=str(cache))
    done = subprocess.run([sys.executable, "-m", "annotator.cli", "label", *map(str, inputs), "-o", str(out),
                           "--base-url", url, "--model", "a", "--mode", "json_schema", "--no-progress", *extra],
                          env=env, capture_output=True, text=True, cwd=out.parent)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{code}: {' '.join(extra)}\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(Path(f"{out}.summary.json").read_text())


def table(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    cols = [c for c in LABELS if c in df]
    return df.sort_values("id").set_index("id")[cols].map(lambda v: json.dumps(v, default=str, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the earlier version [HEAD]")
    args = parser.parse_args()
    inputs = sorted(p for p in RECORDS.iterdir() if p.suffix in (".jsonl", ".json"))
    server = start_fake(latency_ms=0, keep_log=True)
    rows, failed = [], False
    try:
        with tempfile.TemporaryDirectory() as tmp:
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(["git", "archive", args.rev], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            for name, extra in RUNS.items():
                work = Path(tmp) / name.replace(" ", "_").strip("-")
                work.mkdir()
                cache = work / "cache"
                server.reset(batch={"delay": 0.2})
                first = label(before, inputs, work / "before.parquet", cache, server.url, extra)
                paid = len(server.log()) + server.stats().get("batch_requests", 0)  # online + in batches
                server.reset(batch={"delay": 0.2})
                second = label(ROOT, inputs, work / "after.parquet", cache, server.url, extra)
                sent_again = len(server.log()) + server.stats().get("batch_requests", 0)
                same = table(work / "before.parquet").equals(table(work / "after.parquet"))
                ok = sent_again == 0 and second["cached"] == second["items"] and same
                failed |= not ok
                rows.append((name, first["items"], paid, sent_again, second["cached"], "yes" if same else "NO",
                             "ok" if ok else "FAILED"))
    finally:
        server.stop()
    print(f"cache written by {args.rev}, read by the working tree ({len(inputs)} real benchmark files)\n")
    print("| run | items | requests paid before | requests sent after | cached after | same labels | |")
    print("|---|---:|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
