"""Streaming: the tagger reads a bounded window ahead, hands rows out in input order, and the
writer's parts join into one table whatever types the input fields have in each part."""

import json

import pyarrow.parquet as pq
from click.testing import CliRunner
from conftest import write_jsonl

from annotator.cli import main
from annotator.labeling.planning import TagOptions
from annotator.labeling.prompts import PromptSet
from annotator.labeling.scan import scan
from annotator.labeling.store import TableWriter, read_table
from annotator.labeling.tagging import Tagger
from annotator.llm import EndpointConfig, LLMClient
from annotator.llm.cache import AnswerCache
from annotator.records import Annotation, Item
from annotator.taxonomy import load_taxonomy


def test_the_tagger_reads_only_a_window_ahead_and_keeps_input_order(llm):
    llm.rules([{"match": "sample 3 ", "delay": 1.0}])  # an early item finishes last
    tax = load_taxonomy()
    pulled = [0]

    def items():
        for i in range(600):
            pulled[0] += 1
            yield Item(id=f"s{i}", text=f"sample {i} of the stream", source="t")

    tagger = Tagger(LLMClient(EndpointConfig(base_url=llm.url, model="fake-model"), concurrency=8), tax,
                    PromptSet(tax, "eval"), AnswerCache(None), TagOptions(concurrency=8, window=16))
    out, pulled_at_first = [], None
    for annotation in tagger.run(items()):
        if pulled_at_first is None:
            pulled_at_first = pulled[0]
        out.append(annotation)
    assert [a.id for a in out] == [f"s{i}" for i in range(600)]
    assert all(a.status == "ok" for a in out)
    # the first row came out after one chunk was read, not the whole input
    assert pulled_at_first is not None and pulled_at_first <= 128, pulled_at_first
    assert tagger.state.answers == {} and tagger.planner.pending == 0  # nothing kept for finished items


def test_a_consumer_that_stops_early_stops_the_requests(llm):
    tax = load_taxonomy()
    tagger = Tagger(LLMClient(EndpointConfig(base_url=llm.url, model="fake-model"), concurrency=4), tax,
                    PromptSet(tax, "eval"), AnswerCache(None), TagOptions(concurrency=4, window=8))
    stream = tagger.run(Item(id=f"e{i}", text=f"early stop {i}", source="t") for i in range(5000))
    first = [next(stream) for _ in range(10)]
    stream.close()
    assert [a.id for a in first] == [f"e{i}" for i in range(10)]
    assert len(llm.log()) < 200  # the rest of the 5,000 items was never sent


def _row(i: int, extra) -> Annotation:
    return Annotation(id=f"r{i}", source="t", kind="eval", text=f"text {i}", labeler="x", taxonomy_version="v",
                      prompt_version="p", status="ok", labels={"background": "math_competition"},
                      fields={"extra": extra, **({"only_late": i} if i >= 6 else {})})


def test_parts_with_different_field_types_join_into_one_table(tmp_path):
    dims = [d for d in load_taxonomy().dimensions("eval") if d.id == "background"]
    values = [1, 2, 3, "a", "b", None, {"k": 1}, {"k": 2}]  # ints, strings, then objects: one per part
    for name in ("labels.parquet", "labels.jsonl"):
        writer = TableWriter(tmp_path / name, dims, rows_per_part=3)
        for i, v in enumerate(values):
            writer.add(_row(i, v))
        assert len(list((tmp_path / f"{name}.parts").iterdir())) == 2  # written while rows arrive
        assert not (tmp_path / name).exists()
        writer.commit()
        assert not (tmp_path / f"{name}.parts").exists()
        table = read_table(tmp_path / name).to_pylist()
        assert [r["id"] for r in table] == [f"r{i}" for i in range(8)]
        extras = [r["extra"] for r in table]
        assert extras[:3] == ["1", "2", "3"] and extras[3:6] == ["a", "b", None]
        assert json.loads(extras[6]) == {"k": 1}
        assert [r.get("only_late") for r in table] == [None] * 6 + [6, 7]
    assert pq.read_metadata(tmp_path / "labels.parquet").num_rows == 8


def test_the_checking_pass_names_repeats_exactly(tmp_path):
    rows = [{"id": f"x{i}", "text": f"t{i}"} for i in range(1000)]
    rows += [{"id": "x5", "text": "t5"}, {"id": "x7", "text": "other"}, {"id": "x5", "text": "t5"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    from annotator.labeling.sources import SourceSpec, read_items

    found = scan(lambda: read_items([str(path)], SourceSpec(id_field="id")))
    assert found.items == 1003 and found.labelable == 1000
    assert found.duplicate_ids == ["x5", "x5"]
    assert [r.message() for r in found.rejects] == [
        f"{path}:1002: field 'id': duplicate id 'x7' with different content (first at {path}:8)"]


def test_a_stale_parts_folder_from_a_killed_run_is_replaced(llm, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"p{i}", "text": f"stale parts {i}"} for i in range(20)])
    stale = tmp_path / "out.parquet.parts"
    stale.mkdir()
    (stale / "part-00000.parquet").write_text("left by a killed run")
    res = CliRunner().invoke(main, ["label", str(path), "-o", str(tmp_path / "out.parquet"), "--id-field", "id",
                                    "--base-url", llm.url, "--model", "fake-model"])
    assert res.exit_code == 0, res.output
    assert not stale.exists()
    assert read_table(tmp_path / "out.parquet").num_rows == 20
