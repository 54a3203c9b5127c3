"""End-to-end labeling through the real openai client against the loopback server."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, ROOT, write_jsonl

import annotator
from annotator.cli import main
from annotator.llm.probe import PROBE_TEXT
from annotator.taxonomy import load_taxonomy

EVAL_DIMS = ["background", "task_type", "solving_operation", "output_constraint"]


def label(llm, *args, input_path=None, extra=()):
    # requests are counted here, so the mode is pinned (--mode auto's probe is tested in test_probe.py)
    args = [str(input_path or FIXTURES / "gsm8k-10.jsonl"), *args, "--base-url", llm.url,
            "--model", "fake-model", "--mode", "json_schema", *extra]
    return CliRunner().invoke(main, ["label", *args], catch_exceptions=False)


def samples(tmp_path, n, name="s.jsonl"):
    return write_jsonl(tmp_path / name, [{"id": f"item-{i}", "text": f"sample item-{i}: what is {i}+1?"}
                                         for i in range(n)])


def test_output_contract_and_summary(llm, tmp_path):
    res = label(llm, "-o", "out.parquet")
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert len(df) == 10
    expected = ["id", "source", "subset", "kind", "text"]
    for d in EVAL_DIMS:
        expected += [d, f"{d}_confidence"]
    expected += ["rationale", "labeler", "taxonomy_version", "prompt_version", "status", "error", "flags",
                 "evidence"]
    assert list(df.columns[: len(expected)]) == expected
    # GSM8K's answer field ends "#### <number>": the record admits output_constraint number only
    evidence = df.evidence.map(json.loads)
    assert all(e["output_constraint"] == ["number"] and "commonsense_inference" not in e["task_type"]
               for e in evidence)
    assert (df.output_constraint == "number").all() and (df.subset == "").all()
    assert {"question", "answer"} <= set(df.columns)  # input fields kept
    assert list(df.text) == list(df.question)  # the exact text that was labeled
    tax = load_taxonomy()
    for d in EVAL_DIMS:
        ids = set(tax.dimension("eval", d).label_ids)
        for value in df[d]:
            assert (set(value) <= ids and 1 <= len(value) <= 3) if d == "solving_operation" else value in ids
        assert df[f"{d}_confidence"].between(0, 1).all()
    assert (df.status == "ok").all() and df.error.isna().all()
    assert (df.kind == "eval").all() and (df.source == "gsm8k-10").all()
    assert df.labeler.iloc[0] == f"127.0.0.1:{llm.port}:fake-model"
    assert df.taxonomy_version.iloc[0] == tax.version
    summary = json.loads((tmp_path / "out.parquet.summary.json").read_text())
    assert summary["items"] == 10 and summary["ok"] == 10 and summary["requests"] == 10
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
    assert summary["items_per_second"] > 0 and summary["wall_seconds"] > 0
    assert "labels -> out.parquet" in res.output
    # the static system prompt is identical across requests; the item is in the user message
    log = llm.log()
    assert len(log) == 10 and all(e["n_messages"] == 2 for e in log)


def test_jsonl_output_and_no_keep_fields(llm, tmp_path):
    res = label(llm, "-o", "out.jsonl", "--no-keep-fields")
    assert res.exit_code == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and "question" not in rows[0] and isinstance(rows[0]["solving_operation"], list)


def test_rerun_sends_zero_requests_and_version_change_invalidates(llm, tmp_path):
    assert label(llm, "-o", "a.parquet").exit_code == 0
    assert len(llm.log()) == 10
    again = label(llm, "-o", "b.parquet")
    assert len(llm.log()) == 10, "a finished job must not send anything again"
    assert "cached 10" in again.output and "requests 0" in again.output
    pd.testing.assert_frame_equal(pd.read_parquet("a.parquet"), pd.read_parquet("b.parquet"))
    label(llm, "-o", "c.parquet", extra=["--detail", "short"])  # other prompt version: new requests
    assert len(llm.log()) == 20
    assert pd.read_parquet("c.parquet").prompt_version.iloc[0] != pd.read_parquet("a.parquet").prompt_version.iloc[0]


def test_the_same_command_again_finds_its_table_up_to_date(llm, tmp_path):
    path = samples(tmp_path, 6)
    assert label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id"]).exit_code == 0
    first = pd.read_parquet("a.parquet")
    sealed = json.loads(open("a.parquet.summary.json").read())
    assert len(llm.log()) == 6 and sealed["job_fingerprint"] and sealed["table_sha256"]
    # the same command: the table is returned as it is, nothing sent and nothing read from the cache
    again = label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id"])
    assert again.exit_code == 0 and "up to date" in again.output and "requests 0" in again.output
    assert len(llm.log()) == 6
    summary = json.loads(open("a.parquet.summary.json").read())
    assert summary["up_to_date"] and summary["ok"] == 6 and summary["requests"] == 0
    assert summary["job_fingerprint"] == sealed["job_fingerprint"]
    pd.testing.assert_frame_equal(first, pd.read_parquet("a.parquet"))
    # --recheck: every answer from the cache again, validated; still nothing sent
    checked = label(llm, "-o", "a.parquet", "--recheck", input_path=path, extra=["--id-field", "id"])
    assert "cached 6" in checked.output and "up to date" not in checked.output and len(llm.log()) == 6
    # what the table is a function of: a setting, the input, the table itself
    for extra in (["--concurrency", "3"],):  # not in the request: answered from the cache
        changed = label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id", *extra])
        assert "up to date" not in changed.output
    with open(path, "a") as fh:  # one more record: only it is asked
        fh.write(json.dumps({"id": "item-6", "text": "sample item-6: what is 6+1?"}) + "\n")
    grown = label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id"])
    assert "up to date" not in grown.output and "cached 6" in grown.output and len(llm.log()) == 7
    pd.read_parquet("a.parquet").iloc[:3].to_parquet("a.parquet")  # edited since: answered again from the cache
    edited = label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id"])
    assert "up to date" not in edited.output and len(pd.read_parquet("a.parquet")) == 7 and len(llm.log()) == 7


def test_a_run_with_failed_items_is_never_up_to_date(llm, tmp_path):
    llm.rules([{"match": "item-1:", "times": 1, "content": "not json"}])
    path = samples(tmp_path, 3)
    assert label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id", "--reasks", "0"]).exit_code == 1
    assert json.loads(open("a.parquet.summary.json").read())["job_fingerprint"] is None
    rerun = label(llm, "-o", "a.parquet", input_path=path, extra=["--id-field", "id", "--reasks", "0"])
    assert "up to date" not in rerun.output and (pd.read_parquet("a.parquet").status == "ok").all()


def test_429_with_retry_after_and_500_are_retried(llm, tmp_path):
    llm.rules([{"match": "item-1:", "times": 2, "status": 429, "headers": {"Retry-After": "1"}},
               {"match": "item-2:", "times": 2, "status": 500},
               {"match": "item-3:", "times": 1, "drop": True}])
    res = label(llm, "-o", "out.parquet", input_path=samples(tmp_path, 5), extra=["--id-field", "id"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet("out.parquet")
    assert (df.status == "ok").all()
    log = llm.log()
    tries = [e for e in log if "item-1:" in e["user"]]
    assert [e["status"] for e in tries] == [429, 429, 200]
    assert tries[1]["t"] - tries[0]["t"] >= 1.0 and tries[2]["t"] - tries[1]["t"] >= 1.0  # Retry-After honoured
    assert [e["status"] for e in log if "item-2:" in e["user"]] == [500, 500, 200]
    assert [e["status"] for e in log if "item-3:" in e["user"]] == ["dropped", 200]
    summary = json.loads(open("out.parquet.summary.json").read())
    assert summary["retries"] == 5 and summary["requests"] == 10


def test_invalid_answers_are_reasked(llm, tmp_path):
    llm.rules([{"match": "item-0:", "times": 1, "content": '{"background": "none", "trunc'},
               {"match": "item-1:", "times": 1, "answer": {"background": "astrology"}},
               {"match": "item-2:", "times": 1, "answer": {"solving_operation": []}},
               # a repeated label says the label once: kept once, not re-asked (a grammar-constrained
               # model repeats it on every re-ask)
               {"match": "item-3:", "answer": {"solving_operation": ["arithmetic", "state_tracking", "arithmetic"]}}])
    res = label(llm, "-o", "out.parquet", input_path=samples(tmp_path, 4), extra=["--id-field", "id"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet("out.parquet").set_index("id")
    assert (df.status == "ok").all()
    assert df.loc["item-1", "background"] in load_taxonomy().dimension("eval", "background").label_ids
    assert list(df.loc["item-3", "solving_operation"]) == ["arithmetic", "state_tracking"]
    log = llm.log()
    reasks = [e for e in log if e["n_messages"] > 2]
    assert len(reasks) == 3 and len(log) == 7
    assert len([e for e in log if "item-3:" in e["user"]]) == 1
    assert json.loads(open("out.parquet.summary.json").read())["reasks"] == 3


def test_failures_are_written_and_a_rerun_retries_only_them(llm, tmp_path):
    llm.rules([{"match": "item-2:", "status": 500},
               {"match": "item-3:", "answer": {"task_type": "dancing"}}])
    path = samples(tmp_path, 5)
    res = label(llm, "-o", "out.parquet", input_path=path, extra=["--id-field", "id", "--retries", "1",
                                                                  "--reasks", "1"])
    assert res.exit_code == 1
    df = pd.read_parquet("out.parquet").set_index("id")
    assert len(df) == 5
    assert df.loc["item-2", "status"] == "failed" and "HTTP 500" in df.loc["item-2", "error"]
    assert df.loc["item-3", "status"] == "failed" and "dancing" in df.loc["item-3", "error"]
    assert pd.isna(df.loc["item-2", "background"])
    summary = json.loads(open("out.parquet.summary.json").read())
    assert summary["failed"] == 2 and sorted(summary["failed_ids"]) == ["item-2", "item-3"]
    llm.reset()
    res = label(llm, "-o", "out.parquet", input_path=path, extra=["--id-field", "id"])
    assert res.exit_code == 0
    assert sorted(e["user"].split("sample ")[1].split(":")[0] for e in llm.log()) == ["item-2", "item-3"]
    assert (pd.read_parquet("out.parquet").status == "ok").all()


def test_slow_answer_times_out_then_retries(llm, tmp_path):
    llm.rules([{"match": "item-0:", "times": 1, "delay": 3.0}])
    res = label(llm, "-o", "out.parquet", input_path=samples(tmp_path, 2),
                extra=["--id-field", "id", "--timeout", "1"])
    assert res.exit_code == 0, res.output
    assert len([e for e in llm.log() if "item-0:" in e["user"]]) == 2


def test_auth_error_stops_with_clear_message(llm, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-supersecretvalue-1234567890")
    llm.rules([{"match": "", "status": 401}])
    res = label(llm, "-o", "out.parquet")
    assert res.exit_code == 2
    assert "refused the credentials (401)" in res.output
    assert "supersecret" not in res.output


def test_api_key_is_sent_but_never_written(llm, tmp_path, monkeypatch):
    secret = "sk-test-supersecretvalue-1234567890"
    monkeypatch.setenv("MY_KEY", secret)
    res = label(llm, "-o", "out.jsonl", extra=["--api-key-env", "MY_KEY"])
    assert res.exit_code == 0 and secret not in res.output
    assert all(e["auth"] == "Bearer " for e in llm.log())
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_votes_majority_and_distribution(llm, tmp_path):
    res = label(llm, "-o", "out.parquet", input_path=samples(tmp_path, 3), extra=["--votes", "3", "--id-field", "id"])
    assert res.exit_code == 0
    log = llm.log()
    assert len(log) == 9 and sorted({e["seed"] for e in log}) == [0, 1, 2]
    assert {e["temperature"] for e in log} == {0.7}
    df = pd.read_parquet("out.parquet")
    for _, row in df.iterrows():
        votes = json.loads(row["votes"])
        counts = votes["background"]
        assert sum(counts.values()) == 3
        assert counts[row["background"]] == max(counts.values())
        assert row["background_confidence"] == pytest.approx(counts[row["background"]] / 3)


def test_items_per_request_batches_and_retries_missing_alone(llm, tmp_path):
    llm.rules([{"match": "item-5", "times": 1, "omit_ids": ["item-5"]}])
    res = label(llm, "-o", "out.parquet", input_path=samples(tmp_path, 8),
                extra=["--items-per-request", "4", "--id-field", "id"])
    assert res.exit_code == 0, res.output
    log = llm.log()
    batches = [e for e in log if "\nid: item-" in e["user"]]
    singles = [e for e in log if "\nid: item-" not in e["user"]]
    assert len(batches) == 2 and len(singles) == 1 and "item-5:" in singles[0]["user"]
    assert (pd.read_parquet("out.parquet").status == "ok").all()


def test_dry_run_sends_nothing_and_estimates_cost(llm, tmp_path):
    res = label(llm, "-o", "out.parquet", "--dry-run", extra=["--model", "gpt-4o-mini"])
    assert res.exit_code == 0
    assert llm.log() == []
    assert not (tmp_path / "out.parquet.summary.json").exists()  # a dry run writes no outputs
    assert "estimated 10 items" in res.output and "cost $" in res.output


def test_max_cost_stops_cleanly_and_rerun_continues(llm, tmp_path):
    (tmp_path / "prices.yaml").write_text("models:\n  fake-model: {input: 1000.0, output: 1000.0}\n")
    path = samples(tmp_path, 30)
    extra = ["--id-field", "id", "--prices", "prices.yaml", "--concurrency", "2"]
    res = label(llm, "-o", "out.parquet", "--max-cost", "5", input_path=path, extra=extra)
    assert res.exit_code == 1 and "stopped at --max-cost" in res.output
    df = pd.read_parquet("out.parquet")
    done = set(df.id[df.status == "ok"])
    assert 0 < len(done) < 30
    assert df.error[df.status == "failed"].str.contains("max-cost").all()
    first = len(llm.log())
    res = label(llm, "-o", "out.parquet", input_path=path, extra=extra)
    assert res.exit_code == 0
    second = [e["user"].split("sample ")[1].split(":")[0] for e in llm.log()[first:]]
    assert not set(second) & done and len(second) == 30 - len(done)


def test_corpus_kind_and_tools_mode(llm, tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": f"A news article number {i}."} for i in range(4)])
    res = label(llm, "-o", "out.parquet", "--kind", "corpus", "--mode", "tools", input_path=path)
    assert res.exit_code == 0, res.output
    df = pd.read_parquet("out.parquet")
    assert {"domain", "genre", "operation", "content_form"} <= set(df.columns)
    assert (df.kind == "corpus").all()
    tax = load_taxonomy()
    assert set(df.genre) <= set(tax.dimension("corpus", "genre").label_ids)


def test_config_file_and_environment(llm, tmp_path, monkeypatch):
    (tmp_path / "annotator.toml").write_text(f'base_url = "{llm.url}"\nmodel = "from-toml"\nconcurrency = 3\n')
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", "a.parquet"])
    assert res.exit_code == 0, res.output
    assert {e["model"] for e in llm.log()} == {"from-toml"}

    def labeled():  # without the --mode auto probe (one per endpoint and model, remembered in the cache)
        return [e for e in llm.log() if PROBE_TEXT not in e["user"]]

    monkeypatch.setenv("ANNOTATOR_MODEL", "from-env")
    CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", "b.parquet"])
    assert {e["model"] for e in labeled()[10:]} == {"from-env"}
    (tmp_path / "annotator.toml").write_text('api_key = "sk-oops"\n')
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", "c.parquet"])
    assert res.exit_code == 2 and "api_key must not be written in a file" in res.output
    (tmp_path / "annotator.toml").unlink()
    monkeypatch.setenv("OPENAI_BASE_URL", llm.url)
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", "d.parquet", "--no-cache"])
    assert res.exit_code == 0 and len(labeled()) == 30 and len(llm.log()) == 33  # --no-cache: probed again


def test_usage_errors_exit_2(llm, tmp_path):
    res = CliRunner().invoke(main, ["label", "missing.jsonl", "-o", "x.parquet", "--base-url", llm.url,
                                    "--model", "m"])
    assert res.exit_code == 2 and "missing.jsonl: no such file" in res.output
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", "x.parquet",
                                    "--base-url", llm.url])
    assert res.exit_code == 2 and "--model" in res.output
    res = CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", "x.parquet",
                                    "--base-url", llm.url, "--model", "m", "--concurrency", "0"])
    assert res.exit_code == 2 and "concurrency" in res.output


def test_bad_record_policy_error_sends_nothing_skip_writes_rejects(llm, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "good one"}\n{"text": "trunc\n{"text": "caf\xe9"}\n{"text": "good two"}\n')
    res = label(llm, "-o", "out.parquet", input_path=path)
    assert res.exit_code == 2 and f"{path}:2" in res.output and f"{path}:3" in res.output
    assert llm.log() == []
    res = label(llm, "-o", "out.parquet", "--on-bad-record", "skip", input_path=path)
    assert res.exit_code == 0
    rejects = [json.loads(x) for x in (tmp_path / "out.parquet.rejects.jsonl").read_text().splitlines()]
    assert [r["location"] for r in rejects] == [f"{path}:2", f"{path}:3"]
    assert len(pd.read_parquet("out.parquet")) == 2


def test_ten_megabyte_record_is_clipped_not_sent_whole(llm, tmp_path):
    big = "word " * (2 * 1024 * 1024)
    path = write_jsonl(tmp_path / "big.jsonl", [{"text": big}, {"text": "small"}])
    res = label(llm, "-o", "out.parquet", input_path=path, extra=["--no-keep-fields"])
    assert res.exit_code == 0, res.output
    assert max(e["bytes"] for e in llm.log()) < 100_000
    assert (pd.read_parquet("out.parquet").status == "ok").all()


def test_python_api_takes_a_dataframe(llm, tmp_path):
    df = pd.DataFrame({"question": ["2+2?", "capital of France?"], "qid": ["a", "b"]})
    out = annotator.label(df, id_field="qid", base_url=llm.url, model="fake-model", concurrency=2)
    assert list(out.id) == ["a", "b"] and set(EVAL_DIMS) <= set(out.columns)
    assert (out.status == "ok").all() and list(out.question) == ["2+2?", "capital of France?"]


def test_progress_bar_only_when_asked_or_on_a_tty(llm, tmp_path):
    quiet = label(llm, "-o", "a.parquet")
    assert "labeling" not in quiet.output  # not a TTY: quiet
    shown = label(llm, "-o", "b.parquet", "--progress", "--no-cache")
    assert "labeling" in shown.output and "10/10" in shown.output and "item/s" in shown.output


def test_user_taxonomy_with_other_dimensions_labels_end_to_end(llm, tmp_path):
    from test_taxonomy import CUSTOM

    (tmp_path / "tiny.yaml").write_text(CUSTOM)
    res = label(llm, "-o", "out.parquet", extra=["--taxonomy", "tiny.yaml"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet("out.parquet")
    assert {"difficulty", "difficulty_confidence", "skills"} <= set(df.columns)
    assert "background" not in df.columns
    assert set(df.difficulty) <= {"easy", "hard"} and all(set(s) <= {"math", "reading"} for s in df.skills)
    assert df.taxonomy_version.iloc[0].startswith("tiny@")


def test_progress_lines_when_stderr_is_not_a_terminal(llm, tmp_path):
    """A job run from a script or CI prints a plain progress line every few seconds (no bar, no \\r)."""
    llm.reset(latency=0.05)
    rows = [{"question": f"How many apples are there in basket {i}?"} for i in range(150)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, "-m", "annotator.cli", "label", str(path), "-o", str(tmp_path / "o.parquet"),
                           "--base-url", llm.url, "--model", "m", "--mode", "json_schema", "--concurrency", "1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("labeling: ")]
    assert lines and "\r" not in proc.stderr and "items/s" in lines[0] and "/150 items" in lines[0]
    assert lines[-1].startswith("labeling: 150/150 items")
