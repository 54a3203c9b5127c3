"""Shared fixtures: the loopback OpenAI-compatible server and an isolated environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class FakeServer:
    """Handle on the fake LLM subprocess: base URL, scripted rules, request log."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port = port
        self.proc = proc
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"

    def reset(self, latency: float = 0.0) -> None:
        _http("POST", f"{self.root}/_control/reset", {"latency": latency})

    def rules(self, rules: list[dict[str, Any]]) -> None:
        _http("POST", f"{self.root}/_control/rules", rules)

    def log(self) -> list[dict[str, Any]]:
        return _http("GET", f"{self.root}/_control/log")


def start_fake(latency_ms: float = 0.0) -> FakeServer:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakellm.py"), "--port", str(port), "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = FakeServer(port, proc)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            _http("GET", f"{server.url}/models")
            return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake LLM server did not start")


@pytest.fixture(scope="session")
def fake_server():
    server = start_fake()
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=10)


@pytest.fixture
def llm(fake_server: FakeServer) -> FakeServer:
    fake_server.reset()
    return fake_server


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user config, key or cache leaks into a test; each test works in its own folder."""
    for name in ("ANNOTATOR_BASE_URL", "OPENAI_BASE_URL", "ANNOTATOR_MODEL", "ANNOTATOR_CONFIG",
                 "OPENAI_API_KEY", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANNOTATOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real ``annotator`` console script in a subprocess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "annotator.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
