"""Review round trip against a real argilla-server (started by scripts/argilla-up)."""

import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import GateError, ReviewError
from annotator.gate import gate
from annotator.records import Annotation
from annotator.resources import resource_path
from annotator.review import pull, push, review_status
from annotator.review.connect import connect
from annotator.review.layout import MAX_DATASET_GUIDELINES, dataset_guidelines, guidelines
from annotator.review.status import krippendorff_alpha, wilson
from annotator.store import to_table, write_table
from annotator.taxonomy import load_taxonomy

# the first test also starts the server (and, on a fresh machine, installs argilla-server)
pytestmark = pytest.mark.timeout(1500)

TAX = load_taxonomy()
DIMS = TAX.dimensions("eval")
BASE = {"task_type": "math_word_problem", "solving_operation": ["arithmetic"], "output_constraint": "number"}
SUGGESTED = {"a": "none", "b": "everyday", "c": "none", "d": "none", "e": "none"}


def labels_file(path, confidence=None, background=None):
    confidence = confidence or {}
    rows = []
    for rid, bg in (background or SUGGESTED).items():
        conf = confidence.get(rid, 0.9)
        rows.append(Annotation(
            id=rid, source="gsm8k", kind="eval", labels={"background": bg, **BASE},
            confidence={d.id: conf for d in DIMS}, rationale=f"why {rid}", labeler="openai:gpt-test",
            taxonomy_version=TAX.version, prompt_version="p1", status="ok",
            fields={"question": f"Question {rid}: how many apples?", "subset": "main"}))
    rows.append(Annotation(id="f", source="gsm8k", kind="eval", labeler="openai:gpt-test",
                           taxonomy_version=TAX.version, prompt_version="p1", status="failed", error="HTTP 500",
                           fields={"question": "failed one", "subset": "main"}))
    write_table(to_table(rows, DIMS), path)
    return path


class Api:
    def __init__(self, env):
        self.url = env["ARGILLA_API_URL"]
        self.owner = {"X-Argilla-Api-Key": env["ARGILLA_API_KEY"]}

    def annotator(self, workspace_id):
        name = f"ann-{uuid.uuid4().hex[:8]}"
        user = httpx.post(f"{self.url}/api/v1/users", headers=self.owner, json={
            "username": name, "password": "a-good-password", "role": "annotator", "first_name": name}).json()
        r = httpx.post(f"{self.url}/api/v1/workspaces/{workspace_id}/users", headers=self.owner,
                       json={"user_id": user["id"]})
        assert r.status_code == 201, r.text
        return name, {"X-Argilla-Api-Key": user["api_key"]}

    def dataset(self, name):
        items = httpx.get(f"{self.url}/api/v1/me/datasets", headers=self.owner).json()["items"]
        return next(d for d in items if d["name"] == name)

    def records(self, dataset_id):
        got = httpx.get(f"{self.url}/api/v1/datasets/{dataset_id}/records", headers=self.owner,
                        params={"limit": 100, "include": ["suggestions"]}).json()
        return {r["external_id"]: r for r in got["items"]}

    def answer(self, headers, record_id, background=None, status="submitted", **overrides):
        if status == "discarded":
            body = {"values": {}, "status": "discarded"}
        else:
            values = {"background": background, **BASE, **overrides}
            body = {"values": {k: {"value": v} for k, v in values.items()}, "status": status}
        r = httpx.post(f"{self.url}/api/v1/records/{record_id}/responses", headers=headers, json=body)
        assert r.status_code == 201, r.text


@pytest.fixture
def env(argilla_server, monkeypatch):
    for key, value in argilla_server.items():
        monkeypatch.setenv(key, value)
    return argilla_server


def test_round_trip_push_review_pull_status(env, tmp_path):
    api = Api(env)
    name = f"rt-{uuid.uuid4().hex[:6]}"
    path = labels_file(tmp_path / "labels.parquet", confidence={"e": 0.3})
    res = push(path, name, audit_fraction=1.0, guidelines_dir=tmp_path / "review")
    assert res.created and res.pushed == 5 and res.skipped_failed == 1
    assert res.low_confidence == 1 and res.audit == 4
    assert (tmp_path / "review" / "guidelines-eval.md").read_text().count("competition_math") >= 1
    ds = api.dataset(name)
    records = api.records(ds["id"])
    assert set(records) == {"a", "b", "c", "d", "e"}
    meta = records["e"]["metadata"]
    assert meta["priority"] > 1.0 and meta["audit"] == "no" and meta["background_confidence"] == 0.3
    assert records["a"]["metadata"]["audit"] == "yes"
    sugg = {s["question_id"]: s for s in records["a"]["suggestions"]}
    assert len(sugg) == 4 and {s["agent"] for s in sugg.values()} == {"openai:gpt-test/p1"}
    assert {s["score"] for s in sugg.values() if not isinstance(s["score"], list)} == {0.9}

    u1, h1 = api.annotator(ds["workspace_id"])
    u2, h2 = api.annotator(ds["workspace_id"])
    rid = {k: v["id"] for k, v in records.items()}
    api.answer(h1, rid["a"], "none")                # confirms
    api.answer(h2, rid["a"], "none")
    api.answer(h1, rid["b"], "school_math")         # corrects (suggestion was everyday)
    api.answer(h2, rid["b"], "school_math")
    api.answer(h1, rid["c"], "none")                # tie -> conflict
    api.answer(h2, rid["c"], "world_knowledge")
    api.answer(h1, rid["d"], status="discarded")    # discard with empty values

    out = tmp_path / "confirmed.parquet"
    first = pull(name, out)
    assert first.fetched == 5 and first.changed == 5
    df = pd.read_parquet(out).set_index("id")
    assert dict(df.review_status) == {"a": "confirmed", "b": "corrected", "c": "conflict", "d": "discarded",
                                      "e": "pending"}
    assert df.loc["b", "background"] == "school_math" and df.loc["b", "llm_background"] == "everyday"
    assert df.loc["c", "background"] == "none"  # conflicts keep the suggestion
    assert sorted(df.loc["a", "reviewers"]) == sorted([u1, u2]) and list(df.loc["d", "reviewers"]) == [u1]
    assert list(df.loc["a", "solving_operation"]) == ["arithmetic"]
    assert (df.labeler == "openai:gpt-test").all() and (df.prompt_version == "p1").all()

    report = review_status(name)
    bg = report.dimensions[0]
    assert report.review_status == {"confirmed": 1, "corrected": 1, "conflict": 1, "discarded": 1, "pending": 1}
    assert report.reviewers[u1] == {"submitted": 3, "discarded": 1} and report.reviewers[u2] == {"submitted": 3}
    assert bg.n == 2 and bg.llm_accuracy == pytest.approx(0.5)
    assert bg.llm_kappa == pytest.approx(1 / 3)        # by hand: p_o 0.5, p_e 0.25
    assert bg.alpha == pytest.approx(6 / 11)           # by hand: units a, b agree, c disagrees
    assert bg.alpha_units == 3
    assert bg.confusions == [("everyday", "school_math", 1)]
    assert bg.audit_n == 2 and bg.audit_accuracy == pytest.approx(0.5)
    assert bg.audit_ci95 == pytest.approx(wilson(1, 2))
    assert report.dimensions[1].llm_accuracy == 1.0 and report.dimensions[1].alpha == 1.0

    # re-push: idempotent, updates suggestions, keeps responses
    labels_file(path, background={**SUGGESTED, "e": "everyday"})
    again = push(path, name, audit_fraction=1.0, guidelines_dir=tmp_path / "review")
    assert not again.created and again.pushed == 5
    records = api.records(ds["id"])
    assert len(records) == 5
    values = [s["value"] for s in records["e"]["suggestions"]]
    assert "everyday" in values and "none" not in values and len(values) == 4
    second = pull(name, out)
    assert second.changed == 1  # only e changed (its suggestion); responses untouched
    df = pd.read_parquet(out).set_index("id")
    assert df.loc["a", "review_status"] == "confirmed" and df.loc["e", "background"] == "everyday"
    api.answer(h2, rid["d"], "everyday")
    third = pull(name, out)
    assert third.changed == 1 and pd.read_parquet(out).set_index("id").loc["d", "review_status"] == "corrected"

    # the gate in front of the mapping step
    passed, record = gate(pd.read_parquet(out))
    assert sorted(passed.id) == ["a", "b", "d"] and not record.allow_unreviewed
    with pytest.raises(GateError, match="never reviewed"):
        gate(pd.read_parquet(path))
    allowed, record = gate(pd.read_parquet(path), allow_unreviewed=True)
    assert record.allow_unreviewed and set(allowed.gate) == {"unreviewed-allowed"} and len(allowed) == 5


def test_other_taxonomy_version_is_refused_unless_new_version(env, tmp_path):
    name = f"tv-{uuid.uuid4().hex[:6]}"
    push(labels_file(tmp_path / "l.parquet"), name, guidelines_dir=tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text((resource_path("schemas") / "taxonomy-v1.yaml").read_text() + "\n# v1.1\n")
    tax2 = load_taxonomy(other)
    rows = pd.read_parquet(tmp_path / "l.parquet").assign(taxonomy_version=tax2.version)
    rows.to_parquet(tmp_path / "l2.parquet")
    with pytest.raises(ReviewError, match="was built for .*pass --new-version"):
        push(tmp_path / "l2.parquet", name, taxonomy_path=str(other), guidelines_dir=tmp_path)
    res = push(tmp_path / "l2.parquet", name, taxonomy_path=str(other), new_version=True, guidelines_dir=tmp_path)
    assert res.created and res.dataset == f"{name}-{tax2.content_hash[:8]}"


def test_server_down_and_wrong_key_are_clear(env, monkeypatch, tmp_path):
    monkeypatch.setenv("ARGILLA_API_KEY", "argilla.apikey.wrong")
    with pytest.raises(ReviewError, match=r"refused the API key \(401\)"):
        connect()
    monkeypatch.setenv("ARGILLA_API_URL", "http://127.0.0.1:9")
    res = CliRunner().invoke(main, ["review", "status", "--dataset", "x"])
    assert res.exit_code == 2 and "cannot reach Argilla at http://127.0.0.1:9" in res.output


def test_cli_push_pull_status(env, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    path = labels_file(tmp_path / "labels.jsonl")
    runner = CliRunner()
    res = runner.invoke(main, ["review", "push", str(path), "--dataset", name, "--guidelines-dir", str(tmp_path)])
    assert res.exit_code == 0 and f"created argilla/{name}: 5 records" in res.output
    res = runner.invoke(main, ["review", "pull", "--dataset", name, "-o", str(tmp_path / "c.jsonl")])
    assert res.exit_code == 0 and "pending 5" in res.output
    res = runner.invoke(main, ["review", "status", "--dataset", name, "--json"])
    assert res.exit_code == 0 and '"pending": 5' in res.output


def test_guidelines_fit_argilla_and_keep_the_version_marker():
    text = dataset_guidelines(TAX, "eval")
    assert len(text) <= MAX_DATASET_GUIDELINES and TAX.version in text
    assert len(guidelines(TAX, "eval")) > len(text) or "Examples" in text


def test_agreement_helpers_by_hand():
    assert krippendorff_alpha([["a", "a"], ["b", "b"], ["a", "c"]]) == pytest.approx(6 / 11)
    assert krippendorff_alpha([["a"]]) is None and krippendorff_alpha([["a", "a"]]) == 1.0
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_committed_guidelines_match_the_shipped_taxonomy():
    for kind in ("eval", "corpus"):
        committed = (resource_path("review") / f"guidelines-{kind}.md").read_text()
        assert committed == guidelines(TAX, kind), f"regenerate review/guidelines-{kind}.md"


CHROMIUM = "/usr/bin/chromium"


def test_annotator_sees_pushed_record_with_suggestions_in_the_ui(env, tmp_path):
    """End to end in headless Debian Chromium: log in as an annotator, open the dataset."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    api = Api(env)
    name = f"ui-{uuid.uuid4().hex[:6]}"
    push(labels_file(tmp_path / "labels.parquet", confidence={"e": 0.2}), name, guidelines_dir=tmp_path)
    ds = api.dataset(name)
    user, _ = api.annotator(ds["workspace_id"])
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{api.url}/sign-in", wait_until="networkidle")
            page.fill("input[name=Username]", user)
            page.fill("input[name=Password]", "a-good-password")
            page.click("button:has-text('Sign in')")
            page.wait_for_load_state("networkidle")
            page.goto(f"{api.url}/dataset/{ds['id']}/annotation-mode", wait_until="networkidle")
            page.get_by_text("how many apples?").first.wait_for(timeout=30000)
            page.screenshot(path=str(artifacts / "argilla-annotator-view.png"))
            body = page.inner_text("body")
        finally:
            browser.close()
    assert any(f"Question {rid}: how many apples?" in body for rid in SUGGESTED)
    assert "Suggestion" in body and "openai:gpt-test/p1" in body
    assert "none — self-contained symbolic or formal material" in body
