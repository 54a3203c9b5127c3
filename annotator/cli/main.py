"""Command line: thin click wrappers, one library call per command.

Errors from :mod:`annotator.errors` become one message and exit code 2 here and nowhere else.
Exit codes: 0 all items ok, 1 some items failed (listed in the summary), 2 usage/config error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from annotator.errors import AnnotatorError


def errors_to_messages(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: package errors -> one message and exit 2; Ctrl-C -> exit 130."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AnnotatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: answers received so far are cached; rerun to continue", err=True)
            sys.exit(130)

    return wrapper


def _template_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value and value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"{path}: {exc.strerror}") from None
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slice-annotator")
def main() -> None:
    """slice-annotator: label benchmark samples and corpus documents with capability slices."""


@main.command("label")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Labels table (.parquet, or .jsonl).")
@click.option("--kind", type=click.Choice(["eval", "corpus"]), help="Taxonomy half and prompt [eval].")
@click.option("--text-field", help="Field holding the text (default: first of text, input, question, ...).")
@click.option("--template", callback=_template_value, help="Jinja template over the record's fields (or @FILE).")
@click.option("--id-field", help="Field holding a stable id (default: content hash).")
@click.option("--source", help="Value of the source column (default: each file's stem).")
@click.option("--on-bad-record", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="A record that cannot be an item: stop before any request (error), or label the rest and "
                   "write it to OUTPUT.rejects.jsonl (skip).")
@click.option("--no-keep-fields", is_flag=True, help="Do not copy input fields into the output.")
@click.option("--base-url", help="OpenAI-compatible endpoint [$ANNOTATOR_BASE_URL, $OPENAI_BASE_URL].")
@click.option("--model", multiple=True, help="Model name [$ANNOTATOR_MODEL]; repeat to label with several "
              "models (per-model columns, consensus, agreement as confidence).")
@click.option("--api-key-env", help="Environment variable holding the API key [OPENAI_API_KEY].")
@click.option("--mode", type=click.Choice(["auto", "json_schema", "tools", "json", "md_json"]),
              help="Structured-output mode [auto: probe json_schema, tools, json in turn].")
@click.option("--taxonomy", type=click.Path(), help="A taxonomy YAML file (default: the shipped v1).")
@click.option("--concurrency", type=int, help="Requests in flight [16].")
@click.option("--votes", type=int, help="Samples per item; majority label per dimension [1].")
@click.option("--items-per-request", type=int, help="Items labeled in one request [1].")
@click.option("--temperature", type=float, help="Sampling temperature [0, or 0.7 with --votes > 1].")
@click.option("--max-tokens", type=int, help="Completion token cap per request.")
@click.option("--timeout", type=float, help="Seconds per HTTP request [120].")
@click.option("--reasks", type=int, help="Re-asks after an invalid answer [2].")
@click.option("--retries", "transport_retries", type=int, help="Transport retries [6].")
@click.option("--rpm", type=float, help="Requests per minute, for providers without rate-limit headers.")
@click.option("--tpm", type=float, help="Tokens per minute, for providers without rate-limit headers.")
@click.option("--batch-api", is_flag=True, default=None,
              help="Send uncached requests through the provider's Batch API (half price, within 24 h); resumable.")
@click.option("--batch-size", type=int, help="Requests per batch [50000, the provider's limit].")
@click.option("--batch-poll", type=float, help="First wait between batch status checks, in seconds [10].")
@click.option("--pace/--no-pace", default=None,
              help="Pace below rate limits (headers, --rpm/--tpm) and halve the window on 429 [on].")
@click.option("--max-chars", type=int, help="Longer item texts are clipped, head and tail kept [12000].")
@click.option("--detail", type=click.Choice(["full", "short"]), help="Label descriptions with examples, or short.")
@click.option("--rationale/--no-rationale", default=None, help="Ask for a short rationale first [on].")
@click.option("--confidence/--no-confidence", default=None, help="Ask for per-dimension confidences [on].")
@click.option("--fewshot", type=int, help="Retrieved labeled examples per item [0; 1 for the embedded model].")
@click.option("--candidates", type=int,
              help="Restrict answers to the labels of the item's N nearest labeled neighbours [0; 8 embedded].")
@click.option("--cues/--no-cues", default=None,
              help="Rank the candidate labels by the words of the item (schemas/label-cues.yaml) as well as by "
                   "the neighbours [on].")
@click.option("--evidence/--no-evidence", default=None,
              help="Show the labeler what the record shows (answer shape, options, subset) and re-ask answers "
                   "it contradicts [on].")
@click.option("--answer-field", help="Field holding the answer, whose shape is evidence [first of answer, "
                                     "answerKey, target, label, ...].")
@click.option("--subset-field", help="Field naming the subset [first of subset, subject, category, task].")
@click.option("--subset-majority/--no-subset-majority", default=None,
              help="A subset's clear majority label replaces outliers (flagged) [on for the embedded model; "
                   "otherwise outliers are only flagged].")
@click.option("--fewshot-pool", type=click.Path(), help="Labeled pool (JSONL/Parquet) [shipped dev labels].")
@click.option("--cache-dir", type=click.Path(), help="Answer cache [$ANNOTATOR_CACHE_DIR or ~/.cache/slice-annotator].")
@click.option("--no-cache", is_flag=True, default=None, help="Neither read nor write the answer cache.")
@click.option("--prices", "prices_file", type=click.Path(), help="YAML price table overriding the shipped one.")
@click.option("--max-cost", type=float, help="Stop starting requests at this estimated spend (USD); with "
              "--batch-api, submit no more than it; several models share it equally.")
@click.option("--dry-run", is_flag=True, help="Estimate tokens and cost; send nothing.")
@click.option("--recheck", is_flag=True,
              help="Even when the table is up to date (the same finished job), answer every item again from "
                   "the cache, each answer validated again.")
@click.option("--model-path", type=click.Path(), help="GGUF file for the embedded model.")
@click.option("--config", "config_path", type=click.Path(), help="annotator.toml to read.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar; by default a bar on a terminal and a plain line every 5 s otherwise.")
@errors_to_messages
def label_cmd(inputs: tuple[str, ...], output: str, text_field: str | None, template: str | None,
              id_field: str | None, source: str | None, on_bad_record: str, no_keep_fields: bool,
              max_cost: float | None, dry_run: bool, recheck: bool, config_path: str | None,
              progress: bool | None, **settings: Any) -> None:
    """Label INPUTS (JSONL, JSON, CSV, Parquet, saved datasets) into OUTPUT."""
    from annotator.config import load_settings
    from annotator.labeling.run import label_files
    from annotator.labeling.sources import SourceSpec

    spec = SourceSpec(text_field=text_field, template=template, id_field=id_field, source=source)
    summary = label_files(
        list(inputs), output, spec, load_settings(settings, config_path),
        on_bad_record=on_bad_record, dry_run=dry_run, max_cost=max_cost, recheck=recheck,
        keep_fields=not no_keep_fields,
        progress="auto" if progress is None else progress,  # a bar on a terminal, a line every 5 s otherwise
    )
    click.echo(summary.text())
    sys.exit(1 if summary.failed else 0)


@main.group("taxonomy")
def taxonomy_group() -> None:
    """Show or validate taxonomies."""


@taxonomy_group.command("show")
@click.option("--taxonomy", type=click.Path(), help="A taxonomy YAML file (default: the shipped v1).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Readable text, or the taxonomy as JSON.")
@errors_to_messages
def taxonomy_show(taxonomy: str | None, fmt: str) -> None:
    """Print the taxonomy (dimensions, labels, mapping rules)."""
    from annotator.taxonomy import describe, load_taxonomy

    tax = load_taxonomy(taxonomy)
    if fmt == "json":
        click.echo(json.dumps(tax.model_dump(mode="json", by_alias=True), indent=2))
    else:
        click.echo(describe(tax))


@taxonomy_group.command("validate")
@click.argument("path", type=click.Path())
@errors_to_messages
def taxonomy_validate(path: str) -> None:
    """Validate a taxonomy file; print its version."""
    from annotator.taxonomy import load_taxonomy

    tax = load_taxonomy(path)
    dims = ", ".join(f"{k}: {len(v.dimensions)} dimensions" for k, v in tax.kinds.items())
    click.echo(f"ok: {tax.version} ({dims}; {len(tax.mapping)} mapping rules)")


@main.command("eval-labels")
@click.argument("predictions", type=click.Path())
@click.argument("reference", type=click.Path())
@click.option("--kind", type=click.Choice(["eval", "corpus"]), default="eval", show_default=True,
              help="Which half of the taxonomy the labels use.")
@click.option("--taxonomy", type=click.Path(), help="A taxonomy YAML file (default: the shipped v1).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@errors_to_messages
def eval_labels(predictions: str, reference: str, kind: str, taxonomy: str | None, as_json: bool) -> None:
    """Score PREDICTIONS (a labels table) against REFERENCE labels, joined by id (each model too)."""
    from annotator.labeling.quality import evaluate_all
    from annotator.taxonomy import load_taxonomy

    reports = evaluate_all(predictions, reference, load_taxonomy(taxonomy).dimensions(kind))
    if as_json:
        click.echo(reports[0].model_dump_json(indent=2) if len(reports) == 1
                   else "[" + ",\n".join(r.model_dump_json(indent=2) for r in reports) + "]")
    else:
        click.echo("\n\n".join(r.text() for r in reports))


@main.command("serve-local")
@click.option("--port", type=int, help="Port on 127.0.0.1 [a free one].")
@click.option("--model-path", type=click.Path(), help="GGUF file [the bundled SmolLM2-135M-Instruct].")
@click.option("--threads", "local_threads", type=int, help="CPU threads [all cores].")
@errors_to_messages
def serve_local(port: int | None, model_path: str | None, local_threads: int | None) -> None:
    """Run the embedded llama.cpp server standalone (OpenAI-compatible) until Ctrl-C."""
    from annotator.config import load_settings
    from annotator.llm.local import serve_forever

    serve_forever(load_settings({"model_path": model_path, "local_threads": local_threads}), port=port)


@main.group("review")
def review_group() -> None:
    """Human review in Argilla (ARGILLA_API_URL / ARGILLA_API_KEY; scripts/argilla-up starts one)."""


@review_group.command("push")
@click.argument("labels", type=click.Path())
@click.option("--dataset", required=True, help="Argilla dataset name.")
@click.option("--workspace", help="Argilla workspace [the user's default].")
@click.option("--taxonomy", type=click.Path(), help="Taxonomy the labels were made with [shipped v1].")
@click.option("--text-field", help="Column holding the text shown to reviewers [the `text` column].")
@click.option("--template", callback=_template_value, help="Jinja template over the row's fields (or @FILE).")
@click.option("--min-submitted", type=int, default=1, show_default=True, help="Reviewers per record.")
@click.option("--audit-fraction", type=float, default=0.1, show_default=True,
              help="Share of confident records sampled for audit.")
@click.option("--kind", type=click.Choice(["eval", "corpus"]), help="With a labeled-shards OUTDIR: corpus.")
@click.option("--sample", type=int, help="With a labeled-shards OUTDIR: push a stratified audit sample of N.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the audit sample.")
@click.option("--new-version", is_flag=True, help="Create a fresh dataset if the existing one differs.")
@click.option("--guidelines-dir", type=click.Path(), help="Where to write the guidelines [review/].")
@errors_to_messages
def review_push(labels: str, dataset: str, workspace: str | None, taxonomy: str | None, text_field: str | None,
                template: str | None, min_submitted: int, audit_fraction: float, kind: str | None,
                sample: int | None, seed: int, new_version: bool, guidelines_dir: str | None) -> None:
    """Push LABELS (a labels table, or a labeled-shards OUTDIR with --sample) to Argilla as suggestions."""
    from annotator.errors import ConfigError
    from annotator.review.push import push

    audit_all = False
    if Path(labels).is_dir():
        if kind != "corpus" or not sample:
            raise ConfigError(f"{labels} is a directory: pass --kind corpus --sample N to push an audit sample")
        from annotator.corpus.audit import audit_sample

        labels, audit_all = str(audit_sample(labels, sample, seed=seed)), True
    res = push(labels, dataset, workspace=workspace, taxonomy_path=taxonomy, text_field=text_field,
               template=template, min_submitted=min_submitted, audit_fraction=audit_fraction,
               new_version=new_version, guidelines_dir=Path(guidelines_dir) if guidelines_dir else None,
               audit_all=audit_all)
    click.echo(f"{'created' if res.created else 'updated'} {res.workspace}/{res.dataset}: {res.pushed} records "
               f"({res.low_confidence} low-confidence first, {res.audit} audit; {res.skipped_failed} failed "
               f"rows skipped); guidelines -> {res.guidelines}\nreview queue, highest priority first: {res.queue_url}")


@review_group.command("pull")
@click.option("--dataset", required=True, help="Argilla dataset name.")
@click.option("--workspace", help="Argilla workspace [the user's default].")
@click.option("-o", "--output", required=True, type=click.Path(), help="Confirmed labels table.")
@click.option("--taxonomy", type=click.Path(), help="Taxonomy the dataset was built for [shipped v1].")
@errors_to_messages
def review_pull(dataset: str, workspace: str | None, output: str, taxonomy: str | None) -> None:
    """Pull reviewers' answers, resolved per dimension, into OUTPUT."""
    from annotator.review.pull import pull

    res = pull(dataset, output, workspace=workspace, taxonomy_path=taxonomy)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(res.counts.items()))
    click.echo(f"{res.dataset}: {res.records} records ({counts}); fetched {res.fetched}, changed {res.changed} "
               f"-> {res.output}")


@review_group.command("status")
@click.option("--dataset", required=True, help="Argilla dataset name.")
@click.option("--workspace", help="Argilla workspace [the user's default].")
@click.option("--taxonomy", type=click.Path(), help="Taxonomy the dataset was built for [shipped v1].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@errors_to_messages
def review_status_cmd(dataset: str, workspace: str | None, taxonomy: str | None, as_json: bool) -> None:
    """Progress per reviewer and LLM-vs-human / inter-annotator agreement."""
    from annotator.review.status import review_status

    report = review_status(dataset, workspace=workspace, taxonomy_path=taxonomy)
    click.echo(report.model_dump_json(indent=2) if as_json else report.text())
