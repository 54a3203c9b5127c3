"""Slice diagnosis, verdicts, sampling plans and the intervention ledger.

Labels: the 70 real dev samples of ../shared/data/dev-labels.jsonl (copied to tests/fixtures), as a
reviewed table;
results: synthetic per-sample outcomes with a planted weakness (seeded).
"""

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write_jsonl

from annotator.cli import main
from annotator.diagnose.report import slices_report
from annotator.diagnose.results import read_results
from annotator.errors import InputError
from annotator.plan.mapping import make_plan
from annotator.stats import benjamini_hochberg, pass_at_k

DEV = [json.loads(line) for line in (FIXTURES / "dev-labels.jsonl").read_text().splitlines()]  # = ../shared/data
CORPUS = FIXTURES / "corpus-dev-labels.jsonl"


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "reviewed.parquet"
    pd.DataFrame(DEV).assign(kind="eval", status="ok", review_status="confirmed").to_parquet(path)
    return path


def results(path, chance, seed):
    rng = random.Random(seed)
    pd.DataFrame([{"id": r["id"], "correct": int(rng.random() < chance(r))} for r in DEV]).to_csv(path, index=False)
    return path


def paired_results(tmp_path, after_chance, seed=1):
    """Baseline outcomes, then the same outcomes with a planted change."""
    rng = random.Random(seed)
    before = {r["id"]: rng.random() < 0.85 for r in DEV}
    rng2 = random.Random(seed + 1)
    after = {r["id"]: before[r["id"]] and rng2.random() < after_chance(r) for r in DEV}
    for name, outcome in (("before.csv", before), ("after.csv", after)):
        pd.DataFrame([{"id": k, "correct": int(v)} for k, v in outcome.items()]).to_csv(tmp_path / name, index=False)
    return tmp_path / "after.csv", tmp_path / "before.csv"


def test_output_constraint_collapse_is_non_data_and_no_data_finding(labels, tmp_path):
    """Case 1 in miniature: short-answer format collapses after a training change; the data is ruled out."""
    after, before = paired_results(tmp_path, lambda r: 0.1 if r["output_constraint"] == "option_letter" else 1.0)
    report, paths = slices_report(labels, [after], tmp_path / "out", baseline=[before], min_n=5)
    verdicts = [(f.slice, f.verdict) for f in report.findings]
    assert verdicts == [({"output_constraint": "option_letter"}, "non-data")]
    top = report.findings[0]
    assert top.kind == "regressed" and top.delta < -0.5 and top.q_value < 0.05
    # factual_recall is mostly option-letter items: confounded, so explained away or not weak against the rest
    assert {"task_type": "knowledge_recall"} in [e["slice"] for e in top.explains]
    data = json.loads(paths["json"].read_text())
    assert set(data["overall"]) >= {"n", "rate", "baseline_rate"} and data["overall"]["n"] == 70
    assert data["gate"]["allow_unreviewed"] is False and data["gate"]["rows_out"] == 70
    keys = {"slice", "n", "rate", "baseline_rate", "delta", "ci", "p_value", "q_value", "verdict", "evidence",
            "explains"}
    assert keys <= set(data["findings"][0])
    assert "non-data" in paths["md"].read_text() and paths["html"].stat().st_size > 5000
    plan = make_plan(tmp_path / "out", CORPUS, tmp_path / "plan", allow_unaudited=True)
    assert plan["categories"] == [] and plan["selected"] == 0
    assert "termination" in plan["checks"][0]["check"] or "stops" in plan["checks"][0]["check"]


def test_operation_deficit_is_data_and_the_plan_oversamples_that_operation(labels, tmp_path):
    """Case 2 in miniature: a persistent arithmetic weakness -> data verdict -> targeted sampling plan."""
    res = results(tmp_path / "r.csv", lambda r: 0.05 if "arithmetic" in r["solving_operation"] else 0.85, seed=3)
    report, paths = slices_report(labels, [res], tmp_path / "out", min_n=5)
    assert [(f.slice, f.verdict) for f in report.findings] == [({"solving_operation": "arithmetic"}, "data")]
    finding = report.findings[0]
    assert finding.kind == "below_overall" and finding.rate < 0.3 and finding.baseline_rate is None
    rows = {(r["dimension"], r["label"]): r for r in finding.evidence["rows"]}
    number = rows[("output_constraint", "number")]
    assert number["shows_deficit"] and number["holds_outside"]
    base = ["map", "--report", str(tmp_path / "out"), "--corpus-labels", str(CORPUS), "-o", str(tmp_path / "plan"),
            "--min-docs", "5"]
    res = CliRunner().invoke(main, base)  # machine corpus labels go on only through an audit
    assert res.exit_code == 2 and "--audit" in res.output and not (tmp_path / "plan" / "mixture.json").exists()
    res = CliRunner().invoke(main, [*base, "--allow-unaudited"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "plan" / "mixture.json").read_text())["audit"] == "unaudited-allowed"
    audit = _audit_table(tmp_path / "audit.parquet", right=46, wrong=2)  # 46/48: lower bound 0.86
    res = CliRunner().invoke(main, [*base, "--audit", str(audit)])
    assert res.exit_code == 0 and "corpus labels audited: operation 0.96 (n 48" in res.output, res.output
    assert json.loads((tmp_path / "plan" / "mixture.json").read_text())["audit"]["dimensions"]["operation"]["passed"]
    weak = _audit_table(tmp_path / "weak.parquet", right=20, wrong=4)  # 0.83, but only 24 reviewed: lower bound 0.64
    res = CliRunner().invoke(main, [*base, "--audit", str(weak)])
    assert res.exit_code == 2 and "operation: 20/24 right" in res.output, res.output
    mixture = json.loads((tmp_path / "plan" / "mixture.json").read_text())
    ops = [c for c in mixture["categories"] if c["dimension"] == "operation"]
    assert ops[0]["label"] == "arithmetic" and ops[0]["weight"] == max(c["weight"] for c in mixture["categories"])
    assert mixture["targets"] == [{"solving_operation": "arithmetic"}] and mixture["plan_id"]
    manifest = pd.read_parquet(tmp_path / "plan" / "manifest.parquet")
    corpus = pd.read_json(CORPUS, lines=True)
    arithmetic = set(corpus[corpus.operation.apply(lambda ops: "arithmetic" in ops)].id)
    assert set(manifest.id) == arithmetic and (manifest.sampling_weight > 1).all()
    share_in_plan = manifest[manifest.id.isin(arithmetic)].sampling_weight.sum() / manifest.sampling_weight.sum()
    assert share_in_plan > len(arithmetic) / len(corpus)  # over-sampled against its natural share
    assert (manifest.sampling_weight <= 4).all() and set(manifest.file) == {str(CORPUS)}
    assert mixture["coverage"][0]["available"] == len(arithmetic)


def test_no_planted_weakness_gives_no_finding(labels, tmp_path):
    after = results(tmp_path / "a.csv", lambda r: 0.7, seed=4)
    before = results(tmp_path / "b.csv", lambda r: 0.7, seed=5)
    report, _ = slices_report(labels, [after], tmp_path / "out", baseline=[before], min_n=5)
    assert report.findings == [] and len(report.slices) > 50
    assert all(s.q_below >= 0.05 for s in report.slices)


def test_intervention_ledger_shows_the_targeted_slices_improving(labels, tmp_path):
    weak = lambda r: "arithmetic" in r["solving_operation"]  # noqa: E731
    before = results(tmp_path / "before.csv", lambda r: 0.05 if weak(r) else 0.85, seed=6)
    slices_report(labels, [before], tmp_path / "diag", min_n=5)
    make_plan(tmp_path / "diag", CORPUS, tmp_path / "plan", allow_unaudited=True)
    after = results(tmp_path / "after.csv", lambda r: 0.9 if weak(r) else 0.85, seed=7)
    report, paths = slices_report(labels, [after], tmp_path / "later", baseline=[before], plan=tmp_path / "plan",
                                  min_n=5)
    entry = report.intervention
    assert entry["outcome"] == "worked" and entry["targeted"]["n"] == 13 and entry["difference"] > 0.5
    ledger = [json.loads(line) for line in (tmp_path / "plan" / "ledger.jsonl").read_text().splitlines()]
    assert ledger[-1]["outcome"] == "worked" and ledger[-1]["report_id"] == report.report_id
    assert "worked" in paths["md"].read_text()


def test_lm_eval_sample_logs_join_labels_by_content_hash(llm, tmp_path):
    examples = Path(__file__).resolve().parent.parent / "examples"
    run = CliRunner().invoke(main, ["label", str(examples / "gsm8k-10.jsonl"), "-o", str(tmp_path / "l.parquet"),
                                    "--base-url", llm.url, "--model", "m"])
    assert run.exit_code == 0, run.output
    docs = [json.loads(line) for line in (examples / "gsm8k-10.jsonl").read_text().splitlines()]
    log = []
    for i, doc in enumerate(docs[:9] + [{"question": "not labeled", "answer": "#### 1"}]):
        for flt, value in (("strict-match", float(i % 2)), ("flexible-extract", 1.0)):
            log.append({"doc_id": i, "doc": doc, "target": doc["answer"], "filter": flt, "metrics": ["exact_match"],
                        "exact_match": value, "doc_hash": "x", "resps": [["..."]]})
    logs = tmp_path / "lm-eval"
    logs.mkdir()
    write_jsonl(logs / "samples_gsm8k_2026-11-28T10-00-00.123456.jsonl", log)
    res = CliRunner().invoke(main, ["slices", "report", "--labels", str(tmp_path / "l.parquet"), "--results",
                                    str(logs), "-o", str(tmp_path / "out"), "--allow-unreviewed", "--min-n", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["join"]["matched"] == 9 and data["join"]["labels_without_results"] == 1
    assert data["join"]["results_without_labels"] == 1 and data["metric"] == "exact_match"
    assert data["overall"]["rate"] == pytest.approx(4 / 9, abs=1e-4)  # strict-match, the first filter
    assert data["gate"]["allow_unreviewed"] is True
    assert "unreviewed labels allowed" in (tmp_path / "out.html").read_text()
    with pytest.raises(InputError, match="no such results"):
        read_results([tmp_path / "missing"])
    res = CliRunner().invoke(main, ["slices", "report", "--labels", str(tmp_path / "l.parquet"), "--results",
                                    str(logs), "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "never reviewed" in res.output


def test_pass_at_k_results_and_bad_result_files(labels, tmp_path):
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6) and pass_at_k(8, 2, 1) == pytest.approx(0.25)
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    rng = random.Random(8)
    rows = [{"id": r["id"], "n": 8, "c": rng.randint(0, 8)} for r in DEV]
    pd.DataFrame(rows).to_parquet(tmp_path / "pk.parquet")
    got = read_results([tmp_path / "pk.parquet"], k=4)
    assert got.metric == "pass@4" and not got.binary and len(got.frame) == 70
    report, _ = slices_report(labels, [tmp_path / "pk.parquet"], tmp_path / "out", k=4, min_n=5)
    assert report.metric == "pass@4" and report.overall["ci"][0] < report.overall["rate"] < report.overall["ci"][1]
    (tmp_path / "bad.csv").write_text("id,answer\na,1\n")
    with pytest.raises(InputError, match=r"bad.csv: needs columns id,correct or id,score or id,n,c"):
        read_results([tmp_path / "bad.csv"])
    (tmp_path / "bad2.csv").write_text("id,n,c\na,2,3\n")
    with pytest.raises(InputError, match=r"bad2.csv:2: fields 'n','c'"):
        read_results([tmp_path / "bad2.csv"])
    with pytest.raises(InputError, match="pass@4 needs n >= 4"):
        write_jsonl(tmp_path / "few.jsonl", [{"id": "a", "n": 2, "c": 1}])
        read_results([tmp_path / "few.jsonl"], k=4)


def test_report_page_renders_its_plots_in_headless_chromium(labels, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    after, before = paired_results(tmp_path, lambda r: 0.1 if r["output_constraint"] == "option_letter" else 1.0)
    report, paths = slices_report(labels, [after], tmp_path / "out", baseline=[before], min_n=5)
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu",
                                                                               "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1250, "height": 900})
            page.goto(paths["html"].resolve().as_uri(), wait_until="load")
            cells = page.locator("svg#heatmap rect.cell").count()
            points = page.locator("svg#forest circle.point").count()
            findings = page.locator(".finding").count()
            coverage = page.locator("#coverage tr").count()
            verdict = page.locator(".finding .verdict").first.inner_text()
            box = page.locator("svg#heatmap").bounding_box()
            page.screenshot(path=str(artifacts / "slice-report.png"), full_page=True)
        finally:
            browser.close()
    assert cells == len(report.heatmap["cells"]) > 20 and points >= 20
    assert findings == 1 and verdict == "non-data" and coverage == 3
    assert box is not None and box["width"] > 400 and box["height"] > 200


def _audit_table(path, *, right, wrong):
    """A `review pull` of a corpus audit sample: reviewers' labels, the machine's, review statuses."""
    rows = [{"id": f"a{i}", "operation": ["arithmetic"], "llm_operation": ["arithmetic"] if i < right else ["logic"],
             "review_status": "confirmed" if i < right else "corrected"} for i in range(right + wrong)]
    rows.append({"id": "p", "operation": ["logic"], "llm_operation": ["arithmetic"], "review_status": "pending"})
    pd.DataFrame(rows).to_parquet(path)
    return path
