"""--model A --model B --model C: per-model columns, consensus, agreement, review priority, eval-labels."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
from click.testing import CliRunner
from conftest import FIXTURES, ROOT, write_jsonl

from annotator.cli import main
from annotator.review.queue import plan
from annotator.taxonomy import load_taxonomy

DIMS = load_taxonomy().dimensions("eval")
BACKGROUND = next(d for d in DIMS if d.id == "background")


def test_three_models_consensus_agreement_and_per_model_columns(llm, tmp_path):
    a, b = BACKGROUND.label_ids[0], BACKGROUND.label_ids[1]
    llm.rules([{"match": "Janet", "model": m, "answer": {"background": label}}
               for m, label in (("m1", a), ("m2", a), ("m3", b))] +
              [{"match": "", "answer": {"background": a}}])  # every other item: all three agree
    out = tmp_path / "multi.parquet"
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(out), "--base-url", llm.url,
                                    "--model", "m1", "--model", "m2", "--model", "m3", "--mode", "json_schema"])
    assert res.exit_code == 0, res.output
    assert {e["model"] for e in llm.log()} == {"m1", "m2", "m3"} and len(llm.log()) == 30
    df = pd.read_parquet(out)
    assert len(df) == 10 and (df.status == "ok").all()
    janet = df[df.text.str.contains("Janet")].iloc[0]
    assert janet.background == a and abs(janet.background_confidence - 2 / 3) < 1e-9
    assert janet.disagreement == "background"
    assert (janet.background__m1, janet.background__m2, janet.background__m3) == (a, a, b)
    others = df[~df.text.str.contains("Janet")]
    assert (others.background_confidence == 1.0).all()
    for dim in DIMS:  # every other dimension: the same deterministic answer from each model
        assert (df[f"{dim.id}_confidence"] == 1.0).all() or dim.id == "background"
        assert f"{dim.id}__m2" in df.columns and f"{dim.id}_confidence__m3" in df.columns
    summary = json.loads(open(f"{out}.summary.json").read())
    assert set(summary["per_model"]) == {"m1", "m2", "m3"} and summary["requests"] == 30
    assert summary["labeler"].startswith("consensus(")
    # disagreements go first in review
    rows = df.to_dict("records")
    priorities = {r["id"]: plan(r, DIMS, 0.0)["priority"] for r in rows}
    assert max(priorities, key=priorities.get) == janet.id and priorities[janet.id] > 2.0

    before = len(llm.log())  # a rerun: every model's answers come from the cache
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(tmp_path / "again.parquet"),
                                    "--base-url", llm.url, "--model", "m1", "--model", "m2", "--model", "m3",
                                    "--mode", "json_schema"])
    assert res.exit_code == 0 and len(llm.log()) == before


def test_eval_labels_reports_the_consensus_and_each_model(llm, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"e{i}", "text": f"eval item {i}"} for i in range(6)])
    a, b = BACKGROUND.label_ids[0], BACKGROUND.label_ids[1]
    llm.rules([{"match": "", "model": "good", "answer": {"background": a}},
               {"match": "", "model": "bad", "answer": {"background": b}}])
    out = tmp_path / "two.parquet"
    res = CliRunner().invoke(main, ["label", str(path), "-o", str(out), "--id-field", "id", "--base-url", llm.url,
                                    "--model", "good", "--model", "bad", "--mode", "json_schema"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    reference = df[["id", "task_type", "solving_operation", "output_constraint"]].assign(background=a)
    reference.to_parquet(tmp_path / "ref.parquet")
    res = CliRunner().invoke(main, ["eval-labels", str(out), str(tmp_path / "ref.parquet")])
    assert res.exit_code == 0, res.output
    blocks = res.output.split("\n\n")
    assert "[consensus]" in blocks[0] and "[good]" in blocks[1] and "[bad]" in blocks[2]

    def background_acc(block):
        line = next(x for x in block.splitlines() if x.startswith("| background"))
        return float(line.split("|")[3])

    assert background_acc(blocks[1]) == 1.0 and background_acc(blocks[2]) == 0.0
    assert background_acc(blocks[0]) == 1.0  # a 1-1 tie goes to the first model named


def test_models_label_side_by_side_and_a_failing_model_stops_the_others(llm, tmp_path):
    llm.reset(latency=0.3)
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"s{i}", "text": f"side item {i}"} for i in range(8)])
    args = ["label", str(path), "--id-field", "id", "--base-url", llm.url, "--mode", "json_schema",
            "--concurrency", "1"]
    res = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "two.parquet"), "--model", "m1", "--model", "m2"])
    assert res.exit_code == 0, res.output
    times = {m: sorted(e["t"] for e in llm.log() if e["model"] == m) for m in ("m1", "m2")}
    assert len(times["m1"]) == len(times["m2"]) == 8
    assert times["m2"][0] < times["m1"][-1] and times["m1"][0] < times["m2"][-1]  # at once, not one after another

    llm.reset(latency=0.3)
    llm.rules([{"match": "", "model": "gone", "status": 404}])
    res = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "fail.parquet"), "--model", "m1", "--model", "gone",
                                    "--no-cache"])
    assert res.exit_code == 2 and "model gone failed" in res.output and "404" in res.output, res.output
    assert len([e for e in llm.log() if e["model"] == "m1"]) < 8  # m1 stopped starting requests


def test_ctrl_c_stops_models_labeling_side_by_side(llm, tmp_path):
    llm.reset(latency=2.0)
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"c{i}", "text": f"slow item {i}"} for i in range(20)])
    proc = subprocess.Popen([sys.executable, "-m", "annotator.cli", "label", str(path), "--id-field", "id",
                             "-o", str(tmp_path / "c.parquet"), "--base-url", llm.url, "--mode", "json_schema",
                             "--model", "m1", "--model", "m2", "--concurrency", "1"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 30
    while time.time() < deadline and len({e["model"] for e in llm.log()}) < 2:
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err, err
    assert time.monotonic() - started < 10  # does not wait for the models to finish


def test_consensus_sees_disagreement_on_label_sets_and_primaries(llm, tmp_path):
    """[arithmetic, algebraic_manipulation] vs [arithmetic], or a reversed primary, is not agreement."""
    both, one = ["arithmetic", "algebraic_manipulation"], ["arithmetic"]
    for name, second in (("subset", one), ("reversed", list(reversed(both)))):
        llm.rules([{"match": "", "model": "m1", "answer": {"solving_operation": both}},
                   {"match": "", "model": "m2", "answer": {"solving_operation": second}}])
        out = tmp_path / f"{name}.parquet"
        res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(out), "--base-url",
                                        llm.url, "--model", "m1", "--model", "m2", "--mode", "json_schema"])
        assert res.exit_code == 0, res.output
        df = pd.read_parquet(out)
        assert (df.solving_operation_confidence < 1.0).all(), name
        assert df.disagreement.str.contains("solving_operation").all(), name
        priorities = [plan(r, DIMS, 0.0)["priority"] for r in df.to_dict("records")]
        assert min(priorities) > 1.0, name  # disagreements are reviewed first
