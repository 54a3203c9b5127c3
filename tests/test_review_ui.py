"""Reviewers in the real Argilla UI (headless Debian Chromium), then a server restart on the same state."""

import os
import stat
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, argilla_down, argilla_up, read_env
from test_review import OPS, Api, labels_file

from annotator.review.pull import pull
from annotator.review.push import push

pytestmark = [pytest.mark.timeout(1500), pytest.mark.argilla, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = ROOT / "test-artifacts"


def browser_or_skip():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    return sync_api


def sign_in(page, url, user):
    """Sign in and wait until the UI has left the sign-in page (the token is stored by then): a
    ``networkidle`` right after the click can resolve before the navigation even starts."""
    page.goto(f"{url}/sign-in", wait_until="networkidle")
    page.fill("input[name=Username]", user)
    page.fill("input[name=Password]", "a-good-password")
    page.click("button:has-text('Sign in')")
    page.wait_for_url(lambda u: "sign-in" not in u, timeout=60000)
    page.wait_for_load_state("networkidle")


def shows(page, text, timeout=60000, reload=False, every=15000):
    """Wait for ``text``. With ``reload``, load the page again every ``every`` ms until it shows (the UI
    lists what the search index answered when the page loaded and does not poll). On failure the error
    carries the URL and what the page showed, and a screenshot is saved under test-artifacts/."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while True:
        left = int((deadline - time.monotonic()) * 1000)
        try:
            page.get_by_text(text).first.wait_for(timeout=max(1000, min(left, every) if reload else left))
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            if time.monotonic() >= deadline:
                break
            page.reload(wait_until="networkidle")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "argilla-timeout.png"))
    raise AssertionError(f"{text!r} not shown after {timeout} ms at {page.url}; the page showed:\n"
                         f"{page.inner_text('body')[:2000]}")


def wait_searchable(url, key, dataset_id, seconds=90):
    """After a restart the search index is rebuilt; the UI lists records only once it answers."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = httpx.post(f"{url}/api/v1/me/datasets/{dataset_id}/records/search", json={},
                       headers={"X-Argilla-Api-Key": key}, timeout=10)
        if r.status_code == 200 and r.json().get("items"):
            return
        time.sleep(1)
    raise AssertionError(f"records of {dataset_id} not searchable {seconds} s after the restart")


def statuses(path):
    return dict(pd.read_parquet(path).set_index("id").review_status)


def test_reviewers_submit_correct_and_discard_in_the_ui_and_a_restart_keeps_everything(
        tmp_path_factory, tmp_path, monkeypatch):
    sync_api = browser_or_skip()
    state = tmp_path_factory.mktemp("argilla-ui")
    env = argilla_up(state)
    try:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        api = Api(env)
        name = f"ui-{uuid.uuid4().hex[:6]}"
        # priorities a 1.7 > b 1.5 > c 1.4 > d 1.3 > e (confident): the queue link shows them in that order
        confidence = {"a": 0.3, "b": 0.5, "c": 0.6, "d": 0.7, "e": 0.95}
        res = push(labels_file(tmp_path / "labels.parquet", confidence=confidence, operations=OPS), name,
                   guidelines_dir=tmp_path)
        ds = api.dataset(name)
        wait_searchable(env["ARGILLA_API_URL"], env["ARGILLA_API_KEY"], ds["id"])  # the UI lists what search finds
        user, _ = api.annotator(ds["workspace_id"])
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                sign_in(page, api.url, user)
                page.goto(res.queue_url, wait_until="networkidle")
                shows(page, "Question a: how many apples?", timeout=120000, reload=True)  # highest priority first
                body = page.inner_text("body")
                page.screenshot(path=str(ARTIFACTS / "argilla-queue.png"))
                page.click("button:has-text('Submit')")                  # untouched
                shows(page, "Question b: how many apples?")
                page.get_by_text("school_math", exact=True).first.click()  # correct the background
                page.click("button:has-text('Submit')")
                shows(page, "Question c: how many apples?")
                page.click("button:has-text('Discard')")
                shows(page, "Question d: how many apples?")
            finally:
                browser.close()
        assert "Priority 1.70" in body and "least confident" in body
        assert "solving_operation: the operations a correct solution performs (1–3, most important first)" in body
        assert "gpt-test/p1" in body and "school_math — " not in body  # short label titles
        out = tmp_path / "confirmed.parquet"
        pull(name, out)
        assert statuses(out) == {"a": "confirmed", "b": "corrected", "c": "discarded", "d": "pending",
                                 "e": "pending"}
        df = pd.read_parquet(out).set_index("id")
        assert list(df.loc["a", "solving_operation"]) == OPS and df.loc["b", "background"] == "school_math"
        _, h2 = api.annotator(ds["workspace_id"])
        api.answer(h2, api.records(ds["id"])["c"]["id"], "none", solving_operation=OPS)
        pull(name, out)
        before = statuses(out)
        assert before["c"] == "conflict"

        # a second argilla-up while it runs changes nothing
        again = subprocess.run([str(ROOT / "scripts" / "argilla-up"), str(state)], capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0 and "already running" in again.stdout and read_env(state / "env") == env
        # stop at night, start in the morning: same credentials, records and responses survive
        argilla_down(state)
        env2 = argilla_up(state)
        assert env2["ARGILLA_API_KEY"] == env["ARGILLA_API_KEY"]
        assert env2["ARGILLA_OWNER_PASSWORD"] == env["ARGILLA_OWNER_PASSWORD"]
        server_log = (state / "server.log").read_text()  # the first run's log is kept, not overwritten
        assert server_log.count("=== argilla-up ") >= 2 and "=== argilla-up " in server_log.splitlines()[0]
        for key, value in env2.items():
            monkeypatch.setenv(key, value)
        pull(name, tmp_path / "after-restart.parquet")
        assert statuses(tmp_path / "after-restart.parquet") == before
        wait_searchable(env2["ARGILLA_API_URL"], env2["ARGILLA_API_KEY"], ds["id"])
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                sign_in(page, env2["ARGILLA_API_URL"], user)
                page.goto(res.queue_url.replace(env["ARGILLA_API_URL"], env2["ARGILLA_API_URL"]),
                          wait_until="networkidle")
                try:
                    shows(page, "how many apples?", timeout=120000, reload=True)
                finally:
                    page.screenshot(path=str(ARTIFACTS / "argilla-after-restart.png"))
            finally:
                browser.close()
        # private state: the directory 0700, every file 0600, no secret in a log
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        for path in state.rglob("*"):
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        logs = "".join(p.read_text(errors="replace") for p in state.glob("*.log"))
        assert env["ARGILLA_API_KEY"] not in logs and env["ARGILLA_OWNER_PASSWORD"] not in logs
    finally:
        argilla_down(state)


def test_a_failed_argilla_up_stops_what_it_started(tmp_path):
    state = tmp_path / "broken"
    state.mkdir()
    (state / "home").write_text("not a directory")  # mkdir of the server home fails after noida-db started
    up = subprocess.run([str(ROOT / "scripts" / "argilla-up"), str(state)], capture_output=True, text=True,
                        timeout=1200)
    assert up.returncode != 0 and "stopping what it started" in up.stderr
    assert not (state / "env").exists() and not (state / "pids").exists()
    alive = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(state) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                alive.append(proc.name)
        except OSError:
            continue
    assert alive == []
