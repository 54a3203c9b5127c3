"""A Batch API run against the loopback server, beside the same job online, in one run.

Both rows label the same fresh items as model ``gpt-4o-mini`` (the shipped price table's online
and batch prices), each with its own empty cache: online at concurrency 64, and with
``--batch-api`` (split into batches of ``--batch-size``; the loopback server finishes a batch
``--delay`` seconds after it is created and fails every 50th request, which the run then asks
online). Columns: requests sent online, requests sent in batches, wall time, estimated cost.

    python benchmarks/batch_api.py [--items 5000] [--batch-size 2000] [--delay 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakellm import start_fake  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=2.0)
    args = parser.parse_args()
    server = start_fake(latency_ms=50, keep_log=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "in.jsonl"
            with open(data, "w") as fh:
                for i in range(args.items):
                    fh.write(json.dumps({"id": f"b{i}", "question": f"What is {i} times {i % 7 + 2}? (item {i})"})
                             + "\n")
            for name, extra in (("online, concurrency 64", ["--concurrency", "64", "--mode", "json_schema"]),
                                ("--batch-api", ["--batch-api", "--batch-size", str(args.batch_size),
                                                 "--batch-poll", "0.5"])):
                server.reset(batch={"delay": args.delay, "fail_every": 50}, latency=0.05)
                out = Path(tmp) / f"{name.split()[0].strip('-,')}.parquet"
                env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOTATOR_CACHE_DIR=str(out) + ".cache")
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "annotator.cli", "label", str(data), "-o", str(out),
                                       "--id-field", "id", "--base-url", server.url, "--model", "gpt-4o-mini",
                                       "--no-progress", *extra], env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(done.stdout + done.stderr[-2000:])
                summary = json.loads(Path(f"{out}.summary.json").read_text())
                stats = server.stats()
                rows.append((name, summary["ok"], summary["requests"], stats.get("batch_requests", 0),
                             (summary.get("batch") or {}).get("batches", 0), wall, summary["estimated_cost_usd"]))
    finally:
        server.stop()
    print(f"batch API: {args.items} items, model gpt-4o-mini prices, loopback server (batch done after "
          f"{args.delay:.0f} s, every 50th batch request fails), {os.cpu_count()} cores")
    print(f"| {'run':<24} | {'ok':>5} | {'online requests':>15} | {'batch requests':>14} | {'batches':>7} "
          f"| {'seconds':>7} | {'est. cost (USD)':>15} |")
    print(f"|{'-' * 26}|{'-' * 7}|{'-' * 17}|{'-' * 16}|{'-' * 9}|{'-' * 9}|{'-' * 17}|")
    for name, ok, online, batch, batches, wall, cost in rows:
        print(f"| {name:<24} | {ok:>5} | {online:>15} | {batch:>14} | {batches:>7} | {wall:>7.1f} | {cost:>15.4f} |")


if __name__ == "__main__":
    main()
