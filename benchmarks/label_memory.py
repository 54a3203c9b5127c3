"""Peak memory of ``annotator label`` at 10k / 100k / 1M short items, concurrency 256, one run each.

Each row runs the real command in a subprocess against the loopback server (no request log kept)
with a fresh cache, and reads the command's peak RSS (``VmHWM`` in ``/proc/<pid>/status``, the
kernel's own high-water mark) just before it exits. ``--src DIR`` runs another checkout of the
package instead (e.g. the commit before streaming) for a side-by-side figure.

    python benchmarks/label_memory.py [--sizes 10000,100000,1000000] [--src DIR]
    python benchmarks/label_memory.py --formats 300000     # --dry-run from JSONL, Parquet and CSV

``--formats N`` writes the same N items (~1 kB each) as JSONL, Parquet and CSV and runs
``--dry-run`` on each (the reading, checking and planning path, no requests), side by side in one run.
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

MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
WORDS = "apples pears trains minutes rows coins marbles pages boxes hours".split()


def write_items(path: Path, n: int, repeat: int = 1) -> None:
    """n distinct word problems (~90 characters each, ``repeat`` times as long)."""
    with open(path, "w") as fh:
        for i in range(n):
            a, b = i % 97 + 3, i % 89 + 5
            text = " ".join([f"Ann has {a} {WORDS[i % 10]} and gets {b} more on day {i}."] * repeat)
            fh.write(json.dumps({"id": f"m{i}", "question": f"{text} How many does she have now?"}) + "\n")


def peak_rss(pid: int) -> int | None:
    """VmHWM in kB (None once the process is gone)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_one(src: Path, url: str, n: int, concurrency: int, work: Path) -> tuple[float, float, int, dict]:
    data = work / f"in-{n}.jsonl"
    write_items(data, n)
    out = work / f"out-{n}.parquet"
    env = dict(os.environ, PYTHONPATH=str(src), ANNOTATOR_CACHE_DIR=str(work / f"cache-{n}"))
    args = [sys.executable, "-m", "annotator.cli", "label", str(data), "-o", str(out), "--id-field", "id",
            "--base-url", url, "--model", "fake-model", "--concurrency", str(concurrency), "--no-progress"]
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=work)  # not the checkout: `-m` would import the package from the cwd, not --src
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_rss(proc.pid) or 0)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"label failed ({proc.returncode}):\n{stdout}\n{stderr[-3000:]}")
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["ok"] == n, summary
    data.unlink()
    return wall, n / wall, peak, summary


def formats(src: Path, n: int, work: Path) -> list[tuple[str, float, int]]:
    """(format, seconds, peak RSS kB) of ``label --dry-run`` over the same n items in each format."""
    import pandas as pd

    jsonl = work / "in.jsonl"
    write_items(jsonl, n, repeat=20)  # ~1 kB per item: reading a whole file would show
    frame = pd.read_json(jsonl, lines=True)
    frame.to_parquet(work / "in.parquet")
    frame.to_csv(work / "in.csv", index=False)
    del frame
    rows = []
    for path in (jsonl, work / "in.parquet", work / "in.csv"):
        env = dict(os.environ, PYTHONPATH=str(src), ANNOTATOR_CACHE_DIR=str(work / "cache"))
        args = [sys.executable, "-m", "annotator.cli", "label", str(path), "-o", str(work / "out.parquet"),
                "--id-field", "id", "--base-url", "http://127.0.0.1:9/v1", "--model", "gpt-4o-mini", "--dry-run",
                "--no-progress"]
        started = time.perf_counter()  # a fresh wrapper per run: its children's peak RSS is this run's alone
        proc = subprocess.run([sys.executable, "-c", MEASURE, *args], env=env, capture_output=True, text=True,
                              cwd=work)  # not the checkout: `-m` would import the package from the cwd
        if proc.returncode != 0:
            raise SystemExit(f"dry run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
        rows.append((path.suffix.lstrip("."), time.perf_counter() - started, int(proc.stdout.split()[-1])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--src", type=Path, default=ROOT, help="checkout whose annotator package to run")
    parser.add_argument("--formats", type=int, help="--dry-run over N items from JSONL, Parquet and CSV instead")
    args = parser.parse_args()
    if args.formats:
        with tempfile.TemporaryDirectory() as tmp:
            rows = formats(args.src.resolve(), args.formats, Path(tmp))
        print(f"label --dry-run memory over {args.formats:,} items, {os.cpu_count()} cores, package from {args.src}")
        print("| format | seconds | peak RSS (MB) |\n|---|---:|---:|")
        for fmt, wall, peak in rows:
            print(f"| {fmt} | {wall:.1f} | {peak / 1024:.0f} |")
        return
    server = start_fake(latency_ms=args.latency_ms, keep_log=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in (int(s) for s in args.sizes.split(",")):
                wall, rate, peak, _ = run_one(args.src.resolve(), server.url, n, args.concurrency, Path(tmp))
                rows.append((n, wall, rate, peak))
                print(f"  {n:,} items: {wall:.0f} s, peak RSS {peak / 1024:.0f} MB", file=sys.stderr, flush=True)
    finally:
        server.stop()
    print(f"label memory: `annotator label` at concurrency {args.concurrency}, loopback {args.latency_ms:.0f} ms, "
          f"{os.cpu_count()} cores, package from {args.src}")
    print(f"| {'items':>9} | {'seconds':>8} | {'items/s':>8} | {'peak RSS (MB)':>13} |")
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 15}|")
    for n, wall, rate, peak in rows:
        print(f"| {n:>9,} | {wall:>8.1f} | {rate:>8.1f} | {peak / 1024:>13.0f} |")


if __name__ == "__main__":
    main()
