"""Review round trip against a real argilla-server (started by scripts/argilla-up)."""

import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("argilla", reason="the review extra (argilla) is not installed")

from annotator.cli import main  # noqa: E402
from annotator.config import resource_path  # noqa: E402
from annotator.errors import GateError, ReviewError  # noqa: E402
from annotator.labeling.store import to_table, write_table  # noqa: E402
from annotator.records import Annotation  # noqa: E402
from annotator.review.connect import connect  # noqa: E402
from annotator.review.gate import gate  # noqa: E402
from annotator.review.pull import pull  # noqa: E402
from annotator.review.push import push  # noqa: E402
from annotator.review.status import review_status  # noqa: E402
from annotator.stats import wilson  # noqa: E402
from annotator.taxonomy import load_taxonomy  # noqa: E402

# the first test also starts the server (and, on a fresh machine, installs argilla-server)
pytestmark = [pytest.mark.timeout(1500), pytest.mark.argilla]

TAX = load_taxonomy()
DIMS = TAX.dimensions("eval")
BASE = {"task_type": "math_word_problem", "solving_operation": ["arithmetic"], "output_constraint": "number"}
SUGGESTED = {"a": "none", "b": "everyday", "c": "none", "d": "none", "e": "none"}


def labels_file(path, confidence=None, background=None, operations=None):
    confidence = confidence or {}
    rows = []
    for rid, bg in (background or SUGGESTED).items():
        conf = confidence.get(rid, 0.9)
        ops = {"solving_operation": operations} if operations else {}
        rows.append(Annotation(
            id=rid, source="gsm8k", kind="eval", text=f"Question {rid}: how many apples?",
            labels={"background": bg, **BASE, **ops},
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
        return r.json()["id"]

    def delete(self, path):
        r = httpx.delete(f"{self.url}/api/v1/{path}", headers=self.owner)
        assert r.status_code == 200, r.text


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
    got = httpx.get(f"{api.url}/api/v1/me/datasets/{ds['id']}/metadata-properties", headers=api.owner).json()
    props = got["items"] if isinstance(got, dict) and "items" in got else got
    hidden = {p["name"] for p in props if not p.get("visible_for_annotators", True)}
    assert {"labeler", "prompt_version"} <= hidden  # reviewers never see the endpoint's host and port
    sugg = {s["question_id"]: s for s in records["a"]["suggestions"]}
    assert len(sugg) == 5 and {s["agent"] for s in sugg.values()} == {"gpt-test/p1"}  # 4 dimensions + primary
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
    assert "everyday" in values and "none" not in values and len(values) == 5
    second = pull(name, out)
    assert second.changed == 1  # only e changed (its suggestion); responses untouched
    df = pd.read_parquet(out).set_index("id")
    assert df.loc["a", "review_status"] == "confirmed" and df.loc["e", "background"] == "everyday"
    api.answer(h2, rid["d"], "everyday")  # u1 discarded d, u2 submits it: disputed
    third = pull(name, out)
    d = pd.read_parquet(out).set_index("id").loc["d"]
    assert third.changed == 1 and d.review_status == "conflict" and d.background == "none"
    assert list(d["flags"]) == [f"disputed: submitted by {u2}; discarded by {u1}"]

    # a second review pass: --min-submitted 2 on the existing dataset takes effect
    assert api.dataset(name)["distribution"]["min_submitted"] == 1
    push(path, name, min_submitted=2, guidelines_dir=tmp_path / "review")
    assert api.dataset(name)["distribution"]["min_submitted"] == 2

    # the gate in front of the mapping step
    passed, record = gate(pd.read_parquet(out))
    assert sorted(passed.id) == ["a", "b"] and not record.allow_unreviewed
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


OPS = ["temporal_reasoning", "arithmetic"]  # LLM order; the UI stores ["arithmetic", "temporal_reasoning"]
UI_ORDER = ["arithmetic", "temporal_reasoning"]


def test_statuses_follow_what_reviewers_did(env, tmp_path):
    """UI-ordered multi-label answers, the primary question, too many labels, submit-vs-discard."""
    api = Api(env)
    name = f"st-{uuid.uuid4().hex[:6]}"
    push(labels_file(tmp_path / "l.parquet", operations=OPS), name, audit_fraction=1.0, guidelines_dir=tmp_path)
    ds = api.dataset(name)
    rid = {k: v["id"] for k, v in api.records(ds["id"]).items()}
    questions = httpx.get(f"{api.url}/api/v1/datasets/{ds['id']}/questions", headers=api.owner).json()["items"]
    by_name = {q["name"]: q for q in questions}
    assert by_name["solving_operation"]["title"].endswith("(1–3, most important first)")
    assert not by_name["solving_operation_primary"]["required"]
    assert {o["text"] for o in by_name["background"]["settings"]["options"]} == set(TAX.dimension(
        "eval", "background").label_ids)  # short titles; descriptions in the tooltip
    assert "school_math: grade-school" in by_name["background"]["description"]
    u1, h1 = api.annotator(ds["workspace_id"])
    u2, h2 = api.annotator(ds["workspace_id"])
    untouched = {"solving_operation": UI_ORDER, "solving_operation_primary": "temporal_reasoning"}
    api.answer(h1, rid["a"], "none", **untouched)                                     # untouched -> confirmed
    api.answer(h1, rid["b"], "everyday", solving_operation=UI_ORDER,
               solving_operation_primary="arithmetic")                                 # reordered -> corrected
    api.answer(h1, rid["c"], "none", solving_operation=UI_ORDER + ["state_tracking", "counting_combinatorics"],
               solving_operation_primary="temporal_reasoning")                         # 4 of max 3 -> invalid
    api.answer(h1, rid["d"], "none", **untouched)                                     # submit + discard
    api.answer(h2, rid["d"], status="discarded")
    out = tmp_path / "c.parquet"
    pull(name, out)
    df = pd.read_parquet(out).set_index("id")
    assert dict(df.review_status) == {"a": "confirmed", "b": "corrected", "c": "invalid", "d": "conflict",
                                      "e": "pending"}
    assert list(df.loc["a", "solving_operation"]) == OPS
    assert list(df.loc["b", "solving_operation"]) == UI_ORDER
    assert list(df.loc["c", "flags"]) == [f"{u1}: solving_operation has 4 labels; the taxonomy allows at most 3"]
    assert list(df.loc["c", "solving_operation"]) == OPS  # not silently accepted
    report = review_status(name)
    ops = next(d for d in report.dimensions if d.dimension == "solving_operation")
    assert ops.n == 2 and ops.llm_accuracy == pytest.approx(0.5)  # a kept, b reordered
    # whole answers, so a reordered (or extended) multi-label answer shows what changed
    assert ops.confusions == [("temporal_reasoning + arithmetic", "arithmetic + temporal_reasoning", 1)]
    assert report.reviewers[u2] == {"discarded": 1} and report.reviewers[u1] == {"submitted": 4}
    assert set(report.attention) == {"c", "d"} and "disputed" in report.attention["d"][0]


def test_incremental_pull_equals_a_full_pull_after_every_kind_of_change(env, tmp_path):
    api = Api(env)
    name = f"inc-{uuid.uuid4().hex[:6]}"
    path = labels_file(tmp_path / "l.parquet")
    push(path, name, guidelines_dir=tmp_path)
    ds = api.dataset(name)
    rid = {k: v["id"] for k, v in api.records(ds["id"]).items()}
    _, h1 = api.annotator(ds["workspace_id"])
    response_a = api.answer(h1, rid["a"], "school_math")
    api.answer(h1, rid["b"], "everyday")
    out = tmp_path / "incremental.parquet"
    pull(name, out)

    def same_as_full(step):
        res = pull(name, out)
        full = tmp_path / f"full-{step}.parquet"
        pull(name, full)
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(full))
        return res, pd.read_parquet(out).set_index("id")

    api.delete(f"responses/{response_a}")                   # record a back to pending
    res, df = same_as_full("deleted-response")
    assert res.changed == 1 and df.loc["a", "review_status"] == "pending"
    labels_file(path, background={**SUGGESTED, "b": "language"})  # new suggestion, same confidence
    push(path, name, guidelines_dir=tmp_path)
    res, df = same_as_full("repushed-suggestion")
    assert df.loc["b", "llm_background"] == "language" and df.loc["b", "review_status"] == "corrected"
    api.delete(f"records/{rid['e']}")                       # a record deleted in Argilla
    res, df = same_as_full("deleted-record")
    assert res.removed == 1 and "e" not in df.index and len(df) == 4


def test_a_table_labeled_from_two_benchmarks_pushes_pulls_and_seeds_fewshot(env, llm, tmp_path):
    """GSM8K (question) + BBH (input) in one table: the text column carries each item's text."""
    from annotator.labeling.fewshot import load_pool

    examples = Path(__file__).resolve().parent.parent / "examples"
    runner = CliRunner()
    res = runner.invoke(main, ["label", str(examples / "gsm8k-10.jsonl"), str(examples / "bbh-boolean-10.json"),
                               "-o", str(tmp_path / "labels.parquet"), "--base-url", llm.url, "--model", "m"])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(tmp_path / "labels.parquet")
    assert table.text.notna().all() and table.question.isna().sum() == 10 and table.input.isna().sum() == 10
    name = f"mix-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(main, ["review", "push", str(tmp_path / "labels.parquet"), "--dataset", name,
                               "--guidelines-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "annotation-mode?sort=metadata.priority.desc" in res.output
    api = Api(env)
    ds = api.dataset(name)
    records = api.records(ds["id"])
    assert {r["fields"]["text"] for r in records.values()} == set(table.text)
    _, h1 = api.annotator(ds["workspace_id"])
    for row in table.head(5).itertuples():
        values = {d.id: getattr(row, d.id) for d in DIMS}
        values["solving_operation"] = list(values["solving_operation"])
        api.answer(h1, records[row.id]["id"], **values)
    pull(name, tmp_path / "confirmed.parquet")
    pulled = pd.read_parquet(tmp_path / "confirmed.parquet").set_index("id")
    assert (pulled.text == table.set_index("id").text.loc[pulled.index]).all()
    pool = load_pool(tmp_path / "confirmed.parquet", DIMS)
    assert len(pool) == 5 and {p.text for p in pool} <= set(table.text)
