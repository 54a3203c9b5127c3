"""--mode auto: the probe finds the structured-output mode and prompt size the endpoint accepts;
confidences outside 0..1 are clipped and flagged. Against the loopback server, and (local_llm)
against llama.cpp's own OpenAI-compatible server as an external --base-url."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write_jsonl

from annotator.cli import main
from annotator.llm.probe import PROBE_TEXT, context_in


def label(url, tmp_path, out="out.parquet", *extra, model="fake-model"):
    return CliRunner().invoke(main, ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(tmp_path / out),
                                     "--base-url", url, "--model", model, *map(str, extra)])


def probes(llm):
    return [e for e in llm.log() if PROBE_TEXT in e["user"]]


def test_refused_mode_and_small_context_fall_back_to_tools_and_the_short_prompt(llm, tmp_path):
    llm.reset(reject_modes=["json_schema"], context=2000)  # as llama.cpp's server: 500, then "exceed context"
    res = label(llm.url, tmp_path)
    assert res.exit_code == 0, res.output
    assert "structured output tools, short prompt, context 2000 tokens" in res.output
    assert "json_schema: HTTP 500" in res.output and "response_format type must be text" in res.output
    assert (pd.read_parquet(tmp_path / "out.parquet").status == "ok").all()
    # json_schema refused (a 500, retried once: it could be a blip), tools with the full prompt overflowed,
    # tools with the short prompt answered
    assert len(probes(llm)) == 4
    before = len(llm.log())
    res = label(llm.url, tmp_path, "again.parquet")  # the choice and every answer are remembered
    assert res.exit_code == 0 and len(llm.log()) == before and "structured output tools" in res.output


def test_a_context_the_server_tells_is_used_without_trying_the_full_prompt(llm, tmp_path):
    llm.reset(context=2000, tell_context=True)  # /v1/models says max_model_len, as vLLM does
    res = label(llm.url, tmp_path)
    assert res.exit_code == 0, res.output
    assert "structured output json_schema, short prompt, context 2000 tokens" in res.output
    assert len(probes(llm)) == 1


def test_no_usable_mode_stops_before_labeling(llm, tmp_path):
    llm.reset(reject_modes=["json_schema", "tools", "json"])
    res = label(llm.url, tmp_path)
    assert res.exit_code == 2 and "no structured-output mode gave a usable answer" in res.output
    assert "--mode" in res.output and len(llm.log()) == 6 and not (tmp_path / "out.parquet").exists()


def test_a_confidence_outside_0_1_is_clipped_and_flagged(llm, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"c{i}", "text": f"confident item {i}"} for i in range(3)])
    llm.rules([{"match": "confident item 1", "answer": {"task_type_confidence": 2.5, "background_confidence": 100}}])
    res = CliRunner().invoke(main, ["label", str(path), "-o", str(tmp_path / "o.parquet"), "--id-field", "id",
                                    "--base-url", llm.url, "--model", "fake-model"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "o.parquet").set_index("id")
    assert (df.status == "ok").all()
    assert df.loc["c1", "task_type_confidence"] == 1.0 and df.loc["c1", "background_confidence"] == 1.0
    assert df.loc["c1", "flags"] == "background_confidence 100 clipped; task_type_confidence 2.5 clipped"
    assert df["flags"].isna().sum() == 2


def test_context_lengths_servers_state():
    assert context_in({"data": [{"id": "m", "max_model_len": 8192}]}, "m") == 8192  # vLLM
    assert context_in({"data": [{"id": "x/y", "context_length": 131072}, {"id": "m"}]}, "x/y") == 131072  # OpenRouter
    assert context_in({"data": [{"id": "m", "meta": {"n_ctx_train": 4096}}]}, "m") == 4096  # llama.cpp
    assert context_in({"default_generation_settings": {"n_ctx": 2048}}, "m") == 2048  # llama.cpp /props
    assert context_in({"data": [{"id": "a"}, {"id": "b"}]}, "m") is None  # OpenAI: not told


@pytest.mark.local_llm
@pytest.mark.timeout(900)
def test_llama_cpp_server_as_an_external_endpoint(tmp_path):
    pytest.importorskip("llama_cpp", reason="needs the `local` extra")
    from annotator.config import Settings
    from annotator.llm.local import LocalServer

    with LocalServer.from_settings(Settings()) as server:
        res = label(server.base_url, tmp_path, "out.parquet", "--concurrency", 1, model=server.model_name)
    assert res.exit_code in (0, 1), res.output
    assert "structured output tools" in res.output and "json_schema: HTTP 500" in res.output, res.output
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert (df.status == "ok").sum() >= 8, df.error.tolist()
    summary = json.loads((tmp_path / "out.parquet.summary.json").read_text())
    assert summary["structured_output"].startswith("structured output tools")
    conf = df.loc[df.status == "ok", [c for c in df.columns if c.endswith("_confidence")]].stack().dropna()
    assert len(conf) and conf.between(0, 1).all()  # out-of-range answers (2.5, 100) were clipped and flagged
