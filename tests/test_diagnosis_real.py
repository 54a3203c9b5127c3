"""Diagnosis on real checkpoints' outputs (../shared/data/real-outputs, copies in tests/fixtures).

Each test first states, from the raw outputs and with plain code of its own, what a careful
engineer sees in them, then checks that the report says it.
"""

import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from annotator.cli import main
from annotator.diagnose.report import analyse, slices_report
from annotator.diagnose.results import Fields, read_results
from annotator.errors import InputError
from annotator.plan.mapping import make_plan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-outputs"
REAL = SHARED if (SHARED / "mmlu-pro" / "Llama-2-7b-hf.jsonl.gz").is_file() else FIXTURES / "real-outputs"
MMLU, TQA = REAL / "mmlu-pro", REAL / "theoremqa"
CORPUS = FIXTURES / "corpus-dev-labels.jsonl"
COMPUTATION = {"arithmetic", "algebraic_manipulation", "probability_statistics", "counting_combinatorics",
               "geometric_reasoning", "school_math", "competition_math", "math_problem", "math_word_problem"}


def rows(path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return {str(r["id"]): r for r in map(json.loads, fh)}


@pytest.fixture(scope="module")
def llama2_vs_llama3():
    report, items = analyse(MMLU / "labels-rule.jsonl.gz", [MMLU / "Llama-2-7b-hf.jsonl.gz"],
                            baseline=[MMLU / "Meta-Llama-3_1-8B.jsonl.gz"], allow_unreviewed=True)
    return report, items


def test_llama2_against_llama31_separates_termination_from_a_computation_gap(llama2_vs_llama3, tmp_path):
    report, items = llama2_vs_llama3
    now, labels = rows(MMLU / "Llama-2-7b-hf.jsonl.gz"), rows(MMLU / "labels-rule.jsonl.gz")
    # what the raw outputs show: Llama-2 often writes no extractable answer, mostly where computation is needed
    none = {i for i, r in now.items() if not r["prediction"]}
    arith = {i for i, r in labels.items() if "arithmetic" in r["solving_operation"]}
    assert len(none & arith) / len(arith) > 2 * len(none - arith) / (len(labels) - len(arith))
    answered = [i for i in now if now[i]["prediction"]]
    acc = lambda ids: sum(now[i]["correct"] for i in ids) / len(ids)  # noqa: E731
    assert acc([i for i in answered if i in arith]) < acc([i for i in answered if i not in arith]) - 0.05
    # the report's first findings are what the model wrote: non-data, response-defined, with the checks
    first = report.findings[0]
    assert first.defined_by == "response" and first.verdict == "non-data" and first.slice["response"] == "runaway"
    assert "termination" in first.checks[0].lower() and first.evidence["baseline_states"]
    response = [f for f in report.findings if f.defined_by == "response"]
    covered = set().union(*[{items.ids[i] for i in range(len(items)) if items.state[i] == f.slice["response"]}
                            for f in response])
    assert len(none & covered) / len(none) > 0.9  # nearly every unextractable answer is in a non-data finding
    # ... and a data finding on computational content among the answered items
    data = [f for f in report.findings if f.verdict == "data"]
    assert any(set(f.slice.values()) & COMPUTATION for f in data), [f.slice for f in data]
    arithmetic = next(f for f in data if f.slice == {"solving_operation": "arithmetic"})
    assert arithmetic.rate < arithmetic.rest_rate
    # no label finding is the whole benchmark; the shift is stated and decomposed in overall
    assert all(f.n < 0.9 * len(items) for f in report.findings if f.defined_by == "labels")
    d = report.overall["decomposition"]
    assert d["lost"] - d["gained"] == round(-report.overall["delta"] * len(items))
    assert d["by_state"]["runaway"]["lost"] > 10 * d["by_state"]["runaway"]["gained"]
    assert report.benchmarks[0]["task"] == "mmlu_pro" and report.benchmarks[0]["states"]["runaway"] > 1000
    assert "runaway" in report.headline and "data:" in report.headline
    # the plan asks for data only for the content part and lists the checks of the response part
    written, _ = slices_report(MMLU / "labels-rule.jsonl.gz", [MMLU / "Llama-2-7b-hf.jsonl.gz"], tmp_path / "out",
                               baseline=[MMLU / "Meta-Llama-3_1-8B.jsonl.gz"], allow_unreviewed=True)
    plan = make_plan(tmp_path / "out", CORPUS, tmp_path / "plan", allow_unaudited=True)
    assert plan["targets"] and all("response" not in t for t in plan["targets"])
    assert {"operation", "arithmetic"} <= {v for c in plan["categories"] for v in (c["dimension"], c["label"])}
    assert {c["finding"]["response"] for c in plan["checks"] if "response" in c["finding"]} >= {"runaway"}
    html = (tmp_path / "out.html").read_text()
    for part in ('id="states"', 'id="hist-length"', 'id="hist-repetition"', "runaway responses (trimmed)",
                 "id='decomposition'", 'id="colour-scale"', 'id="benchmarks"'):
        assert part in html


def test_llama2_alone_is_mixed_termination_and_arithmetic(tmp_path):
    report, _ = analyse(MMLU / "labels-rule.jsonl.gz", [MMLU / "Llama-2-7b-hf.jsonl.gz"], allow_unreviewed=True)
    kinds = {(f.defined_by, f.verdict, f.kind) for f in report.findings}
    assert ("response", "non-data", "below_overall") in kinds and ("labels", "data", "below_overall") in kinds
    assert {"solving_operation": "arithmetic"} in [f.slice for f in report.findings if f.verdict == "data"]
    assert report.overall["set_aside"]["set_aside"] > 1500


def test_theoremqa_mistral_pair_has_no_data_finding_and_no_chance_artefact():
    report, _ = analyse(TQA / "labels-rule.jsonl.gz", [TQA / "mistral-7b-v0.1.jsonl.gz"],
                        baseline=[TQA / "mistral-7b-v0.2.jsonl.gz"], allow_unreviewed=True)
    now, before = rows(TQA / "mistral-7b-v0.1.jsonl.gz"), rows(TQA / "mistral-7b-v0.2.jsonl.gz")
    # the raw pair: a small benchmark-wide difference, about as many items gained as lost
    lost = sum(before[i]["correct"] and not now[i]["correct"] for i in now)
    gained = sum(now[i]["correct"] and not before[i]["correct"] for i in now)
    assert abs(lost - gained) < 0.05 * len(now)
    assert [f for f in report.findings if f.verdict == "data"] == []
    # yes/no answers are right half the time by chance: numbers are not "weak" for being numbers
    assert not any(f.slice.get("output_constraint") == "number" for f in report.findings)
    assert report.overall["decomposition"]["lost"] == lost and report.overall["decomposition"]["gained"] == gained


def test_llama31_against_instruct_names_no_benchmark_wide_slice():
    report, items = analyse(MMLU / "labels-rule.jsonl.gz", [MMLU / "Meta-Llama-3_1-8B.jsonl.gz"],
                            baseline=[MMLU / "Meta-Llama-3_1-8B-Instruct.jsonl.gz"], allow_unreviewed=True)
    assert report.findings and all(f.n < 0.9 * len(items) for f in report.findings)
    assert not any(f.slice == {"output_constraint": "option_letter"} for f in report.findings)
    assert all(f.kind in ("regressed", "standing", "response_shift") for f in report.findings)


def test_plain_table_columns_named_by_options_and_globs_and_several_label_tables(tmp_path):
    """MMLU-Pro writes generated_text / pred: named by options; a glob after --results; two label tables."""
    src = rows(TQA / "mistral-7b-v0.1.jsonl.gz")
    half = len(src) // 2
    for part, chunk in (("a", list(src.values())[:half]), ("b", list(src.values())[half:])):
        with open(tmp_path / f"run-{part}.jsonl", "w") as fh:
            for r in chunk:
                fh.write(json.dumps({"id": r["id"], "correct": r["correct"], "generated_text": r["response"],
                                     "pred": r["prediction"], "answer": r["target"]}) + "\n")
    labels = rows(TQA / "labels-rule.jsonl.gz")
    for part, chunk in (("a", list(labels.values())[:half]), ("b", list(labels.values())[half:])):
        with open(tmp_path / f"labels-{part}.jsonl", "w") as fh:
            for r in chunk:
                fh.write(json.dumps(r | ({"text": 123} if part == "b" else {})) + "\n")  # differently typed column
    shutil.copy(FIXTURES / "gsm8k-10.jsonl", tmp_path / "gsm8k-beside.jsonl")  # a benchmark file beside results
    args = ["slices", "report", "--labels", str(tmp_path / "labels-a.jsonl"), str(tmp_path / "labels-b.jsonl"),
            "--results", str(tmp_path / "run-a.jsonl"), str(tmp_path / "run-b.jsonl"),
            "--response-field", "generated_text", "--prediction-field", "pred", "--target-field", "answer",
            "--allow-unreviewed", "-o", str(tmp_path / "out")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["join"]["matched"] == len(src) and data["join"]["results_without_labels"] == 0
    assert data["benchmarks"][0]["states"]["runaway"] > 100  # responses were read through the named columns
    assert "runaway" in res.output.splitlines()[0]
    (tmp_path / "dir").mkdir()
    for name in ("run-a.jsonl", "run-b.jsonl", "gsm8k-beside.jsonl"):
        shutil.copy(tmp_path / name, tmp_path / "dir" / name)
    got = read_results([tmp_path / "dir"], fields=Fields(response="generated_text", prediction="pred", target="answer"))
    assert len(got.frame) == len(src) and [Path(p).name for p in got.skipped] == ["gsm8k-beside.jsonl"]
    with pytest.raises(InputError, match="gsm8k-beside.jsonl: field 'id': missing"):
        read_results([tmp_path / "gsm8k-beside.jsonl"])  # named directly: it must be results


def test_repeated_result_id_with_another_score_names_both_places(tmp_path):
    (tmp_path / "r.csv").write_text("id,correct\na,1\nb,0\na,0\n")
    with pytest.raises(InputError, match=r"'a' appears twice with different scores: .*r.csv:2 .* and .*r.csv:4"):
        read_results([tmp_path / "r.csv"])
    (tmp_path / "s.jsonl").write_text(json.dumps({"id": "a", "score": 50}) + "\n")
    with pytest.raises(InputError, match=r"s.jsonl:1: field 'score': 50 is outside 0-1"):
        read_results([tmp_path / "s.jsonl"])
    (tmp_path / "t.jsonl").write_text(json.dumps({"id": "a", "score": "inf"}) + "\n")
    with pytest.raises(InputError, match="not a finite number"):
        read_results([tmp_path / "t.jsonl"])


def test_tasks_scored_differently_are_never_pooled(tmp_path):
    """TheoremQA scored 0/1 beside a task scored 0-1 by a judge: per-task rates, no pooled rate, slices per task."""
    src = rows(TQA / "mistral-7b-v0.1.jsonl.gz")
    dev = [json.loads(line) for line in (FIXTURES / "dev-labels.jsonl").read_text().splitlines()]
    with open(tmp_path / "judge.jsonl", "w") as fh:
        for i, r in enumerate(dev):
            weak = "arithmetic" in r["solving_operation"]
            score = 0.2 if weak else 0.6 + 0.01 * (i % 7)
            fh.write(json.dumps({"id": r["id"], "score": score, "task": "judge"}) + "\n")
    with open(tmp_path / "dev-labels.jsonl", "w") as fh:
        for r in dev:
            fh.write(json.dumps(r | {"source": "judge"}) + "\n")
    report, _ = analyse([TQA / "labels-rule.jsonl.gz", tmp_path / "dev-labels.jsonl"],
                        [TQA / "mistral-7b-v0.1.jsonl.gz", tmp_path / "judge.jsonl"], allow_unreviewed=True, min_n=5)
    tasks = {b["task"]: b for b in report.benchmarks}
    assert set(tasks) == {"theoremqa", "judge"} and tasks["judge"]["metric"] == "score"
    assert tasks["theoremqa"]["rate"] == round(sum(r["correct"] for r in src.values()) / len(src), 4)
    assert report.overall["rate"] is None and "different metrics" in report.overall["note"]
    labelled = [f for f in report.findings if f.defined_by == "labels"]
    assert labelled and all("task" in f.slice for f in labelled)
    assert {"task": "judge", "solving_operation": "arithmetic"} in [f.slice for f in labelled]


def test_results_are_checked_like_every_input(tmp_path):
    """lm-eval metrics outside their range, and a baseline measured with another metric, are refused."""
    (line,) = (FIXTURES / "lm-eval" / "as-is").glob("samples_gsm8k_local_*.jsonl")
    first = json.loads(line.read_text().splitlines()[0])
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "samples_gsm8k_local_2026-01-01T00-00-00.jsonl").write_text(
        json.dumps(first | {"exact_match": 50}) + "\n")
    with pytest.raises(InputError, match=r"samples_gsm8k_local_.*:1: field 'exact_match': 50 is outside 0-1"):
        read_results([tmp_path / "logs"])
    dev = [json.loads(x) for x in (FIXTURES / "dev-labels.jsonl").read_text().splitlines()]
    (tmp_path / "now.csv").write_text("id,correct\n" + "".join(f"{r['id']},1\n" for r in dev))
    (tmp_path / "before.csv").write_text("id,score\n" + "".join(f"{r['id']},0.5\n" for r in dev))
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    with pytest.raises(InputError, match=r"measured with 'correct' .* baseline with 'score'"):
        analyse(tmp_path / "labels.jsonl", [tmp_path / "now.csv"], baseline=[tmp_path / "before.csv"],
                allow_unreviewed=True)


def test_the_readmes_walkthrough_is_what_the_command_prints(tmp_path, monkeypatch):
    """The README walks through one real pair: its command, run here, prints the lines it shows."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("**A real pair, walked through.**", 1)[1]
    command, shown = section.split("```bash\n", 1)[1].split("```\n```\n", 1)
    shown = shown.split("```", 1)[0].strip().splitlines()
    args = command.replace("\\\n", " ").split()[1:]  # drop "annotator"
    args[args.index("-o") + 1] = str(tmp_path / "out")
    monkeypatch.chdir(FIXTURES.parent.parent)  # the README's paths are relative to the checkout
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[: len(shown)] == shown
