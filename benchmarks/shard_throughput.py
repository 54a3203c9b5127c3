"""Corpus-side throughput and quality: ``annotator shards label`` at 10k / 100k / 1M documents.

Documents (~1 kB) are resampled from real material whose genre, content form and domain follow
from the source (../shared/data): Wikipedia articles (encyclopedia, prose), news (news_report,
prose), MATH and GSM8K worked solutions (worked_solution, math_notation, school/competition math),
MBPP and HumanEval code (source_code, code, programming). Base documents are split in two halves:
the teacher (distilled) sees one, agreement is measured on chunks of the other, so no chunk of a
scored document was seen in training. Each configuration runs as its own process tree; its peak
memory is the largest sum over that tree, sampled every 0.1 s, of each process's proportional
set size (PSS: private pages plus its share of pages shared with the others, so libraries
loaded once and shared by forked workers are not counted twice), and of plain RSS for reference.

Usage: python benchmarks/shard_throughput.py [--sizes 10000,100000,1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CHUNK = 1000


def base_documents() -> list[dict]:
    """Real documents with source-derived labels."""
    docs = []
    for name, genre, form in (("enwiki_gensim_sample", "encyclopedia", "prose"),
                              ("lee_background_news", "news_report", "prose")):
        for line in (SHARED / "corpus" / f"{name}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            docs.append({"text": rec["text"], "genre": genre, "content_form": form, "domain": None, "src": name})
    for line in (SHARED / "bench" / "math" / "test.jsonl").read_text().splitlines():
        rec = json.loads(line)
        level5 = rec.get("level") == "Level 5"
        docs.append({"text": f"Problem: {rec['problem']}\nSolution: {rec['solution']}", "genre": "worked_solution",
                     "content_form": "math_notation", "domain": "competition_math" if level5 else "school_math",
                     "src": "math"})
    for line in (SHARED / "bench" / "gsm8k" / "test.jsonl").read_text().splitlines():
        rec = json.loads(line)
        docs.append({"text": f"{rec['question']}\n{rec['answer']}", "genre": "worked_solution",
                     "content_form": "math_notation", "domain": "school_math", "src": "gsm8k"})
    for line in (SHARED / "bench" / "mbpp" / "mbpp.jsonl").read_text().splitlines():
        rec = json.loads(line)
        docs.append({"text": rec["code"], "genre": "source_code", "content_form": "code", "domain": "programming",
                     "src": "mbpp"})
    with gzip.open(SHARED / "bench" / "humaneval" / "HumanEval.jsonl.gz", "rt") as fh:
        for line in fh:
            rec = json.loads(line)
            docs.append({"text": rec["prompt"] + rec["canonical_solution"], "genre": "source_code",
                         "content_form": "code", "domain": "programming", "src": "humaneval"})
    return docs


def chunk(doc: dict, rng: random.Random) -> str:
    text = doc["text"]
    if len(text) <= CHUNK:
        return text
    start = rng.randrange(0, len(text) - CHUNK)
    return text[start:start + CHUNK]


def split(docs: list[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Teacher half and evaluation half of the base documents (balanced per source)."""
    rng = random.Random(seed)
    teacher, held = [], []
    by_src: dict[str, list[dict]] = {}
    for d in docs:
        by_src.setdefault(d["src"], []).append(d)
    for group in by_src.values():
        rng.shuffle(group)
        cap = min(len(group) // 2, 400)  # keep the teacher at LLM-labeling scale
        teacher += group[:cap]
        held += group[len(group) // 2:]
    return teacher, held


def write_teacher(teacher: list[dict], path: Path, rng: random.Random) -> None:
    """Teacher labels as an LLM would give them (here: the source-derived labels)."""
    with open(path, "w") as fh:
        for i, d in enumerate(teacher):
            fh.write(json.dumps({"id": f"t{i}", "text": chunk(d, rng), "genre": d["genre"],
                                 "content_form": d["content_form"], "domain": d["domain"] or "world_knowledge",
                                 "operation": []}) + "\n")


def write_shards(held: list[dict], n: int, directory: Path, shards: int = 8, seed: int = 1) -> None:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    per = -(-n // shards)
    written = 0
    for s in range(shards):
        with open(directory / f"shard-{s:03d}.jsonl", "w") as fh:
            for _ in range(min(per, n - written)):
                i = rng.randrange(len(held))
                fh.write(json.dumps({"id": f"d{written}-{i}", "text": chunk(held[i], rng)}) + "\n")
                written += 1


def tree_memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(proc.name))
        except (OSError, IndexError, ValueError):
            continue
    pss = rss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        stack += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return pss, rss


def measure(cmd: list[str]) -> tuple[float, int, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pss, rss = tree_memory(proc.pid)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out}")
    return time.perf_counter() - started, peak_pss, peak_rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--workdir", default=str(ROOT / "out" / "bench-shards"))
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    annotator = str(Path(sys.executable).parent / "annotator")
    rng = random.Random(0)
    teacher, held = split(base_documents())
    write_teacher(teacher, work / "teacher.jsonl", rng)
    t0 = time.perf_counter()
    subprocess.run([annotator, "distill", str(work / "teacher.jsonl"), "-o", str(work / "model")], check=True,
                   capture_output=True)
    distill_s = time.perf_counter() - t0
    card = json.loads((work / "model" / "card.json").read_text())
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        shards = work / f"shards-{n}"
        write_shards(held, n, shards)
        configs = [("local, 1 worker", ["--workers", "1"]), ("local, 2 workers (default)", [])]
        if not args.no_ray:
            configs.append(("ray (local mode), 2 workers", ["--executor", "ray", "--workers", "2"]))
        for name, extra in configs:
            out = work / f"out-{n}-{len(rows)}"
            wall, pss, rss = measure([annotator, "shards", "label", str(shards), "-o", str(out), "--classifier",
                                      str(work / "model"), *extra])
            rows.append((n, name, wall, n / wall, pss / 2**20, rss / 2**20))
            print(f"{n:>9} {name:<28} {wall:8.1f} s {n / wall:10,.0f} docs/s PSS {pss / 2**20:6.0f} MB "
                  f"RSS {rss / 2**20:6.0f} MB", flush=True)
            if n != 10000:
                shutil.rmtree(out)
        shutil.rmtree(shards)
    # agreement with the source-derived labels of documents never seen by the teacher
    eval_dir = work / "eval"
    rng = random.Random(2)
    eval_docs = [(f"e{i}", chunk(d, rng), d) for i, d in enumerate(held)]
    eval_dir.mkdir()
    with open(eval_dir / "eval.jsonl", "w") as fh:
        for doc_id, text, _ in eval_docs:
            fh.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    subprocess.run([annotator, "shards", "label", str(eval_dir / "eval.jsonl"), "-o", str(work / "eval-out"),
                    "--classifier", str(work / "model"), "--workers", "1"], check=True, capture_output=True)
    pred = pd.concat(pd.read_parquet(p) for p in (work / "eval-out").glob("*.parquet")).set_index("id")
    truth = {doc_id: d for doc_id, _, d in eval_docs}
    print()
    print("| documents | configuration | seconds | docs/s | peak PSS (MB) | peak RSS sum (MB) |")
    print("|---|---|---|---|---|---|")
    for n, name, wall, rate, pss, rss in rows:
        print(f"| {n:,} | {name} | {wall:.1f} | {rate:,.0f} | {pss:.0f} | {rss:.0f} |")
    print()
    print(f"distillation: {len(teacher)} teacher documents, {distill_s:.1f} s (card: {card['seconds']:.1f} s)")
    print()
    print("| dimension | agreement with source-derived labels (held-out documents) | n | "
          "held-out teacher accuracy (card) |")
    print("|---|---|---|---|")
    for dim in ("genre", "content_form", "domain"):
        ids = [i for i in pred.index if truth[i][dim] is not None]
        agree = sum(pred.loc[i, dim] == truth[i][dim] for i in ids) / len(ids)
        print(f"| {dim} | {agree:.3f} | {len(ids)} | {card['dimensions'][dim]['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
