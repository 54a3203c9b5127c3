"""Label quality of the embedded default on ../shared/data/dev-labels.jsonl (70 real samples).

Runs the embedded llama.cpp model (the `local` extra) through the normal pipeline in several
configurations and prints the eval-labels table of each, with items/s. Retrieval-based few-shot
is leave-one-out: an item never sees its own (or an identical) text in its examples. A
retrieval-only row (majority label of the 4 nearest pool items, no LLM) shows what retrieval
alone gives, so the LLM's own contribution is visible.

    python benchmarks/label_quality.py [--configs default,knn] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "dev-labels.jsonl"

from annotator import label  # noqa: E402
from annotator.evaluation import evaluate  # noqa: E402
from annotator.fewshot import Retriever, default_pool_path, load_pool  # noqa: E402
from annotator.records import Item  # noqa: E402
from annotator.taxonomy import load_taxonomy  # noqa: E402
from annotator.votes import combine_votes  # noqa: E402

CONFIGS = {
    "default": {},  # the embedded model's defaults (annotator.config.LOCAL_DEFAULTS)
    "zero": {"fewshot": 0, "candidates": 0},
    "fewshot2": {"fewshot": 2, "candidates": 0},
    "fewshot4": {"fewshot": 4, "candidates": 0},
    "fewshot4-full": {"fewshot": 4, "candidates": 0, "detail": "full"},
    "fewshot4-votes3": {"fewshot": 4, "candidates": 0, "votes": 3},
    "cand8": {"fewshot": 0, "candidates": 8},
    "cand8-fewshot2": {"fewshot": 2, "candidates": 8},
    "cand8-fewshot4": {"fewshot": 4, "candidates": 8},
    "cand5-fewshot2": {"fewshot": 2, "candidates": 5},
    "cand8-fewshot2-full": {"fewshot": 2, "candidates": 8, "detail": "full"},
    "cand8-fewshot1": {"fewshot": 1, "candidates": 8},
    "cand4-fewshot1": {"fewshot": 1, "candidates": 4},
    "fewshot1": {"fewshot": 1, "candidates": 0},
}


def knn_only(records: list[dict], dims, k: int = 4) -> list[dict]:
    """Majority labels of the k nearest pool items (leave-one-out), no LLM."""
    retriever = Retriever(load_pool(default_pool_path("eval"), dims))
    rows = []
    for rec in records:
        near = retriever.nearest(Item(id=rec["id"], text=rec["text"], source="dev"), k)
        labels, _, _ = combine_votes([e.labels for e in near], dims)
        rows.append({"id": rec["id"], "status": "ok", **labels})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="default,knn", help=f"comma-separated: {', '.join(CONFIGS)}, knn")
    parser.add_argument("--limit", type=int, default=0, help="first N items only (0 = all 70)")
    args = parser.parse_args()
    if not DEV.exists():
        sys.exit(f"{DEV} not found: this benchmark reads the shared dev labels")
    records = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]
    records = records[: args.limit] if args.limit else records
    dims = load_taxonomy().dimensions("eval")
    print(f"label quality on {DEV.name}: {len(records)} samples, reference labels adjudicated from two "
          "independent strong-LLM passes; embedded model = bundled SmolLM2-135M-Instruct Q4_1")
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref.jsonl"
        ref.write_text("".join(json.dumps(r) + "\n" for r in records))
        for name in args.configs.split(","):
            out = Path(tmp) / f"{name}.jsonl"
            started = time.perf_counter()
            if name == "knn":
                out.write_text("".join(json.dumps(r) + "\n" for r in knn_only(records, dims)))
            else:
                inputs = [{"id": r["id"], "text": r["text"]} for r in records]
                label(inputs, id_field="id", text_field="text", output=out, cache_dir=str(Path(tmp) / "cache"),
                      **CONFIGS[name])
            rate = len(records) / (time.perf_counter() - started)
            report = evaluate(out, ref, dims)
            print(f"\n## {name} ({'retrieval only, no LLM' if name == 'knn' else CONFIGS[name]}): {rate:.2f} items/s")
            print(report.text())


if __name__ == "__main__":
    main()
