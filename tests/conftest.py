"""Shared fixtures: the loopback OpenAI-compatible server and an isolated environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakellm import FakeServer, start_fake  # noqa: F401  (re-exported for tests)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


def argilla_up(state: Path) -> dict[str, str]:
    """Run scripts/argilla-up on ``state``; the environment it writes (stops what it started on failure)."""
    up = subprocess.run([str(ROOT / "scripts" / "argilla-up"), str(state)], capture_output=True, text=True,
                        timeout=1200)
    if up.returncode != 0:
        argilla_down(state)
        raise RuntimeError(f"argilla-up failed:\n{up.stdout}\n{up.stderr}")
    return read_env(state / "env")


def argilla_down(state: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "argilla-down"), str(state)], timeout=120)


@pytest.fixture(scope="session")
def argilla_server(tmp_path_factory):
    """A real argilla-server started by the project's own scripts/argilla-up (stopped afterwards)."""
    state = tmp_path_factory.mktemp("argilla")
    env = argilla_up(state)
    try:
        yield env
    finally:
        argilla_down(state)
