"""A fresh run and a cached rerun, beside bespokelabs-curator's, against the same loopback server.

3,000 distinct GSM8K questions, 64 requests in flight, the loopback server answering after
``--latency-ms`` (200). Each tool labels them twice with an empty cache first: the fresh run pays
every request, the rerun must answer all from its cache (slice-annotator: the same command again,
which finds its table up to date, and the same job to another ``-o``, which answers every item from
the answer cache and validates it again). Rows: items/s over each tool's own wall
time (slice-annotator: the run as ``annotator label`` reports it, checking pass, labeling and
writing the table included; curator: the ``LLM(...)`` call), and the whole process. slice-annotator
asks with the full v1 eval schema (rationale, four dimensions, confidences); curator with a
four-field schema of strings (what it needs to store a label set).

Curator is not a dependency: install it in a separate environment and point ``--curator-python``
at it (``python3 -m venv /tmp/curenv && /tmp/curenv/bin/pip install bespokelabs-curator==0.1.31``);
without it only slice-annotator's rows are printed.

    python benchmarks/cached_path.py [--items 3000] [--concurrency 64] [--latency-ms 200] [--curator-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakellm import start_fake  # noqa: E402

GSM8K = ROOT.parent / "shared" / "data" / "bench" / "gsm8k" / "test.jsonl"
FALLBACK = ROOT / "tests" / "fixtures" / "records" / "gsm8k.jsonl"

CURATOR = textwrap.dedent('''
    import json, sys, time
    from pydantic import BaseModel
    from bespokelabs import curator

    class Labels(BaseModel):
        background: str
        task_type: str
        operation: list[str]
        output_constraint: str

    class Tagger(curator.LLM):
        response_format = Labels

        def prompt(self, row):
            return "Label this benchmark sample: " + row["question"]

        def parse(self, row, response):
            return {"id": row["id"], **response.model_dump()}

    data, url, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = [json.loads(line) for line in open(data)]
    llm = Tagger(model_name="gpt-4o-mini", backend="openai",
                 backend_params={"base_url": url, "api_key": "sk-fake", "max_concurrent_requests": concurrency,
                                 "max_requests_per_minute": 10_000_000, "max_tokens_per_minute": 10_000_000_000,
                                 "require_all_responses": False})
    started = time.perf_counter()
    out = llm(rows)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(out.dataset)}))
''')


def ours(data: Path, out: Path, cache: Path, url: str, concurrency: int) -> tuple[float, float, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOTATOR_CACHE_DIR=str(cache))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "annotator.cli", "label", str(data), "-o", str(out), "--id-field",
                           "id", "--base-url", url, "--model", "gpt-4o-mini", "--mode", "json_schema",
                           "--concurrency", str(concurrency), "--no-progress"],
                          env=env, capture_output=True, text=True)
    whole = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr[-2000:])
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    return summary["wall_seconds"], whole, summary["ok"]


def curator(python: str, data: Path, cache: Path, url: str, concurrency: int) -> tuple[float, float, int]:
    # curator counts tokens with tiktoken, which downloads its encodings at first use; litellm (a
    # curator dependency) ships them, so point tiktoken there: nothing is fetched
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, CURATOR_CACHE_DIR=str(cache), CURATOR_DISABLE_RICH_DISPLAY="1",
               CURATOR_VIEWER="0", TELEMETRY_ENABLED="0", HOSTED_CURATOR_VIEWER="0",
               TIKTOKEN_CACHE_DIR=str(Path(purelib) / "litellm" / "litellm_core_utils" / "tokenizers"))
    started = time.perf_counter()
    done = subprocess.run([python, "-c", CURATOR, str(data), url, str(concurrency)], env=env, capture_output=True,
                          text=True)
    whole = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("curator: " + done.stdout[-2000:] + done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], whole, result["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--curator-python", help="a Python with bespokelabs-curator installed")
    args = parser.parse_args()
    source = GSM8K if GSM8K.exists() else FALLBACK
    questions = [json.loads(line)["question"] for line in source.read_text().splitlines() if line.strip()]
    server = start_fake(latency_ms=args.latency_ms, keep_log=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "in.jsonl"
            with open(data, "w") as fh:
                for i in range(args.items):
                    fh.write(json.dumps({"id": f"q{i}", "question": f"{questions[i % len(questions)]} (item {i})"})
                             + "\n")
            # the same command again finds its table up to date; to another -o, every item is answered
            # again from the answer cache and validated (the per-item cached path; also --recheck)
            outputs = {"fresh": "ours.parquet", "cached rerun": "ours.parquet", "cached, another -o": "other.parquet"}
            tools = [("slice-annotator", lambda run: ours(data, Path(tmp) / outputs[run],
                                                          Path(tmp) / "ours-cache", server.url, args.concurrency))]
            if args.curator_python:
                tools.append(("bespokelabs-curator 0.1.31", lambda run: curator(
                    args.curator_python, data, Path(tmp) / "curator-cache", server.url, args.concurrency)))
            for name, job in tools:
                for run in ("fresh", "cached rerun", "cached, another -o")[:3 if name == "slice-annotator" else 2]:
                    own, whole, n = job(run)
                    rows.append((name, run, n, n / own, n / whole))
    finally:
        server.stop()
    print(f"{args.items} items, {args.concurrency} in flight, loopback latency {args.latency_ms:.0f} ms "
          f"({os.cpu_count()} CPUs)\n")
    print("| tool | run | items | items/s (own wall time) | items/s (whole process) |")
    print("|---|---|---:|---:|---:|")
    for name, run, n, own, whole in rows:
        print(f"| {name} | {run} | {n} | {own:,.1f} | {whole:,.1f} |")


if __name__ == "__main__":
    main()
