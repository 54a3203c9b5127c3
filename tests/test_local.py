"""The embedded default: a real llama.cpp server with the bundled GGUF model (needs the `local` extra)."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT, write_jsonl
from fakellm import free_port

from annotator.cli import main
from annotator.taxonomy import load_taxonomy

pytest.importorskip("llama_cpp", reason="the embedded model needs the `local` extra")
pytestmark = [pytest.mark.local_llm, pytest.mark.timeout(900)]


def llama_servers() -> dict[int, int]:
    """pid -> parent pid of every running embedded server (``python -m annotator.llm.local``) process."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"annotator.llm.local" in cmd and b"--model" in cmd:
            out[int(proc.name)] = int(stat[1])
    return out


def test_labels_real_samples_with_the_embedded_model(tmp_path):
    before = set(llama_servers())
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "gsm", "text": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                              "clips in May. How many clips did Natalia sell altogether in April and May?"},
        {"id": "bool", "text": "not ( True ) and ( True ) is"},
        {"id": "code", "text": "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n"},
    ])
    res = CliRunner().invoke(main, ["label", str(path), "-o", "out.parquet", "--id-field", "id"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "out.parquet")
    tax = load_taxonomy()
    assert (df.status == "ok").all() and len(df) == 3
    for dim in tax.dimensions("eval"):
        ids = set(dim.label_ids)
        for value in df[dim.id]:
            assert set(value) <= ids and 1 <= len(value) <= 3 if dim.multi else value in ids
    assert (df.labeler == "local:SmolLM2-135M-Instruct.Q4_1.gguf").all()
    summary = json.loads((tmp_path / "out.parquet.summary.json").read_text())
    assert summary["labeler"] == "local:SmolLM2-135M-Instruct.Q4_1.gguf" and summary["ok"] == 3
    assert summary["structured_output"].startswith("structured output ") and "embedded" in summary["structured_output"]
    assert set(llama_servers()) == before, "the llama.cpp server outlived the run"


def test_ctrl_c_stops_the_server(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": f"What is {i} times {i}?"} for i in range(40)])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "annotator.cli", "label", str(path), "-o", "out.parquet"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    child = None
    while time.time() < deadline and child is None:
        child = next((pid for pid, ppid in llama_servers().items() if ppid == proc.pid), None)
        time.sleep(0.2)
    assert child is not None, "no llama.cpp server was started"
    time.sleep(8)  # let it answer a few
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"interrupted" in err
    time.sleep(0.5)
    assert child not in llama_servers()


def test_serve_local_answers_and_stops(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "annotator.cli", "serve-local", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert f"http://127.0.0.1:{port}/v1" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as resp:
            models = json.loads(resp.read())
        assert models["data"][0]["id"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert not [pid for pid, ppid in llama_servers().items() if ppid == proc.pid]


def test_missing_model_file_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["label", str(write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}])),
                                    "-o", "o.parquet", "--model-path", "nope.gguf"])
    assert res.exit_code == 2 and "nope.gguf: model file not found" in res.output


def test_many_small_calls_share_one_embedded_server(tmp_path):
    """The corpus step's --llm-below labels one batch at a time: one session, one embedded server for all."""
    from annotator.config import load_settings
    from annotator.labeling.session import Session
    from annotator.records import Item

    before = set(llama_servers())
    seen = set()
    with Session(load_settings({"kind": "corpus", "cache_dir": str(tmp_path / "cache")})) as session:
        for i in range(3):
            out = list(session.label([Item(id=f"d{i}", source="news", text=f"A short news report number {i}.")]))
            assert [a.status for a in out] == ["ok"]
            seen |= set(llama_servers()) - before
        client = session.tagger.client
    assert len(seen) == 1  # one server process served the three calls
    assert session.counters.requests >= 3 and client is session.tagger.client  # on one client
    assert set(llama_servers()) == before  # and it stopped at the end
