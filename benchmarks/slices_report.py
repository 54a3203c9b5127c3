"""Time and peak memory of `annotator slices report` with responses, at 12k and 100k items.

The 12k row is the real MMLU-Pro pair (Llama-2-7b against Llama-3.1-8B as baseline, with
responses); larger rows repeat those real rows under new ids (labels, responses, scores), so the
response states, slices and findings have the real shape. Each size runs in a fresh process
(the CLI command itself), timed end to end, peak RSS from the child's rusage.

Usage: python benchmarks/slices_report.py [SIZE ...]   (default: 12032 100000)
"""

import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real-outputs" / "mmlu-pro"
SRC = SHARED if SHARED.is_dir() else ROOT / "tests" / "fixtures" / "real-outputs" / "mmlu-pro"


# runs the command in a fresh child and prints that child's peak RSS (KB): one figure per size
MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def load(name):
    with gzip.open(SRC / name, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def write(rows, path, size):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(size):
            row = dict(rows[i % len(rows)])
            row["id"] = f"{row['id']}-{i // len(rows)}"
            fh.write(json.dumps(row) + "\n")


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [12032, 100000]
    labels, now = load("labels-rule.jsonl.gz"), load("Llama-2-7b-hf.jsonl.gz")
    before = load("Meta-Llama-3_1-8B.jsonl.gz")
    print("| items | findings | wall s | peak RSS (MB) |")
    print("|---:|---:|---:|---:|")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for rows, name in ((labels, "labels.jsonl"), (now, "now.jsonl"), (before, "before.jsonl")):
                write(rows, tmp / name, size)
            cmd = [str(Path(sys.executable).parent / "annotator"), "slices", "report",
                   "--labels", str(tmp / "labels.jsonl"),
                   "--results", str(tmp / "now.jsonl"), "--baseline", str(tmp / "before.jsonl"), "--allow-unreviewed",
                   "-o", str(tmp / "out")]
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(proc.stderr or proc.stdout)
            peak = int(proc.stdout.split()[-1]) / 1024
            findings = len(json.loads((tmp / "out.json").read_text())["findings"])
            print(f"| {size:,} | {findings} | {wall:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
