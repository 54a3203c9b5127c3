"""eval-labels metrics against values computed by hand on a tiny fixture."""

import json

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import InputError
from annotator.labeling.quality import evaluate
from annotator.stats import cohen_kappa, jaccard, macro_f1
from annotator.taxonomy import load_taxonomy

A, B, C = "none", "everyday", "school_math"
X, Y, Z = "arithmetic", "logical_deduction", "factual_recall"
REF = [  # background a a b b c; operations [x,y] [x] [z] [x] [x]
    {"id": "1", "background": A, "task_type": "proof", "solving_operation": [X, Y], "output_constraint": "number"},
    {"id": "2", "background": A, "task_type": "proof", "solving_operation": [X], "output_constraint": "number"},
    {"id": "3", "background": B, "task_type": "proof", "solving_operation": [Z], "output_constraint": "number"},
    {"id": "4", "background": B, "task_type": "proof", "solving_operation": [X], "output_constraint": "number"},
    {"id": "5", "background": C, "task_type": "proof", "solving_operation": [X], "output_constraint": "number"},
    {"id": "6", "background": C, "task_type": "proof", "solving_operation": [X], "output_constraint": "number"},
    {"id": "7", "background": C, "task_type": "proof", "solving_operation": [X], "output_constraint": "number"},
]
PRED = [  # background a b b b a (ids 1-5); id 6 failed; id 7 missing
    {"id": "1", "status": "ok", "background": A, "task_type": "proof", "solving_operation": [X],
     "output_constraint": "number"},
    {"id": "2", "status": "ok", "background": B, "task_type": "proof", "solving_operation": [Y, X],
     "output_constraint": "number"},
    {"id": "3", "status": "ok", "background": B, "task_type": "proof", "solving_operation": [Z, X],
     "output_constraint": "number"},
    {"id": "4", "status": "ok", "background": B, "task_type": "proof", "solving_operation": [X],
     "output_constraint": "number"},
    {"id": "5", "status": "ok", "background": A, "task_type": "proof", "solving_operation": [X],
     "output_constraint": "number"},
    {"id": "6", "status": "failed", "background": None, "task_type": None, "solving_operation": None,
     "output_constraint": None},
]


@pytest.fixture
def files(tmp_path):
    ref, pred = tmp_path / "ref.jsonl", tmp_path / "pred.jsonl"
    ref.write_text("".join(json.dumps(r) + "\n" for r in REF))
    pred.write_text("".join(json.dumps(r) + "\n" for r in PRED))
    return pred, ref


def test_metric_functions_by_hand():
    ref, pred = [A, A, B, B, C], [A, B, B, B, A]
    # p_o = 3/5; p_e = (2*2 + 2*3 + 1*0) / 25 = 0.4; kappa = 0.2 / 0.6
    assert cohen_kappa(ref, pred) == pytest.approx(1 / 3)
    # F1: a = 2*1/(2+1+1) = 0.5, b = 2*2/(4+1+0) = 0.8, c = 0
    assert macro_f1(ref, pred) == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert cohen_kappa([A, A], [A, A]) == 1.0
    assert jaccard([X, Y], [X]) == 0.5 and jaccard([], []) == 1.0


def test_report_joins_by_id_and_counts_coverage(files):
    pred, ref = files
    report = evaluate(pred, ref, load_taxonomy().dimensions("eval"))
    assert (report.reference_items, report.scored, report.failed, report.missing) == (7, 5, 1, 1)
    bg = report.dimensions[0]
    assert bg.accuracy == pytest.approx(0.6) and bg.kappa == pytest.approx(1 / 3)
    assert bg.majority_baseline == pytest.approx(0.4)  # a and b tie at 2 of 5
    assert bg.macro_f1 == pytest.approx(0.8 / 3 + 0.5 / 3)
    assert (A, B, 1) in bg.confusions and (C, A, 1) in bg.confusions
    ops = report.dimensions[2]
    # primary labels: ref x x z x x, pred x y z x x -> 4/5; exact sets: only ids 4, 5 -> 2/5
    assert ops.accuracy == pytest.approx(0.8)
    assert ops.exact_set == pytest.approx(0.4)
    assert ops.jaccard == pytest.approx((0.5 + 0.5 + 0.5 + 1 + 1) / 5)
    tt = report.dimensions[1]
    assert tt.accuracy == 1.0 and tt.kappa == 1.0 and tt.majority_baseline == 1.0


def test_cli_table_and_json(files):
    pred, ref = files
    res = CliRunner().invoke(main, ["eval-labels", str(pred), str(ref)])
    assert res.exit_code == 0
    assert "5/7 scored (missing 1, failed 1)" in res.output
    assert "| background         |   5 |  0.60 |  0.40 |   +0.20 |" in res.output
    res = CliRunner().invoke(main, ["eval-labels", str(pred), str(ref), "--json"])
    data = json.loads(res.output)
    assert data["dimensions"][2]["exact_set"] == pytest.approx(0.4)


def test_reference_without_dimension_is_named(tmp_path, files):
    pred, _ = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "1", "background": A}) + "\n")
    with pytest.raises(InputError, match="item 1: field 'task_type' missing"):
        evaluate(pred, bad, load_taxonomy().dimensions("eval"))
