"""The corpus side: sample, distill, classify shards (local, Ray in local mode, Slurm job), bad shards."""

import gzip
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write_jsonl

from annotator.cli import main
from annotator.llm.probe import PROBE_TEXT

pytest.importorskip("datatrove")
pytest.importorskip("sklearn")
zstandard = pytest.importorskip("zstandard")

CORPUS = FIXTURES / "corpus"  # real documents copied from ../shared/data (see tests/fixtures/README.md)
TEACHER = FIXTURES / "corpus-dev-labels.jsonl"


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def make_shards(root: Path) -> Path:
    """Four good shards in four formats: plain JSONL, JSONL.gz, JSONL.zst and Parquet (290 documents)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wiki.jsonl").write_text((CORPUS / "enwiki.jsonl").read_text())
    with gzip.open(root / "news.jsonl.gz", "wt") as fh:
        fh.write((CORPUS / "news.jsonl").read_text())
    (root / "cc.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress((CORPUS / "cc.jsonl").read_bytes()))
    pd.DataFrame(read(CORPUS / "gsm8k-solutions.jsonl")).to_parquet(root / "math.parquet")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    res = CliRunner().invoke(main, ["distill", str(TEACHER), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def rows(out_dir):
    frames = [pd.read_parquet(p) for p in sorted(Path(out_dir).glob("*.parquet"))]
    return pd.concat(frames).sort_values("id").reset_index(drop=True)


def test_sample_is_stratified_seeded_and_reads_back_the_chosen_documents(tmp_path):
    shards = make_shards(tmp_path / "shards")
    res = run("shards", "sample", shards, "-n", 60, "-o", tmp_path / "s.jsonl", "--seed", 7)
    assert res.exit_code == 0, res.output
    sample = read(tmp_path / "s.jsonl")
    assert len(sample) == 60 and len({r["id"] for r in sample}) == 60
    by_source = pd.Series([r["source"] for r in sample]).value_counts().to_dict()
    # 60 wiki + 120 news + 30 cc + 80 gsm8k = 290 documents, stratified by their source field
    assert len(by_source) >= 4 and by_source["gsm8k"] == pytest.approx(60 * 80 / 290, abs=2.5)
    news = next(v for k, v in by_source.items() if k.startswith("Lee 2005"))
    assert news == pytest.approx(60 * 120 / 290, abs=2.5) and all(v >= 1 for v in by_source.values())
    again = run("shards", "sample", shards, "-n", 60, "-o", tmp_path / "s2.jsonl", "--seed", 7)
    assert again.exit_code == 0 and read(tmp_path / "s2.jsonl") == sample
    run("shards", "sample", shards, "-n", 60, "-o", tmp_path / "s3.jsonl", "--seed", 8)
    assert read(tmp_path / "s3.jsonl") != sample
    assert {"id", "text", "source", "shard", "metadata"} <= set(sample[0])
    # the reservoirs hold places; the second pass reads each chosen document back whole, from its own shard
    from annotator.corpus.shards import Doc, read_shard

    for rec in sample[:12]:
        doc = next(d for d in read_shard(Path(rec["shard"])) if isinstance(d, Doc) and d.id == rec["id"])
        assert doc.text == rec["text"] and (doc.source or "") in (rec["source"], "")


def test_distill_writes_a_model_card_and_ignores_failed_rows(tmp_path, model_dir):
    card = json.loads((model_dir / "card.json").read_text())
    assert card["n_teacher"] == 116 and card["n_heldout"] == 23 and len(card["teacher_hash"]) == 16
    assert card["taxonomy_version"].startswith("slice-taxonomy-v1@") and card["model_id"]
    form = card["dimensions"]["content_form"]
    assert form["accuracy"] > form["majority_baseline"] and 0 <= form["ece"] <= 1
    assert {"accuracy", "macro_f1", "kappa", "support", "low_support"} <= set(card["dimensions"]["genre"])
    assert {"exact_set", "jaccard", "ece"} <= set(card["dimensions"]["operation"])
    assert "tabular_structured" in form["low_support"]  # reported, not dropped
    teacher = read(TEACHER) + [{"id": "bad", "text": "", "status": "failed", "domain": None}]
    write_jsonl(tmp_path / "t.jsonl", teacher)
    res = run("distill", tmp_path / "t.jsonl", "-o", tmp_path / "m2")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m2" / "card.json").read_text())["n_teacher"] == 116
    write_jsonl(tmp_path / "t3.jsonl", [{k: v for k, v in r.items() if k != "genre"} for r in read(TEACHER)])
    res = run("distill", tmp_path / "t3.jsonl", "-o", tmp_path / "m3")
    assert res.exit_code == 2 and "row 0: field 'genre': missing" in res.output


def test_shards_label_mixed_formats_bad_shards_and_resume(tmp_path, model_dir):
    shards = make_shards(tmp_path / "shards")
    news = (shards / "news.jsonl.gz").read_bytes()
    (shards / "corrupt.jsonl.gz").write_bytes(news[: len(news) // 2])  # cut mid-stream
    full = (shards / "math.parquet").read_bytes()
    (shards / "truncated.parquet").write_bytes(full[: len(full) // 2])
    (shards / "lines.jsonl").write_text('{"id": "ok-1", "text": "A short encyclopedia entry."}\n'
                                        "{not json\n"
                                        '{"id": "no-text", "text": ""}\n'
                                        '{"id": "ok-2", "text": "Another short entry."}\n')
    (shards / "binary.jsonl").write_bytes(b'{"id": "b", "text": "caf\xe9"}\n')
    out = tmp_path / "out"
    res = run("shards", "label", shards, "-o", out, "--classifier", model_dir)
    assert res.exit_code == 1, res.output
    manifest = json.loads((out / "manifest.json").read_text())["shards"]
    status = {Path(k).name: v["status"] for k, v in manifest.items()}
    assert status == {"wiki.jsonl": "done", "news.jsonl.gz": "done", "cc.jsonl.zst": "done",
                      "math.parquet": "done", "lines.jsonl": "done", "corrupt.jsonl.gz": "failed",
                      "truncated.parquet": "failed", "binary.jsonl": "done"}
    lines = manifest[str((shards / "lines.jsonl").resolve())]
    assert lines["read"] == 4 and lines["labeled"] == 2 and lines["failed"] == 2
    assert [e["line"] for e in lines["record_errors"]] == [2, 3]
    binary = manifest[str((shards / "binary.jsonl").resolve())]  # one bad line is one bad record
    assert binary["record_errors"][0]["line"] == 1 and "invalid UTF-8" in binary["record_errors"][0]["reason"]
    assert "corrupt.jsonl.gz: unreadable" in manifest[str((shards / "corrupt.jsonl.gz").resolve())]["error"]
    assert "lines.jsonl:2: invalid JSON" in res.output and "truncated.parquet" in res.output
    df = rows(out)
    assert len(df) == 290 + 3 and df.id.is_unique
    assert list(df.columns) == ["id", "domain", "genre", "operation", "content_form", "domain_confidence",
                                "genre_confidence", "operation_confidence", "content_form_confidence", "labeler",
                                "taxonomy_version", "status", "error"]
    failed = df[df.status == "failed"]
    assert list(failed.id) == ["no-text"] and "line 3" in failed.error.iloc[0]
    ok = df[df.status == "ok"]
    assert ok.content_form_confidence.between(0, 1).all() and ok.labeler.str.startswith("classifier:").all()
    assert (ok[ok.id.str.startswith("gsm8k")].genre == "worked_solution").mean() > 0.7
    assert not list(out.glob(".*.tmp"))
    # rerun: only the failed shards are tried again; nothing is duplicated
    res = run("shards", "label", shards, "-o", out, "--classifier", model_dir)
    assert res.exit_code == 1 and "(6 already done, 2 run, 2 failed)" in res.output
    with gzip.open(shards / "corrupt.jsonl.gz", "wt") as fh:
        fh.write('{"id": "fixed", "text": "Now a readable document."}\n')
    (shards / "truncated.parquet").unlink()
    (shards / "binary.jsonl").unlink()
    res = run("shards", "label", shards, "-o", out, "--classifier", model_dir)
    assert res.exit_code == 1 and "(5 already done, 1 run, 0 failed)" in res.output  # lines.jsonl keeps 2 bad records
    df = rows(out)
    assert len(df) == 290 + 3 + 1 and df.id.is_unique and "fixed" in set(df.id)


@pytest.mark.slow
def test_same_rows_on_every_executor_and_ray_local_mode(tmp_path, model_dir):
    ray = pytest.importorskip("ray")
    shards = make_shards(tmp_path / "shards")
    outs = {}
    for name, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"]),
                        ("ray", ["--executor", "ray", "--workers", "2"])):
        res = run("shards", "label", shards, "-o", tmp_path / name, "--classifier", model_dir, *extra)
        assert res.exit_code == 0, res.output
        outs[name] = rows(tmp_path / name)
    ray.shutdown()
    assert len(outs["one"]) == 290
    pd.testing.assert_frame_equal(outs["one"], outs["two"])
    pd.testing.assert_frame_equal(outs["one"], outs["ray"])
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"] == "ray" and manifest["totals"]["labeled"] == 290


def test_the_classifier_is_a_datatrove_step_in_a_users_pipeline(tmp_path, model_dir):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from annotator.corpus.steps import ClassifyDocuments

    shards = make_shards(tmp_path / "shards")
    LocalPipelineExecutor(pipeline=[
        JsonlReader(str(shards), glob_pattern="wiki.jsonl"),
        ClassifyDocuments(str(model_dir)),
        JsonlWriter(str(tmp_path / "labeled"), output_filename="wiki.jsonl", compression=None),
    ], tasks=1, logging_dir=str(tmp_path / "logs")).run()
    got = {r["id"]: r["metadata"] for r in read(tmp_path / "labeled" / "wiki.jsonl")}
    assert len(got) == 60
    run("shards", "label", shards / "wiki.jsonl", "-o", tmp_path / "cmd", "--classifier", model_dir)
    for row in rows(tmp_path / "cmd").itertuples():
        assert got[row.id]["genre"] == row.genre and got[row.id]["operation"] == list(row.operation)
        assert got[row.id]["genre_confidence"] == pytest.approx(row.genre_confidence)


def test_slurm_executor_writes_and_submits_the_job(tmp_path, model_dir, monkeypatch):
    shards = make_shards(tmp_path / "shards")
    res = run("shards", "label", shards, "-o", tmp_path / "out", "--classifier", model_dir, "--executor", "slurm")
    assert res.exit_code == 2 and "needs `sbatch` on PATH" in res.output
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/sbatch.calls\n'
                                    'echo "Submitted batch job 4242"\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    res = run("shards", "label", shards, "-o", tmp_path / "out", "--classifier", model_dir, "--executor", "slurm",
              "--slurm-partition", "batch")
    assert res.exit_code == 0, res.output
    assert "submitted Slurm job 4242 (4 tasks" in res.output
    (logs,) = (tmp_path / "out" / ".datatrove").iterdir()
    script = (logs / "launch_script.slurm").read_text()
    assert "#SBATCH --partition=batch" in script and "#SBATCH --array=0-3" in script
    assert f"launch_pickled_pipeline {logs / 'executor.pik'}" in script and (logs / "executor.pik").is_file()
    assert "RUN_OFFSET=0" in (tmp_path / "sbatch.calls").read_text()


def test_llm_fallback_labels_unsure_documents(tmp_path, model_dir, llm):
    shard = tmp_path / "few.jsonl"
    shard.write_text("".join(json.dumps(r) + "\n" for r in read(CORPUS / "cc.jsonl")[:12]))
    res = run("shards", "label", shard, "-o", tmp_path / "out", "--classifier", model_dir, "--llm-below", 0.9,
              "--base-url", llm.url, "--model", "m", "--cache-dir", tmp_path / "cache")
    assert res.exit_code == 0, res.output
    df = rows(tmp_path / "out")
    by_llm = df[df.labeler == f"127.0.0.1:{llm.port}:m"]
    labeled = [e for e in llm.log() if PROBE_TEXT not in e["user"]]  # --mode auto probes once first
    assert 0 < len(by_llm) <= 12 and len(labeled) == len(by_llm)
    total = json.loads((tmp_path / "out" / "manifest.json").read_text())["totals"]
    assert total["llm"] == len(by_llm) and total["classifier"] + total["llm"] == 12
    conf = df[df.labeler.str.startswith("classifier")][[c for c in df if c.endswith("_confidence")]]
    assert (conf.min(axis=1) >= 0.9).all()


def test_llm_fallback_keeps_one_client_for_every_batch(tmp_path, model_dir, llm):
    """Batches of 2 documents: the unsure ones of every batch ride the connections of one client.

    A client (and event loop) per batch would open new connections for each batch that has an
    unsure document; one session for the run keeps at most ``--concurrency`` connections.
    """
    shard = tmp_path / "few.jsonl"
    shard.write_text("".join(json.dumps(r) + "\n" for r in read(CORPUS / "cc.jsonl")[:12]))
    res = run("shards", "label", shard, "-o", tmp_path / "out", "--classifier", model_dir, "--llm-below", 0.99,
              "--batch-size", 2, "--workers", 1, "--base-url", llm.url, "--model", "m", "--concurrency", 1,
              "--cache-dir", tmp_path / "cache")
    assert res.exit_code == 0, res.output
    labeled = [e for e in llm.log() if PROBE_TEXT not in e["user"]]
    assert len(labeled) >= 4  # unsure documents in several batches
    assert len({e["peer"] for e in labeled}) == 1, "a new connection (a new client) per batch"


@pytest.mark.argilla
def test_audit_sample_of_classified_shards_goes_to_argilla(tmp_path, model_dir, argilla_server, monkeypatch):
    import uuid

    import httpx

    from annotator.stats import wilson

    for key, value in argilla_server.items():
        monkeypatch.setenv(key, value)
    shards = make_shards(tmp_path / "shards")
    out = tmp_path / "labeled"
    assert run("shards", "label", shards, "-o", out, "--classifier", model_dir).exit_code == 0
    name = f"audit-{uuid.uuid4().hex[:6]}"
    res = run("review", "push", out, "--dataset", name, "--guidelines-dir", tmp_path)
    assert res.exit_code == 2 and "--kind corpus --sample N" in res.output
    res = run("review", "push", out, "--kind", "corpus", "--sample", 12, "--dataset", name,
              "--guidelines-dir", tmp_path)
    assert res.exit_code == 0, res.output
    assert f"created argilla/{name}: 12 records" in res.output and "12 audit" in res.output
    sample = pd.read_parquet(out / "audit-12-0.parquet")
    assert len(sample) == 12 and sample.text.str.len().min() > 0 and (sample.kind == "corpus").all()
    url, owner = argilla_server["ARGILLA_API_URL"], {"X-Argilla-Api-Key": argilla_server["ARGILLA_API_KEY"]}
    ds = next(d for d in httpx.get(f"{url}/api/v1/me/datasets", headers=owner).json()["items"] if d["name"] == name)
    questions = {q["id"]: q["name"] for q in
                 httpx.get(f"{url}/api/v1/datasets/{ds['id']}/questions", headers=owner).json()["items"]}
    records = httpx.get(f"{url}/api/v1/datasets/{ds['id']}/records", headers=owner,
                        params={"include": ["suggestions"], "limit": 100}).json()["items"]
    assert {r["metadata"]["audit"] for r in records} == {"yes"} and all(r["fields"]["text"] for r in records)
    for i, rec in enumerate(records[:6]):
        values = {questions[s["question_id"]]: s["value"] for s in rec["suggestions"]}
        if i < 2:  # a reviewer corrects the genre of two documents
            values["genre"] = "academic_paper" if values["genre"] != "academic_paper" else "qa_forum"
        body = {"values": {k: {"value": v} for k, v in values.items()}, "status": "submitted"}
        assert httpx.post(f"{url}/api/v1/records/{rec['id']}/responses", headers=owner, json=body).status_code == 201
    res = run("review", "status", "--dataset", name, "--json")
    assert res.exit_code == 0, res.output
    genre = next(d for d in json.loads(res.output)["dimensions"] if d["dimension"] == "genre")
    assert genre["audit_n"] == 6 and genre["audit_accuracy"] == pytest.approx(4 / 6)
    assert genre["audit_ci95"] == pytest.approx(list(wilson(4, 6)))


def test_a_plan_counts_each_labeled_document_once(tmp_path, model_dir):
    """An audit sample and a pulled review lying in the labeled-shards directory are not counted again."""
    import random

    from annotator.corpus.audit import audit_sample
    from annotator.diagnose.report import slices_report

    shards = make_shards(tmp_path / "shards")
    out = tmp_path / "labeled"
    assert run("shards", "label", shards, "-o", out, "--classifier", model_dir).exit_code == 0
    labeled = rows(out)
    documents = int((labeled.status == "ok").sum())
    sample = audit_sample(out, 12)
    pd.read_parquet(sample).assign(review_status="confirmed").to_parquet(out / "audit.pulled.parquet")
    dev = read(FIXTURES / "dev-labels.jsonl")
    pd.DataFrame(dev).assign(kind="eval", status="ok", review_status="confirmed").to_parquet(tmp_path / "l.parquet")
    rng = random.Random(3)
    pd.DataFrame([{"id": r["id"], "correct": int(rng.random() < (0.05 if "arithmetic" in r["solving_operation"]
                                                                 else 0.85))} for r in dev]).to_csv(tmp_path / "r.csv")
    slices_report(tmp_path / "l.parquet", [tmp_path / "r.csv"], tmp_path / "rep", min_n=5)
    base = ["map", "--report", tmp_path / "rep", "--corpus-labels", out, "-o", tmp_path / "plan", "--allow-unaudited"]
    res = run(*base)
    assert res.exit_code == 0, res.output
    mixture = json.loads((tmp_path / "plan" / "mixture.json").read_text())
    assert mixture["documents"] == documents  # not documents + 12 + 12
    manifest = pd.read_parquet(tmp_path / "plan" / "manifest.parquet")
    assert manifest.id.is_unique and not manifest.file.str.contains("audit").any()
    for bad in (["--budget", 0], ["--budget", -5], ["--max-repeat", -1], ["--max-repeat", 0]):
        res = run(*base, *bad)
        assert res.exit_code == 2 and bad[0] in res.output, res.output


def test_distill_refuses_a_teacher_label_outside_the_taxonomy(tmp_path):
    teacher = read(TEACHER)
    teacher[3]["genre"] = "not_a_genre"
    write_jsonl(tmp_path / "teacher.jsonl", teacher)
    res = run("distill", tmp_path / "teacher.jsonl", "-o", tmp_path / "model")
    assert res.exit_code == 2 and "row 3: field 'genre': 'not_a_genre' is not a label of the taxonomy" in res.output
    assert not (tmp_path / "model" / "card.json").exists()


def test_one_bad_byte_on_the_last_line_loses_only_that_line(tmp_path, model_dir):
    good = (CORPUS / "enwiki.jsonl").read_bytes()
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "wiki.jsonl").write_bytes(good + b'{"id": "last", "text": "caf\xe9 au lait"}\n')
    res = run("shards", "label", tmp_path / "shards", "-o", tmp_path / "out", "--classifier", model_dir)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"]
    (entry,) = manifest.values()
    assert entry["status"] == "done" and entry["labeled"] == len(good.splitlines()), res.output
    assert entry["record_errors"] == [{"line": len(good.splitlines()) + 1, "id": None,
                                       "reason": "invalid UTF-8 at byte 27 of the line"}]
