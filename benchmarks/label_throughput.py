"""Labeling throughput against the loopback server with 200 ms latency, side by side in one run.

Rows: a naive sequential instructor loop (what a first script does), our pipeline at
concurrency 64 and 256 with one item per request, with ``--items-per-request 8``, and a fully
cached rerun. Columns: items/s, client CPU ms per item (this process only; the server is a
subprocess), and the ratio to the latency bound (concurrency x items per request / latency).

    python benchmarks/label_throughput.py [--latency-ms 200] [--items 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakellm import start_fake  # noqa: E402

from annotator.config import load_settings  # noqa: E402
from annotator.labeling.response_models import build_response_model  # noqa: E402
from annotator.labeling.run import run  # noqa: E402
from annotator.labeling.scan import scan  # noqa: E402
from annotator.records import Item  # noqa: E402
from annotator.taxonomy import load_taxonomy  # noqa: E402

GSM8K = ROOT.parent / "shared" / "data" / "bench" / "gsm8k" / "test.jsonl"
FALLBACK = ROOT / "tests" / "fixtures" / "gsm8k-10.jsonl"


def make_items(n: int, tag: str) -> list[Item]:
    """n distinct items built from real GSM8K questions."""
    path = GSM8K if GSM8K.exists() else FALLBACK
    questions = [json.loads(line)["question"] for line in path.read_text().splitlines()]
    return [Item(id=f"{tag}-{i}", text=f"{questions[i % len(questions)]} (variant {tag}-{i})", source="gsm8k")
            for i in range(n)]


def naive_loop(url: str, items: list[Item]) -> tuple[float, float]:
    """Sequential sync instructor calls, response model passed as a plain class each time."""
    import instructor
    from openai import OpenAI

    from annotator.labeling.prompts import PromptSet

    tax = load_taxonomy()
    model = build_response_model(tax, "eval")
    prompts = PromptSet(tax, "eval")
    client = instructor.from_openai(OpenAI(base_url=url, api_key="x"), mode=instructor.Mode.JSON_SCHEMA)
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        client.chat.completions.create(model="fake-model", response_model=model,
                                       messages=prompts.messages([item]), max_retries=1)
    return time.perf_counter() - wall, time.process_time() - cpu


def pipeline(url: str, items: list[Item], cache_dir: str, **settings) -> tuple[float, float, int]:
    cfg = load_settings({"base_url": url, "model": "fake-model", "cache_dir": cache_dir, **settings})
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:  # the table is written, as the CLI does
        summary = run(lambda: items, scan(lambda: items), cfg, output=os.path.join(out, "labels.parquet"),
                      keep_fields=False)
    elapsed, used = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.ok == len(items), summary.text()
    return elapsed, used, summary.requests


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of the server process so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--items", type=int, default=2000, help="items per pipeline row")
    parser.add_argument("--naive-items", type=int, default=25)
    args = parser.parse_args()
    latency = args.latency_ms / 1000.0
    server = start_fake(latency_ms=args.latency_ms)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pid = server.proc.pid
            before = server_cpu(pid)
            wall, cpu = naive_loop(server.url, make_items(args.naive_items, "naive"))
            rows.append(("naive sequential instructor loop", args.naive_items, wall, cpu, 1 / latency, 0,
                         server_cpu(pid) - before))
            for label, conc, ipr, n in [("pipeline c64, 1 item/request", 64, 1, args.items),
                                        ("pipeline c256, 1 item/request", 256, 1, args.items * 2),
                                        ("pipeline c64, 8 items/request", 64, 8, args.items * 2)]:
                items = make_items(n, f"c{conc}i{ipr}")
                before = server_cpu(pid)
                wall, cpu, requests = pipeline(server.url, items, os.path.join(tmp, "cache"),
                                               concurrency=conc, items_per_request=ipr)
                rows.append((label, n, wall, cpu, conc * ipr / latency, requests, server_cpu(pid) - before))
            items = make_items(args.items * 2, "c256i1")  # the c256 job again: every answer cached
            before = len(server.log())
            wall, cpu, requests = pipeline(server.url, items, os.path.join(tmp, "cache"), concurrency=256)
            assert requests == 0 and len(server.log()) == before
            rows.append(("cached rerun (c256 job again)", len(items), wall, cpu, float("nan"), 0, 0.0))
    finally:
        server.stop()
    print(f"label throughput, loopback server at {args.latency_ms:.0f} ms latency, {os.cpu_count()} cores")
    print(f"| {'client':<34} | {'items':>6} | {'requests':>8} | {'items/s':>8} | {'CPU ms/item':>11} "
          f"| {'server ms/item':>14} | {'of bound':>8} |")
    print(f"|{'-' * 36}|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 13}|{'-' * 16}|{'-' * 10}|")
    for label, n, wall, cpu, bound, requests, srv in rows:
        rate = n / wall
        of_bound = "-" if bound != bound else f"{rate / bound:.2f}"
        shown_requests = n if label.startswith("naive") else requests
        print(f"| {label:<34} | {n:>6} | {shown_requests:>8} | {rate:>8.1f} | {1000 * cpu / n:>11.2f} "
              f"| {1000 * srv / n:>14.2f} | {of_bound:>8} |")


if __name__ == "__main__":
    main()
