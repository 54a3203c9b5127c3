"""--batch-api against the loopback server's files/batches endpoints: same table as online, split
under the limits, partial failures / invalid answers / expiry finished online, kill -9 resumes
without paying twice, `annotator batches status|cancel`, and both prices in --dry-run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from conftest import FIXTURES, ROOT, start_fake, write_jsonl

from annotator.cli import main

LABELS = ["background", "task_type", "solving_operation", "output_constraint"]


def label(url, out, *extra, path=FIXTURES / "gsm8k-10.jsonl"):
    return CliRunner().invoke(main, ["label", str(path), "-o", str(out), "--base-url", url, "--model", "fake-model",
                                     "--batch-poll", "0.1", *map(str, extra)])


def summary(out):
    return json.loads(open(f"{out}.summary.json").read())


def test_batch_api_gives_the_online_table_without_online_requests(llm, tmp_path):
    llm.reset(batch={"delay": 0.3})
    res = label(llm.url, tmp_path / "b.parquet", "--batch-api")
    assert res.exit_code == 0, res.output
    assert llm.log() == [] and llm.stats()["batch_requests"] == 10  # nothing went online
    assert "batch API: 1 batch(es) (0 attached), 10 requests: answered 10" in res.output
    online = label(llm.url, tmp_path / "o.parquet", "--mode", "json_schema", "--no-cache")
    assert online.exit_code == 0
    batch_df, online_df = pd.read_parquet(tmp_path / "b.parquet"), pd.read_parquet(tmp_path / "o.parquet")
    assert batch_df[["id", *LABELS]].astype(str).equals(online_df[["id", *LABELS]].astype(str))
    assert (tmp_path / "b.parquet.batches" / "state.json").exists()
    assert not list((tmp_path / "b.parquet.batches").glob("input-*.jsonl"))  # collected: request files removed
    before = llm.stats()["batch_requests"]
    res = label(llm.url, tmp_path / "b2.parquet", "--batch-api")  # all cached: no batch at all
    assert res.exit_code == 0 and llm.stats()["batch_requests"] == before


def test_split_partial_failures_invalid_answers_and_expiry_finish_online(llm, tmp_path):
    llm.reset(batch={"delay": 0.2, "fail_every": 4})
    llm.rules([{"match": "Janet", "times": 1, "answer": {"background": "astrology"}}])  # invalid once
    res = label(llm.url, tmp_path / "p.parquet", "--batch-api", "--batch-size", 4)
    assert res.exit_code == 0, res.output
    batch = summary(tmp_path / "p.parquet")["batch"]
    assert batch["batches"] == 3 and batch["requests"] == 10  # 4 + 4 + 2
    assert batch["failed"] == 2 and batch["invalid"] == 1 and batch["answered"] == 7
    assert len(llm.log()) == 3  # the two failed and the invalid one, asked online
    assert (pd.read_parquet(tmp_path / "p.parquet").status == "ok").all()

    llm.reset(batch={"delay": 0.2, "expire_after": 6})
    path = write_jsonl(tmp_path / "e.jsonl", [{"id": f"x{i}", "text": f"expiring item {i}"} for i in range(10)])
    res = label(llm.url, tmp_path / "e.parquet", "--batch-api", "--id-field", "id", path=path)
    assert res.exit_code == 0, res.output
    batch = summary(tmp_path / "e.parquet")["batch"]
    assert batch["answered"] == 6 and batch["not_run"] == 4 and len(llm.log()) == 4


def test_killed_batch_job_attaches_instead_of_paying_twice(tmp_path):
    server = start_fake()
    try:
        server.reset(batch={"delay": 4.0})
        out = tmp_path / "k.parquet"
        args = [sys.executable, "-m", "annotator.cli", "label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(out),
                "--base-url", server.url, "--model", "fake-model", "--batch-api", "--batch-poll", "0.2"]
        env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOTATOR_CACHE_DIR=str(tmp_path / "cache"))
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        state = tmp_path / "k.parquet.batches" / "state.json"
        deadline = time.time() + 60
        while time.time() < deadline and not (state.exists() and "batch_id" in state.read_text()):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert server.stats()["batch_requests"] == 10
        status = CliRunner().invoke(main, ["batches", "status", str(out)])
        assert status.exit_code == 0 and "batch_0001" in status.output and "in_progress" in status.output

        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "(1 attached)" in done.stdout and "answered 10" in done.stdout
        assert server.stats()["batch_requests"] == 10 and server.log() == []  # nothing paid twice
        assert (pd.read_parquet(out).status == "ok").all()
    finally:
        server.proc.kill()


def started_batch_job(url, out, until, *extra):
    """``annotator label --batch-api`` in a subprocess, returned once its state file shows ``until``."""
    state = Path(f"{out}.batches") / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "annotator.cli", "label", str(FIXTURES / "gsm8k-10.jsonl"), "-o",
                             str(out), "--base-url", url, "--model", "fake-model", "--batch-api", *map(str, extra)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and until in state.read_text()):
        if proc.poll() is not None:
            raise AssertionError(f"the job ended before its state showed {until!r}: {proc.communicate()}")
        time.sleep(0.05)
    if not (state.exists() and until in state.read_text()):
        proc.kill()
        raise AssertionError(f"the job's state never showed {until!r} in 120 s: {proc.communicate()}")
    return proc


def test_cancel_then_rerun_labels_the_rest_online(llm, tmp_path):
    llm.reset(batch={"delay": 60})
    out = tmp_path / "c.parquet"
    proc = started_batch_job(llm.url, out, "batch_id")
    proc.kill()
    proc.wait(timeout=10)
    res = CliRunner().invoke(main, ["batches", "cancel", str(out), "--base-url", llm.url])
    assert res.exit_code == 0 and "cancelling" in res.output, res.output
    res = label(llm.url, out, "--batch-api")
    assert res.exit_code == 0, res.output
    assert summary(out)["batch"]["not_run"] == 10 and len(llm.log()) == 10


def test_dry_run_shows_both_prices(llm, tmp_path):
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(tmp_path / "d.parquet"),
                                    "--base-url", llm.url, "--model", "gpt-4o-mini", "--dry-run"])
    assert res.exit_code == 0, res.output
    online = float(res.output.split("cost $")[1].split()[0])
    batch = float(res.output.split("with --batch-api: $")[1].split()[0])
    assert online > 0 and abs(batch - online / 2) < 1e-4 and llm.log() == []


def test_several_models_batches_run_side_by_side(llm, tmp_path):
    llm.reset(batch={"delay": 0.5})
    out = tmp_path / "two.parquet"
    res = label(llm.url, out, "--batch-api", "--model", "m2")  # --model fake-model --model m2
    assert res.exit_code == 0, res.output
    stats = llm.stats()
    assert stats["batch_requests"] == 20 and llm.log() == []  # every answer from a batch
    assert stats["most_batches_running"] == 2  # the second model's batch was submitted before the first ended
    per_model = summary(out)["per_model"]
    assert set(per_model) == {"fake-model", "m2"} and all(m["ok"] == 10 for m in per_model.values())
    for name in ("fake-model", "m2"):
        batch = summary(tmp_path / "two.parquet.models" / f"{name.replace('-', '_')}.parquet")["batch"]
        assert batch["batches"] == 1 and batch["answered"] == 10
    assert (pd.read_parquet(out).status == "ok").all()
    both = summary(out)["batch"]  # the run's summary counts every model's batches, not the first model's
    assert both["batches"] == 2 and both["answered"] == 20, both
    status = CliRunner().invoke(main, ["batches", "status", str(out), "--base-url", llm.url])
    assert status.exit_code == 0, status.output
    assert "fake_model/input-0001.jsonl" in status.output and "m2/input-0001.jsonl" in status.output
    assert status.output.count("completed") >= 3  # header + both batches


def test_max_cost_caps_what_goes_into_batches(llm, tmp_path):
    llm.reset(batch={"delay": 0.2})
    (tmp_path / "prices.yaml").write_text(
        "models:\n  fake-model: {input: 1000.0, output: 1000.0, batch_input: 500.0, batch_output: 500.0}\n")
    dry = label(llm.url, tmp_path / "d.parquet", "--dry-run", "--prices", tmp_path / "prices.yaml")
    whole = float(dry.output.split("with --batch-api: $")[1].split()[0])
    out = tmp_path / "m.parquet"
    res = label(llm.url, out, "--batch-api", "--prices", tmp_path / "prices.yaml", "--max-cost", whole * 0.45)
    assert res.exit_code == 1, res.output  # stopped at the budget: some items not labeled
    batch = summary(out)["batch"]
    assert 0 < batch["requests"] < 10 and batch["over_budget"] == 10 - batch["requests"]
    assert "not submitted: --max-cost reached" in res.output and "stopped at --max-cost" in res.output
    assert summary(out)["estimated_cost_usd"] <= whole * 0.45 * 1.5  # estimates, not exact: within the cap's reach
    df = pd.read_parquet(out)
    assert (df.status == "failed").any() and df.error[df.status == "failed"].str.contains("max-cost").all()
    res = label(llm.url, out, "--batch-api", "--prices", tmp_path / "prices.yaml")  # a rerun continues
    assert res.exit_code == 0 and (pd.read_parquet(out).status == "ok").all()
    assert llm.stats()["batch_requests"] + len(llm.log()) == 10  # each item paid once (online: the budget's rest)


def test_a_server_without_a_batch_api_stops_before_anything_is_planned(llm, tmp_path):
    llm.reset(batch={"absent": True})
    out = tmp_path / "n.parquet"
    res = label(llm.url, out, "--batch-api")
    assert res.exit_code == 2 and "offers no Batch API (GET /batches answered 404): drop --batch-api" in res.output
    assert llm.log() == [] and not list(tmp_path.glob("n.parquet.batches/input-*.jsonl")) and not out.exists()


def test_ctrl_c_while_waiting_says_how_to_attach(llm, tmp_path):
    llm.reset(batch={"delay": 60})
    out = tmp_path / "i.parquet"
    proc = started_batch_job(llm.url, out, "polled")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "the batches keep running at the provider" in err and f"annotator batches cancel {out}" in err


def test_several_models_share_the_budget_and_open_batches_count_against_it(llm, tmp_path):
    llm.reset(batch={"delay": 0.3})
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n" + "".join(f"  {m}: {{input: 1000.0, output: 1000.0, batch_input: 500.0, "
                                            f"batch_output: 500.0}}\n" for m in ("fake-model", "m2")))
    dry = label(llm.url, tmp_path / "d.parquet", "--dry-run", "--prices", prices, "--model", "m2")
    both = float(dry.output.split("with --batch-api: $")[1].split()[0])
    out = tmp_path / "s.parquet"
    res = label(llm.url, out, "--batch-api", "--prices", prices, "--model", "m2", "--max-cost", both * 0.45)
    assert res.exit_code == 1, res.output
    for name in ("fake_model", "m2"):  # equal shares: each model's batch stops short of its 10 items
        batch = summary(tmp_path / "s.parquet.models" / f"{name}.parquet")["batch"]
        assert batch["batches"] == 1 and 0 < batch["requests"] < 10 and batch["over_budget"] > 0, batch

    # killed while its batch runs, rerun with the same budget: the open batch counts, nothing more is sent
    llm.reset(batch={"delay": 3})
    out = tmp_path / "r.parquet"
    whole = both / 2
    proc = started_batch_job(llm.url, out, "batch_id", "--prices", prices, "--max-cost", whole * 0.45)
    proc.kill()
    proc.wait(timeout=10)
    sent = llm.stats()["batch_requests"]
    assert 0 < sent < 10
    res = label(llm.url, out, "--batch-api", "--prices", prices, "--max-cost", whole * 0.45)
    assert res.exit_code in (0, 1), res.output  # the online pass may label a few with the budget's rest
    batch = summary(out)["batch"]
    assert batch["attached"] == 1 and batch["batches"] == 1 and llm.stats()["batch_requests"] == sent


def test_a_kill_at_every_submit_step_never_pays_twice(tmp_path):
    """Killed while the upload is answered, and while POST /v1/batches is answered: one batch, paid once."""
    server = start_fake()
    try:
        for step, stat in (("hold_upload", "files_uploaded"), ("hold_create", "batch_requests")):
            server.reset(batch={step: 30, "delay": 1.0})
            out = tmp_path / f"{step}.parquet"
            args = [sys.executable, "-m", "annotator.cli", "label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(out),
                    "--base-url", server.url, "--model", "fake-model", "--batch-api", "--batch-poll", "0.2"]
            env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOTATOR_CACHE_DIR=str(tmp_path / f"cache-{step}"))
            proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.time() + 60
            while time.time() < deadline and not server.stats().get(stat):
                time.sleep(0.05)
            time.sleep(0.3)  # the call is being answered (held open by the server)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            state = json.loads((tmp_path / f"{step}.parquet.batches" / "state.json").read_text())
            (entry,) = state["batches"]
            assert "batch_id" not in entry or not entry["batch_id"]
            if step == "hold_create":
                assert entry["file_id"]  # recorded before the create call: the rerun can find the batch
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            stats = server.stats()
            assert stats["batch_requests"] == 10, (step, stats)  # one batch of 10: nothing paid twice
            assert server.log() == [] and (pd.read_parquet(out).status == "ok").all()
            if step == "hold_create":
                assert "(1 attached)" in done.stdout, done.stdout
    finally:
        server.proc.kill()


def test_batches_status_never_logs_in_with_the_redacted_placeholder(llm, tmp_path):
    llm.reset(batch={"delay": 0.2})
    port = llm.url.split(":")[2].split("/")[0]
    secret_url = f"http://user:s3cret@127.0.0.1:{port}/v1"
    out = tmp_path / "c.parquet"
    res = label(secret_url, out, "--batch-api")
    assert res.exit_code == 0, res.output
    assert "s3cret" not in (tmp_path / "c.parquet.batches" / "state.json").read_text()
    status = CliRunner().invoke(main, ["batches", "status", str(out)])
    assert status.exit_code == 2 and "carried credentials" in status.output and "--base-url" in status.output
    status = CliRunner().invoke(main, ["batches", "status", str(out), "--base-url", secret_url])
    assert status.exit_code == 0 and "completed" in status.output and "s3cret" not in status.output
