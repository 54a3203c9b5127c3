"""Commands of the corpus side: ``annotator shards sample|label`` and ``annotator distill``."""

from __future__ import annotations

import sys
from typing import Any

import click

from annotator.cli.main import errors_to_messages


@click.group("shards")
def shards_group() -> None:
    """Pre-training shards: sample for the teacher, classify every shard (needs the `scale` extra)."""


@shards_group.command("sample")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-n", "n", required=True, type=int, help="Documents to draw.")
@click.option("-o", "--output", required=True, type=click.Path(), help="SAMPLE.jsonl.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample (same seed, same sample).")
@click.option("--stratify", type=click.Choice(["source", "shard"]), default="source", show_default=True,
              help="Strata: the documents' source (else their shard), or the shard file.")
@errors_to_messages
def sample_cmd(inputs: tuple[str, ...], n: int, output: str, seed: int, stratify: str) -> None:
    """Draw a seeded, stratified sample of documents from INPUTS (in flat memory)."""
    from annotator.corpus.sample import sample_shards

    res = sample_shards(list(inputs), n, output, seed=seed, stratify=stratify)
    click.echo(f"{res.sampled} of {res.documents} documents from {res.shards} shards ({len(res.strata)} strata, "
               f"{res.skipped_records} bad records skipped) -> {res.output}")
    for error in res.failed_shards.values():
        click.echo(f"error: {error}", err=True)
    sys.exit(1 if res.failed_shards else 0)


@shards_group.command("label")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(), help="OUTDIR for labeled Parquet.")
@click.option("--classifier", required=True, type=click.Path(), help="MODEL_DIR from `annotator distill`.")
@click.option("--executor", type=click.Choice(["local", "ray", "slurm"]), default="local", show_default=True,
              help="datatrove executor: local processes, Ray, or a Slurm job.")
@click.option("--workers", type=int, help="Parallel tasks [all cores].")
@click.option("--ray-address", help="Ray cluster address [$RAY_ADDRESS, else a local Ray].")
@click.option("--slurm-partition", help="Slurm partition [cpu].")
@click.option("--slurm-time", help="Slurm time limit per task [04:00:00].")
@click.option("--keep-text", is_flag=True, help="Also write each document's text.")
@click.option("--batch-size", type=int, default=4096, show_default=True, help="Documents per classifier batch.")
@click.option("--llm-below", type=float, help="Send documents whose lowest confidence is under this to the LLM.")
@click.option("--base-url", help="LLM endpoint for --llm-below [as `annotator label`].")
@click.option("--model", help="LLM model for --llm-below.")
@click.option("--api-key-env", help="Environment variable holding the API key [OPENAI_API_KEY].")
@click.option("--concurrency", type=int, help="LLM requests in flight.")
@click.option("--cache-dir", type=click.Path(), help="Answer cache [as `annotator label`].")
@errors_to_messages
def label_cmd(inputs: tuple[str, ...], out_dir: str, classifier: str, base_url: str | None, model: str | None,
              api_key_env: str | None, concurrency: int | None, cache_dir: str | None, **options: Any) -> None:
    """Classify every document of INPUTS (JSONL, .gz, .zst, Parquet shards or directories) into OUTDIR."""
    from loguru import logger

    from annotator.corpus.label import label_shards

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    llm = {k: v for k, v in {"base_url": base_url, "model": model, "api_key_env": api_key_env,
                             "concurrency": concurrency, "cache_dir": cache_dir}.items() if v is not None}
    summary = label_shards(list(inputs), out_dir, classifier, llm_settings=llm, **options)
    click.echo(summary.text())
    sys.exit(1 if summary.failed_shards or summary.failed_records else 0)


@click.command("distill")
@click.argument("teacher", type=click.Path())
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(), help="MODEL_DIR.")
@click.option("--holdout", type=float, default=0.2, show_default=True, help="Share held out for the card.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out split and the fit.")
@click.option("--min-support", type=int, default=5, show_default=True, help="Report labels with fewer examples.")
@click.option("--taxonomy", "taxonomy_path", type=click.Path(), help="A taxonomy YAML file [shipped v1].")
@errors_to_messages
def distill_cmd(teacher: str, out_dir: str, **options: Any) -> None:
    """Train the fast corpus classifier from TEACHER labels; write MODEL_DIR/model.pkl and card.json."""
    from annotator.corpus.distill import distill

    card = distill(teacher, out_dir, **options)
    for dim, m in card["dimensions"].items():
        head = (f"accuracy {m['accuracy']:.2f} (majority {m['majority_baseline']:.2f}), macro-F1 {m['macro_f1']:.2f}, "
                f"kappa {m['kappa']:.2f}" if "accuracy" in m else
                f"exact set {m['exact_set']:.2f} (majority {m['majority_baseline']:.2f}), jaccard {m['jaccard']:.2f}")
        low = f"; low support: {', '.join(m['low_support'])}" if m["low_support"] else ""
        click.echo(f"  {dim:<13} {head}, ECE {m['ece']:.2f}{low}")
    click.echo(f"model {card['model_id']} from {card['n_teacher']} teacher rows ({card['n_heldout']} held out) in "
               f"{card['seconds']:.1f} s -> {out_dir}/card.json")
