"""Commands of the closing-the-loop step and of the Batch API.

``annotator slices report``, ``annotator map``, ``annotator batches status|cancel``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from annotator.cli.main import errors_to_messages


class GreedyCommand(click.Command):
    """A command whose path options take every value up to the next option.

    ``--results runs/a/samples_*.jsonl`` works as the shell expands it (one file per lm-eval
    task): each value after a greedy option, until the next ``-`` argument, belongs to it.
    """

    greedy = ("--labels", "--results", "--baseline")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:  # noqa: D102
        out: list[str] = []
        current: str | None = None
        for arg in args:
            if arg.startswith("-"):
                current = arg if arg in self.greedy else None
                out.append(arg)
            elif current is not None and out and not out[-1].startswith("-"):
                out += [current, arg]
            else:
                out.append(arg)
        return super().parse_args(ctx, out)


@click.group("slices")
def slices_group() -> None:
    """Slice diagnosis of eval results (reviewed labels + per-sample results)."""


@slices_group.command("report", cls=GreedyCommand)
@click.option("--labels", required=True, multiple=True, type=click.Path(),
              help="Eval labels tables (`review pull` outputs) or directories of them; several benchmarks at once.")
@click.option("--results", required=True, multiple=True, type=click.Path(),
              help="Per-sample results: lm-eval samples_*.jsonl (a shell glob works), CSV/JSONL/Parquet, or "
                   "directories (files there that are not results are skipped and counted).")
@click.option("--baseline", multiple=True, type=click.Path(), help="Results of the checkpoint to compare with.")
@click.option("-o", "--output", required=True, type=click.Path(), help="OUT: writes OUT.json, OUT.md, OUT.html.")
@click.option("--allow-unreviewed", is_flag=True, help="Use labels nobody reviewed (recorded in every output).")
@click.option("--id-field", help="Field of lm-eval's logged doc holding the id [content hash of the doc].")
@click.option("--metric", help="Per-sample metric or column [acc, exact_match, ...; correct/score/n,c].")
@click.option("--k", type=int, default=1, show_default=True, help="k of pass@k for id,n,c results.")
@click.option("--lm-eval-filter", help="lm-eval filter to use when a task logs several [the first].")
@click.option("--response-field", default="response", show_default=True,
              help="Column of a results table holding the raw generation (MMLU-Pro: generated_text).")
@click.option("--prediction-field", default="prediction", show_default=True,
              help="Column holding the extracted answer; null/empty = nothing extracted (MMLU-Pro: pred).")
@click.option("--target-field", default="target", show_default=True, help="Column holding the gold answer.")
@click.option("--min-n", type=int, default=10, show_default=True, help="Hide slices with fewer items.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="False discovery rate (BH).")
@click.option("--max-dims", type=int, default=4, show_default=True, help="Largest slice combination.")
@click.option("--plan", type=click.Path(), help="A plan directory from `annotator map`: did it help?")
@click.option("--taxonomy", "taxonomy_path", type=click.Path(), help="A taxonomy YAML file [shipped v1].")
@errors_to_messages
def slices_report_cmd(labels: tuple[str, ...], results: tuple[str, ...], baseline: tuple[str, ...], output: str,
                      plan: str | None, response_field: str, prediction_field: str, target_field: str,
                      **options: Any) -> None:
    """Slices, findings and data / non-data verdicts from LABELS and RESULTS."""
    from annotator.diagnose.report import slices_report
    from annotator.diagnose.results import Fields

    fields = Fields(response=response_field, prediction=prediction_field, target=target_field)
    report, paths = slices_report(list(labels), list(results), output, plan=plan, baseline=list(baseline) or None,
                                  fields=fields, **options)
    click.echo(report.headline)
    for b in report.benchmarks:  # per benchmark first: each in its own metric
        change = (f" (baseline {b['baseline_rate']:.3f}, delta {b['delta']:+.3f})"
                  if b.get("baseline_rate") is not None else "")
        states = ", ".join(f"{k} {v}" for k, v in b["states"].items())
        click.echo(f"  {b['task']}: {b['metric']} {b['rate']:.3f} over {b['n']} items{change}"
                   + (f"; responses: {states}" if states else ""))
    for f in report.findings:
        click.echo(f"  {f.verdict:<12} {f.kind:<14} {', '.join(f'{d}={v}' for d, v in f.slice.items())} (n {f.n})")
    skipped = len(report.join.get("skipped_files") or [])
    click.echo(f"{report.overall['n']} items joined ({report.join['labels_without_results']} labels without results, "
               f"{report.join['results_without_labels']} results without labels"
               + (f"; {skipped} files skipped: not results" if skipped else "") + ")")
    if report.intervention:
        click.echo(report.intervention["summary"])
    click.echo(f"report -> {paths['json']}, {paths['md']}, {paths['html']}")


@click.command("map")
@click.option("--report", required=True, type=click.Path(), help="OUT of `annotator slices report`.")
@click.option("--corpus-labels", required=True, type=click.Path(),
              help="Corpus labels table, or a directory of labeled Parquet shards.")
@click.option("-o", "--output", required=True, type=click.Path(), help="PLAN directory.")
@click.option("--budget", type=click.IntRange(min=1), help="Targeted document draws, 1 or more [2 x the matches].")
@click.option("--max-repeat", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="Cap on one document's weight (above 0).")
@click.option("--min-docs", type=int, default=10, show_default=True, help="Fewer documents = too little data.")
@click.option("--taxonomy", "taxonomy_path", type=click.Path(), help="A taxonomy YAML file [shipped v1].")
@click.option("--audit", type=click.Path(), help="`review pull` of the corpus labels' audit sample.")
@click.option("--min-audit-accuracy", type=float, default=0.8, show_default=True,
              help="Lower 95% bound of audited accuracy each used dimension must reach.")
@click.option("--allow-unaudited", is_flag=True, help="Use corpus labels nobody audited (recorded in mixture.json).")
@errors_to_messages
def map_cmd(report: str, corpus_labels: str, output: str, **options: Any) -> None:
    """Turn the report's data findings into a targeted sampling plan (mixture.json, manifest.parquet)."""
    from annotator.plan.mapping import make_plan

    mixture = make_plan(report, corpus_labels, output, **options)
    cats = ", ".join(f"{c['dimension']}={c['label']} {c['weight']:.2f}" for c in mixture["categories"]) or "none"
    click.echo(f"plan {mixture['plan_id']}: categories {cats}; {mixture['selected']} of {mixture['documents']} "
               f"documents selected (budget {mixture['budget']}, repeat cap {mixture['max_repeat']})")
    audit = mixture["audit"]
    click.echo("corpus labels: unaudited (allowed, recorded)" if audit == "unaudited-allowed" else
               "corpus labels audited: " + ", ".join(f"{d} {v['accuracy']:.2f} (n {v['n']}, 95% CI "
                                                     f"{v['ci95'][0]:.2f}-{v['ci95'][1]:.2f})"
                                                     for d, v in audit["dimensions"].items()))
    for c in mixture["checks"]:
        click.echo(f"not a data problem ({', '.join(f'{d}={v}' for d, v in c['finding'].items())}): {c['check']}")
    for cov in mixture["coverage"]:
        if not cov["enough"]:
            click.echo(f"too little data: {cov['dimension']}={cov['label']} has {cov['available']} documents "
                       f"for {cov['wanted']} draws")
    click.echo(f"plan -> {output}/mixture.json, {output}/manifest.parquet")


@click.group("batches")
def batches_group() -> None:
    """Batches of an `annotator label --batch-api` run (recorded in OUTPUT.batches/)."""


def _batch_options(fn: Callable[..., None]) -> Callable[..., None]:
    """OUTPUT, --base-url and --api-key-env, shared by the ``batches`` commands."""
    fn = errors_to_messages(fn)
    for option in reversed((click.argument("output", type=click.Path()),
                            click.option("--base-url", help="Endpoint [the one recorded by the run]."),
                            click.option("--api-key-env",
                                         help="Environment variable holding the API key [OPENAI_API_KEY]."))):
        fn = option(fn)
    return fn


@batches_group.command("status")
@_batch_options
def batches_status_cmd(output: str, base_url: str | None, api_key_env: str | None) -> None:
    """Status of the batches recorded for OUTPUT (each model's, after several --model)."""
    from annotator.labeling.batch import batch_table

    click.echo(batch_table(output, base_url=base_url, api_key_env=api_key_env))


@batches_group.command("cancel")
@_batch_options
def batches_cancel_cmd(output: str, base_url: str | None, api_key_env: str | None) -> None:
    """Cancel the running batches of OUTPUT (rerun `annotator label` to collect and finish online)."""
    from annotator.labeling.batch import batch_table

    click.echo(batch_table(output, base_url=base_url, api_key_env=api_key_env, cancel=True))
