"""The first case that defines success, in miniature: a score that fell because generation no longer stopped.

The logs were written by the real lm-evaluation-harness against the embedded model served by
`annotator serve-local` (tests/fixtures/lm-eval, made by scripts/make-lm-eval-fixtures): GSM8K and
BBH boolean_expressions, once as is and once with end-of-sequence and stop sequences suppressed
(a checkpoint whose EOS token was masked in the training loss, without training). The last test
runs the harness itself on a few items.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, ROOT

from annotator.cli import main
from annotator.diagnose.report import slices_report
from annotator.diagnose.results import read_results
from annotator.labeling.sources import content_id
from annotator.plan.mapping import make_plan

LM = FIXTURES / "lm-eval"
CORPUS = FIXTURES / "corpus-dev-labels.jsonl"
# the adjudicated dev labels of these two subsets (tests/fixtures/dev-labels.jsonl), which are constant within each
SUBSET_LABELS = {
    "gsm8k.jsonl": {"background": "school_math", "task_type": "math_word_problem",
                    "solving_operation": ["arithmetic"], "output_constraint": "number", "source": "gsm8k"},
    "bbh_boolean.jsonl": {"background": "none", "task_type": "symbolic_manipulation",
                          "solving_operation": ["logical_deduction"], "output_constraint": "boolean",
                          "source": "bbh"},
}


def labels_table(src: Path, out: Path) -> Path:
    rows = []
    for name, labels in SUBSET_LABELS.items():
        for line in (src / name).read_text().splitlines():
            doc = json.loads(line)
            rows.append({"id": content_id(doc), "kind": "eval", "status": "ok", "review_status": "confirmed",
                         "text": doc.get("question") or doc.get("input"), **labels})
    pd.DataFrame(rows).to_parquet(out)
    return out


def logs(run: str, task: str) -> list[dict]:
    (path,) = (LM / run).glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_masked_eos_run_is_ruled_out_from_data(tmp_path):
    # what the raw logs show: as is, generations stop where the few-shot pattern starts again;
    # masked, they run on past it (the next "Q:" / "Question:" is written out) and the score falls
    for task, marker in (("bbh_boolean_local", "\nQ:"), ("gsm8k_local", "Question:")):
        asis, masked = logs("as-is", task), logs("masked", task)
        assert sum(marker in r["resps"][0][0] for r in asis) == 0
        assert sum(marker in r["resps"][0][0] for r in masked) > 0.5 * len(masked)
        assert masked[0]["arguments"]["gen_args_0"]["arg_1"]["until"] == []
    bbh_before = sum(r["exact_match"] for r in logs("as-is", "bbh_boolean_local"))
    bbh_after = sum(r["exact_match"] for r in logs("masked", "bbh_boolean_local"))
    assert bbh_after < bbh_before - 20
    labels = labels_table(LM, tmp_path / "labels.parquet")
    report, paths = slices_report(labels, [LM / "masked"], tmp_path / "out", baseline=[LM / "as-is"])
    # per benchmark first: two tasks, each with its own rate and change
    tasks = {b["task"]: b for b in report.benchmarks}
    assert set(tasks) == {"bbh_boolean_local", "gsm8k_local"} and tasks["bbh_boolean_local"]["delta"] < -0.1
    assert tasks["bbh_boolean_local"]["states"].get("runaway", 0) > 0.8 * tasks["bbh_boolean_local"]["n"]
    assert tasks["bbh_boolean_local"]["baseline_states"].get("runaway", 0) < 0.2 * tasks["bbh_boolean_local"]["n"]
    # the report says termination, not data: its first finding is what the model wrote, and no data finding
    first = report.findings[0]
    assert first.defined_by == "response" and first.slice.get("response") == "runaway"
    assert first.verdict == "non-data" and "termination" in first.checks[0].lower()
    assert [f for f in report.findings if f.verdict == "data"] == []
    assert "runaway" in report.headline.split("not data:")[1]
    plan = make_plan(tmp_path / "out", CORPUS, tmp_path / "plan", allow_unaudited=True)
    assert plan["categories"] == [] and plan["selected"] == 0
    assert any("end-of-sequence" in c["check"] for c in plan["checks"])
    assert "runaway responses (trimmed)" in paths["html"].read_text()


def test_as_is_run_reads_the_logged_generation_arguments():
    got = read_results([LM / "as-is"])
    assert set(got.metrics) == {"bbh_boolean_local", "gsm8k_local"} and set(got.metrics.values()) == {"exact_match"}
    masked = read_results([LM / "masked"])
    share = lambda r: (r.frame.state == "runaway").mean()  # noqa: E731
    assert share(got) < 0.3 < 0.8 < share(masked)
    assert got.frame.length.notna().all() and got.frame.repetition.between(0, 1).all()


@pytest.mark.slow
@pytest.mark.local_llm
def test_the_real_harness_writes_logs_the_report_reads(tmp_path):
    """lm-eval run against `annotator serve-local` here and now, on 4 + 4 items, both ways."""
    lm_eval = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "lm_eval"
    if not lm_eval.exists():
        lm_eval = ROOT / ".venv" / "bin" / "lm_eval"
    bench = tmp_path / "bench"
    (bench / "gsm8k").mkdir(parents=True)
    (bench / "bbh").mkdir()
    shutil.copy(LM / "gsm8k.jsonl", bench / "gsm8k" / "test.jsonl")
    examples = [json.loads(line) for line in (LM / "bbh_boolean.jsonl").read_text().splitlines()]
    (bench / "bbh" / "boolean_expressions.json").write_text(json.dumps({"examples": [{}, {}, *examples]}))
    env = {**os.environ, "DEST": str(tmp_path / "logs"), "SHARED": str(bench)}
    proc = subprocess.run([str(ROOT / "scripts" / "make-lm-eval-fixtures"), str(lm_eval), "4", "4"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    masked = read_results([tmp_path / "logs" / "masked"])
    asis = read_results([tmp_path / "logs" / "as-is"])
    assert len(masked.frame) == len(asis.frame) == 8
    assert (masked.frame.state == "runaway").sum() > (asis.frame.state == "runaway").sum()


def test_a_termination_failure_is_reported_even_when_the_score_did_not_move(tmp_path):
    """GSM8K alone: the embedded model scores the same either way, but masked it no longer stops."""
    asis, masked = logs("as-is", "gsm8k_local"), logs("masked", "gsm8k_local")
    assert abs(sum(r["exact_match"] for r in asis) - sum(r["exact_match"] for r in masked)) <= 2
    labels = labels_table(LM, tmp_path / "labels.parquet")
    args = ["slices", "report", "--labels", str(labels), "--results", *map(str, (LM / "masked").glob("samples_gsm8k*")),
            "--baseline", *map(str, (LM / "as-is").glob("samples_gsm8k*")), "-o", str(tmp_path / "out")]
    res = CliRunner().invoke(main, args)  # the values after --results / --baseline as a shell glob expands them
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out.json").read_text())
    first = report["findings"][0]
    assert first["kind"] == "response_shift" and first["slice"] == {"response": "runaway"}
    assert first["evidence"]["shift"]["share"] > 0.8 > 0.2 > first["evidence"]["shift"]["baseline_share"]
    assert [f for f in report["findings"] if f["verdict"] == "data"] == []
    assert "runaway" in res.output.splitlines()[0]
