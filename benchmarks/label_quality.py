"""Label quality of the embedded default, on benchmarks it has seen and on benchmarks it has not.

``--unseen`` (what the README leads with) measures three runs, per dimension, beside the majority
baseline, for three variants of the labeler: before evidence and cues (``--no-evidence --no-cues``),
with the record's evidence (``--no-cues``), and the default (evidence + the label cues of
``schemas/label-cues.yaml`` ranking the candidates):

* **leave-one-benchmark-out** over ``../shared/data/dev-labels.jsonl`` (70 real samples from 13
  benchmarks, adjudicated reference labels): every benchmark is labeled with a retrieval pool that
  holds no sample of its own benchmark. These records carry text, benchmark and subset only (no
  answer field), so the evidence is what the text shows.
* **the quickstart-style run**: the first 60 GSM8K test records as they are (``question`` +
  ``answer``) and the first 60 MMLU-Redux ``abstract_algebra`` records through the README's own
  ``--template``, with the shipped pool. Reference labels: ``benchmarks/data/quickstart-references.jsonl``
  (written for this benchmark: GSM8K school_math / math_word_problem / arithmetic / number; the
  abstract-algebra items option_letter and school_math, the "Statement 1 | ..." and definition
  items knowledge_recall / factual_recall, the computations math_problem with their operation).
  It also plants a GSM8K drop (MMLU unchanged) and prints the slice report's findings: a labeler
  that calls GSM8K items multiple choice makes ``output_constraint=option_letter`` a finding.
* **held out**: 42 real records from material the dev labels and the label cues were never written
  against (16 TheoremQA questions, every 50th; the first record of 8 BBH tasks, 8 MMLU-Redux
  subjects and 6 MMLU-Pro categories absent from the dev labels; one MATH-500 problem per 4
  subjects), as a user has them (answer fields included), with the shipped pool. Reference
  labels: ``benchmarks/data/heldout-references.jsonl``, written by hand from the taxonomy's label
  meanings and committed before any labeler ran on these items (one annotator, not adjudicated).

Without ``--unseen`` it runs configurations on the 70 dev samples leave-one-out (an item never sees
its own, or an identical, text in its examples), plus a retrieval-only row (majority label of the 4
nearest pool items, no LLM).

    python benchmarks/label_quality.py --unseen [--limit N]
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
BENCH = ROOT.parent / "shared" / "data" / "bench"
QUICKSTART_REFS = ROOT / "benchmarks" / "data" / "quickstart-references.jsonl"
HELDOUT_REFS = ROOT / "benchmarks" / "data" / "heldout-references.jsonl"
README_TEMPLATE = '{{ question }}{% for c in choices %}\n{{ "ABCDEFGHIJ"[loop.index0] }}. {{ c }}{% endfor %}'
TARGETS = {"background": 0.7, "task_type": 0.8, "solving_operation": 0.7, "output_constraint": 0.9}

from annotator import label  # noqa: E402
from annotator.labeling.fewshot import Retriever, default_pool_path, load_pool  # noqa: E402
from annotator.labeling.quality import evaluate  # noqa: E402
from annotator.labeling.votes import combine_votes  # noqa: E402
from annotator.records import Item  # noqa: E402
from annotator.taxonomy import load_taxonomy  # noqa: E402

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


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _row(name: str, report, rate: float | None) -> str:
    acc = {d.dimension: d.accuracy for d in report.dimensions}
    cells = " | ".join(f"{acc[d]:.2f}" for d in TARGETS)
    return f"| {name} | {cells} | {'-' if rate is None else f'{rate:.2f}'} |"


def _table(title: str, n: int, rows: list[str], majority) -> None:
    print(f"\n### {title} ({n} items)\n")
    print("| labeler | " + " | ".join(TARGETS) + " | items/s |")
    print("|---" * (len(TARGETS) + 2) + "|")
    print("| majority-class baseline | " + " | ".join(f"{majority[d]:.2f}" for d in TARGETS) + " | - |")
    for row in rows:
        print(row)
    print("| target (unseen) | " + " | ".join(f">= {TARGETS[d]:.1f}" for d in TARGETS) + " | |")


VARIANTS = {  # --unseen rows: the labeler before evidence, with evidence, and the default (evidence + cues)
    "before": ("embedded default, before (--no-evidence --no-cues)", {"evidence": False, "cues": False}),
    "evidence": ("embedded default, evidence only (--no-cues)", {"evidence": True, "cues": False}),
    "default": ("embedded default (evidence + label cues)", {"evidence": True, "cues": True}),
}


def leave_one_benchmark_out(records: list[dict], dims, tmp: Path, variant: str) -> tuple[Path, float]:
    """Label every dev benchmark with a pool holding no sample of its own benchmark."""
    out_rows: list[dict] = []
    started = time.perf_counter()
    for bench in sorted({r["benchmark"] for r in records}):
        pool = _write(tmp / f"pool-{bench}.jsonl", [r for r in records if r["benchmark"] != bench])
        items = [{"id": r["id"], "text": r["text"], "subset": r.get("subset") or ""}
                 for r in records if r["benchmark"] == bench]
        df = label(items, id_field="id", text_field="text", source=bench, fewshot_pool=str(pool),
                   cache_dir=str(tmp / "cache"), **VARIANTS[variant][1])
        out_rows += df[["id", "status", *[d.id for d in dims], "flags", "error"]].to_dict("records")
    for r in out_rows:
        r["flags"] = r["flags"] if isinstance(r["flags"], str) else ""  # missing flags read back as NaN
        error = r.pop("error")
        for key, value in r.items():  # a failed row's labels read back as NaN
            if isinstance(value, float):
                r[key] = None
        if r["status"] != "ok":
            print(f"failed: {r['id']}: {error}", file=sys.stderr)
        r["solving_operation"] = list(r["solving_operation"]) if r["status"] == "ok" else None
    rate = len(records) / (time.perf_counter() - started)
    return _write(tmp / f"lobo-{variant}.jsonl", out_rows), rate


def quickstart_style(tmp: Path, variant: str, limit: int) -> tuple[Path, float]:
    """60 GSM8K test records as they are + 60 MMLU-Redux abstract_algebra through the README's template."""
    gsm = [json.loads(line) for line in (BENCH / "gsm8k" / "test.jsonl").read_text().split("\n")[:limit]]
    mmlu = []
    for line in (BENCH / "mmlu" / "mmlu_redux_all.jsonl").read_text().split("\n"):  # texts hold U+2028
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["subject"] == "abstract_algebra" and len(mmlu) < limit:
            mmlu.append(rec)
    started = time.perf_counter()
    a = label(gsm, source="gsm8k", cache_dir=str(tmp / "cache"), **VARIANTS[variant][1])
    b = label(mmlu, template=README_TEMPLATE, source="mmlu_redux", cache_dir=str(tmp / "cache"), **VARIANTS[variant][1])
    rate = (len(gsm) + len(mmlu)) / (time.perf_counter() - started)
    rows = []
    for df in (a, b):
        for r in df.to_dict("records"):
            rows.append({"id": r["id"], "source": r["source"], "status": r["status"], "text": r["text"],
                         **{k: r[k] for k in TARGETS}, "solving_operation": list(r["solving_operation"])
                         if r["status"] == "ok" else None,
                         "flags": r["flags"] if isinstance(r["flags"], str) else ""})
    return _write(tmp / f"quickstart-{variant}.jsonl", rows), rate


def held_out(tmp: Path, variant: str) -> tuple[Path, float]:
    """The 42 held-out records as a user has them (answer fields included), shipped pool, one call per source."""
    refs = [json.loads(line) for line in HELDOUT_REFS.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, str], list[dict]] = {}
    for ref in refs:
        groups.setdefault((ref["source"], ref.get("template", "")), []).append(ref["record"])
    started = time.perf_counter()
    rows = []
    for (source, template), records in groups.items():
        df = label(records, id_field="id", source=source, template=template or None, cache_dir=str(tmp / "cache"),
                   **VARIANTS[variant][1])
        for r in df.to_dict("records"):
            if r["status"] != "ok":
                print(f"failed: {r['id']}: {r.get('error')}", file=sys.stderr)
            rows.append({"id": r["id"], "source": r["source"], "status": r["status"],
                         **{k: r[k] for k in TARGETS}, "solving_operation": list(r["solving_operation"])
                         if r["status"] == "ok" else None})
    rate = len(refs) / (time.perf_counter() - started)
    return _write(tmp / f"heldout-{variant}.jsonl", rows), rate


def planted_drop(labels: Path, tmp: Path) -> list[str]:
    """GSM8K falls from 70% to 30% correct, MMLU stays at 70%: the report's findings, first first."""
    from annotator.diagnose.report import analyse

    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    before, now = [], []
    for i, r in enumerate(rows):
        hit = (i * 7) % 10 < 7
        before.append({"id": r["id"], "correct": int(hit)})
        now.append({"id": r["id"], "correct": int(hit if r["source"] != "gsm8k" else (i * 3) % 10 < 3)})
    report, _ = analyse(labels, [_write(tmp / "now.jsonl", now)], baseline=[_write(tmp / "before.jsonl", before)],
                        allow_unreviewed=True)
    return [f"{f.verdict} {f.slice}" for f in report.findings]


def unseen(limit: int, runs: str = "lobo,quickstart,heldout", variants: str = "before,evidence,default") -> None:
    records = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]
    dims = load_taxonomy().dimensions("eval")
    chosen = variants.split(",")
    print("label quality of the embedded default (bundled SmolLM2-135M-Instruct Q4_1) on benchmarks it has not "
          "seen, per variant of the labeler (the last is the default)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ref = _write(tmp / "dev-ref.jsonl", records)
        heldout_ref = _write(tmp / "heldout-ref.jsonl", [  # the labels only: the records' fields vary in type
            {k: r[k] for k in ("id", *TARGETS)} for r in map(json.loads, HELDOUT_REFS.read_text().splitlines())])
        runners = {  # run -> (title, items, reference, labeler)
            "lobo": ("leave-one-benchmark-out over the dev labels", len(records), ref,
                     lambda v: leave_one_benchmark_out(records, dims, tmp, v)),
            "quickstart": ("quickstart-style: 60 GSM8K + 60 MMLU-Redux abstract_algebra", 2 * (limit or 60),
                           QUICKSTART_REFS, lambda v: quickstart_style(tmp, v, limit or 60)),
            "heldout": ("held out: TheoremQA, 8 BBH tasks, 8 MMLU subjects, MATH-500, 6 MMLU-Pro categories "
                        "(references written before any labeler ran on them)", 42, heldout_ref,
                        lambda v: held_out(tmp, v)),
        }
        for run in runs.split(","):
            title, n, reference, labeler = runners[run]
            lines, majority, detail, drops = [], {}, "", {}
            for variant in chosen:
                out, rate = labeler(variant)
                report = evaluate(out, reference, dims)
                majority = {d.dimension: d.majority_baseline for d in report.dimensions}
                lines.append(_row(VARIANTS[variant][0], report, rate))
                detail = report.text()
                if run == "quickstart":
                    drops[variant] = planted_drop(out, tmp)
            _table(title, n, lines, majority)
            print(f"\n{VARIANTS[chosen[-1]][0]}:\n" + detail)
            for variant, found in drops.items():
                print(f"\nplanted GSM8K drop, labels of {VARIANTS[variant][0]}: "
                      + ("; ".join(found[:4]) or "no finding"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="default,knn", help=f"comma-separated: {', '.join(CONFIGS)}, knn")
    parser.add_argument("--limit", type=int, default=0, help="first N items only (0 = all 70; --unseen: 60 each)")
    parser.add_argument("--unseen", action="store_true", help="benchmarks the default has not seen (see above)")
    parser.add_argument("--runs", default="lobo,quickstart,heldout",
                        help="with --unseen: which runs (lobo, quickstart, heldout)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"with --unseen: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    if args.unseen:
        unseen(args.limit, args.runs, args.variants)
        return
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
            for r in map(json.loads, out.read_text().splitlines()):
                if r.get("status", "ok") != "ok":
                    print(f"failed: {r['id']}: {r.get('error')}", file=sys.stderr)
            report = evaluate(out, ref, dims)
            print(f"\n## {name} ({'retrieval only, no LLM' if name == 'knn' else CONFIGS[name]}): {rate:.2f} items/s")
            print(report.text())


if __name__ == "__main__":
    main()
