"""Rate limits: paced from x-ratelimit-* headers or --rpm, against a server that enforces a limit."""

import json
import time

import pytest
from click.testing import CliRunner
from conftest import write_jsonl

from annotator.cli import main
from annotator.llm.ratelimit import parse_reset


@pytest.mark.parametrize(("value", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("17ms", 0.017),
    ("", None), (None, None), ("soon", None), ("5x", None),
])
def test_reset_durations(value, seconds):
    assert parse_reset(value) == (pytest.approx(seconds) if seconds is not None else None)


def _label(llm, tmp_path, n, *extra):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "text": f"rate limited item {i}"} for i in range(n)])
    started = time.perf_counter()
    res = CliRunner().invoke(main, ["label", str(path), "-o", str(tmp_path / "out.parquet"), "--id-field", "id",
                                    "--base-url", llm.url, "--model", "fake-model", "--concurrency", "16", *extra])
    wall = time.perf_counter() - started
    summary = json.loads((tmp_path / "out.parquet.summary.json").read_text()) if res.exit_code in (0, 1) else {}
    return res, summary, wall, llm.stats()


def test_paced_from_headers_stays_under_the_limit(llm, tmp_path):
    llm.reset(latency=0.05, rpm=600)  # 10 requests/s, a burst of 10
    res, summary, wall, stats = _label(llm, tmp_path, 60)
    assert res.exit_code == 0, res.output
    assert summary["ok"] == 60
    assert stats["rejected"] <= 3, stats  # <= 5%
    assert wall >= (60 - 10) / 10 * 0.9  # it did wait: the limit, not the concurrency, set the pace


def test_paced_by_hand_when_the_provider_sends_no_headers(llm, tmp_path):
    llm.reset(latency=0.05, rpm=600, limit_headers=False)
    res, summary, _, stats = _label(llm, tmp_path, 40, "--rpm", "600")
    assert res.exit_code == 0 and summary["ok"] == 40
    assert stats["rejected"] <= 2, stats


def test_fixed_concurrency_discovers_the_limit_through_429s(llm, tmp_path):
    llm.reset(latency=0.05, rpm=600)
    res, summary, _, stats = _label(llm, tmp_path, 40, "--no-pace")
    assert summary["ok"] + summary["failed"] == 40
    assert stats["rejected"] >= 6 and summary["throttled"] == stats["rejected"], (stats, summary)
    assert "rate-limited" in res.output


def test_token_limits_are_paced_too(llm, tmp_path):
    llm.reset(latency=0.05, tpm=60 * 8000)  # ~8,000 tokens/s: about 3 requests of this prompt per second
    res, summary, wall, stats = _label(llm, tmp_path, 20)
    assert res.exit_code == 0 and summary["ok"] == 20, res.output
    assert stats["rejected"] <= 1, stats
    assert wall >= 3.0  # the token limit, not the concurrency of 16, set the pace
