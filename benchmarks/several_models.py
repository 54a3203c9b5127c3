"""Several models, side by side vs one after another, against the loopback server, in one run.

Every row labels the same fresh items with an empty cache at ``--concurrency`` per model: one
model alone; two models as two separate commands one after the other (what the tool did before
models ran side by side); two models in one command (``--model m1 --model m2``). Columns:
answers (items x models), wall time of the command(s), and the ratio to one model's time.

    python benchmarks/several_models.py [--items 1000] [--concurrency 32] [--latency-ms 200]
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


def label(url: str, data: Path, out: Path, models: list[str], concurrency: int) -> tuple[int, float]:
    """Run ``annotator label`` once; (answers, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOTATOR_CACHE_DIR=f"{out}.cache")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "annotator.cli", "label", str(data), "-o", str(out), "--id-field",
                           "id", "--base-url", url, "--mode", "json_schema", "--concurrency", str(concurrency),
                           "--no-progress", *[a for m in models for a in ("--model", m)]],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr[-2000:])
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    return summary["ok"] * len(models), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    server = start_fake(latency_ms=args.latency_ms, keep_log=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "in.jsonl"
            data.write_text("".join(json.dumps({"id": f"m{i}", "question": f"How many is {i} plus {i % 9}?"}) + "\n"
                                    for i in range(args.items)))
            one = label(server.url, data, Path(tmp) / "one.parquet", ["m1"], args.concurrency)
            rows.append(("one model", *one))
            first = label(server.url, data, Path(tmp) / "a.parquet", ["m1"], args.concurrency)
            second = label(server.url, data, Path(tmp) / "b.parquet", ["m2"], args.concurrency)
            rows.append(("two models, one after another", first[0] + second[0], first[1] + second[1]))
            rows.append(("two models, side by side", *label(server.url, data, Path(tmp) / "two.parquet",
                                                             ["m1", "m2"], args.concurrency)))
    finally:
        server.stop()
    print(f"several models: {args.items} items, concurrency {args.concurrency} per model, loopback "
          f"{args.latency_ms:.0f} ms, {os.cpu_count()} cores")
    print(f"| {'run':<30} | {'answers':>7} | {'seconds':>7} | {'x one model':>11} |")
    print(f"|{'-' * 32}|{'-' * 9}|{'-' * 9}|{'-' * 13}|")
    for name, answers, wall in rows:
        print(f"| {name:<30} | {answers:>7} | {wall:>7.1f} | {wall / rows[0][2]:>11.2f} |")


if __name__ == "__main__":
    main()
