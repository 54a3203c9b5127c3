"""A rate-limited provider, side by side: fixed concurrency vs pacing (headers, --rpm, AIMD only).

The loopback server enforces R requests per minute (a bucket of one second's worth, refilled
continuously) and answers 429 beyond it. Each row labels the same number of fresh items (no
cache hits) through the pipeline and reports throughput as a fraction of R and the share of
requests the server rejected.

    python benchmarks/rate_limits.py [--rpm 3000] [--items 3000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakellm import start_fake  # noqa: E402

from annotator.config import load_settings  # noqa: E402
from annotator.labeling.run import run  # noqa: E402
from annotator.labeling.scan import scan  # noqa: E402
from annotator.records import Item  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=float, default=3000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    server = start_fake(latency_ms=args.latency_ms)
    rows = []
    configs = [("fixed concurrency (--no-pace)", {"pace": False}, True),
               ("paced from x-ratelimit-* headers", {}, True),
               ("paced from --rpm, no headers sent", {"rpm": args.rpm}, False),
               ("AIMD only (no headers, no --rpm)", {}, False)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n, (label, extra, headers) in enumerate(configs):
                server.reset(latency=args.latency_ms / 1000, rpm=args.rpm, limit_headers=headers)
                items = [Item(id=f"r{n}-{i}", text=f"Question {i} of run {n}: what is {i} + {n}?", source="b")
                         for i in range(args.items)]
                cfg = load_settings({"base_url": server.url, "model": "fake-model", "cache_dir": f"{tmp}/c{n}",
                                     "concurrency": args.concurrency, **extra})
                started = time.perf_counter()
                summary = run(lambda items=items: items, scan(lambda items=items: items), cfg,
                              output=f"{tmp}/out{n}.parquet", keep_fields=False)
                wall = time.perf_counter() - started
                stats = server.stats()
                sent = stats["accepted"] + stats["rejected"]
                rows.append((label, summary.ok, summary.failed, wall, sent, stats["rejected"]))
                print(f"  {label}: {wall:.0f} s", file=sys.stderr, flush=True)
    finally:
        server.stop()
    limit = args.rpm / 60
    print(f"rate limits: {args.items} items, server allows {args.rpm:.0f} requests/min ({limit:.0f}/s), "
          f"concurrency {args.concurrency}, latency {args.latency_ms:.0f} ms, {os.cpu_count()} cores")
    print(f"| {'client':<36} | {'ok':>5} | {'failed':>6} | {'seconds':>7} | {'req/s':>6} | {'of R':>5} "
          f"| {'requests':>8} | {'429s':>5} | {'429 %':>6} |")
    print(f"|{'-' * 38}|{'-' * 7}|{'-' * 8}|{'-' * 9}|{'-' * 8}|{'-' * 7}|{'-' * 10}|{'-' * 7}|{'-' * 8}|")
    for label, ok, failed, wall, sent, rejected in rows:
        rate = (sent - rejected) / wall
        print(f"| {label:<36} | {ok:>5} | {failed:>6} | {wall:>7.1f} | {rate:>6.1f} | {rate / limit:>5.2f} "
              f"| {sent:>8} | {rejected:>5} | {100 * rejected / sent:>5.1f}% |")


if __name__ == "__main__":
    main()
