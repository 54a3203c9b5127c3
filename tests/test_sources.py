import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURES, ROOT, write_jsonl
from pydantic import ValidationError

from annotator.errors import BadRecordsError, InputError, TemplateError
from annotator.labeling.scan import check_rejects, labelable, scan
from annotator.labeling.sources import SourceSpec, content_id, read_items
from annotator.records import Item, Reject


@dataclass
class Got:
    items: list[Item]
    rejects: list[Reject]
    duplicate_ids: list[str]
    scan: object


def items(paths, **spec):
    """Both passes of the pipeline over the files: the checking scan, then the labelable items."""
    def source():
        return read_items([str(p) for p in paths], SourceSpec(**spec))

    found = scan(source)
    return Got(list(labelable(source, found)), found.rejects, found.duplicate_ids, found)


def test_jsonl_json_bbh_csv_parquet_in_one_call(tmp_path):
    rows = [{"question": f"q{i}", "answer": i} for i in range(3)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "b.json").write_text(json.dumps(rows))
    pd.DataFrame(rows).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    got = items([tmp_path / "a.jsonl", tmp_path / "b.json", tmp_path / "c.csv", tmp_path / "d.parquet",
                 FIXTURES / "bbh-date-10.json"])
    # identical content in a/b/d hashes to the same id: kept once, reported as duplicates
    assert [i.source for i in got.items][:3] == ["a", "a", "a"]
    assert len(got.duplicate_ids) == 6  # b and d repeat a; the CSV has answer as a string
    assert sum(i.source == "c" for i in got.items) == 3
    bbh = [i for i in got.items if i.source == "bbh-date-10"]
    assert len(bbh) == 10 and bbh[0].text.startswith("Today is Christmas Eve of 1937")
    assert bbh[0].location.endswith("bbh-date-10.json:record 0")
    assert bbh[0].fields["target"] == "(B)"


def test_saved_hf_dataset_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"question": f"what is {i}+{i}?", "idx": i} for i in range(5)])
    ds.save_to_disk(str(tmp_path / "ds"))
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    dd.save_to_disk(str(tmp_path / "dd"))
    got = items([tmp_path / "ds", tmp_path / "dd"], id_field="idx")
    assert [i.id for i in got.items] == ["0", "1", "2", "3", "4"]
    assert got.items[2].text == "what is 2+2?" and got.items[2].location.endswith("row 2")
    assert len(got.duplicate_ids) == 6  # the DatasetDict repeats the same ids


def test_template_renders_several_fields_strictly():
    tpl = "{{ question }}\n{% for c in choices %}{{ 'ABCD'[loop.index0] }}. {{ c }}\n{% endfor %}"
    got = items([FIXTURES / "mmlu-8.jsonl"], template=tpl)
    assert got.items[0].text.splitlines()[1] == "A. True, True"
    bad = items([FIXTURES / "mmlu-8.jsonl"], template="{{ question }} {{ options }}")
    assert len(bad.rejects) == 8 and bad.rejects[0].field == "options"
    assert "mmlu-8.jsonl:1" in bad.rejects[0].message() and "'options' is undefined" in bad.rejects[0].message()
    with pytest.raises(TemplateError, match="--template"):
        items([FIXTURES / "mmlu-8.jsonl"], template="{{ question ")


def test_ids_from_field_or_stable_content_hash(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"k": "x1", "text": "hello"}, {"k": "x2", "text": "world"}])
    by_field = items([tmp_path / "a.jsonl"], id_field="k")
    assert [i.id for i in by_field.items] == ["x1", "x2"]
    hashed = items([tmp_path / "a.jsonl"])
    assert hashed.items[0].id == content_id({"k": "x1", "text": "hello"}) == content_id({"text": "hello", "k": "x1"})
    assert hashed.items[0].id != hashed.items[1].id
    missing = items([tmp_path / "a.jsonl"], id_field="nope")
    assert missing.rejects[0].field == "nope"


def test_bad_records_are_named_by_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"text": "fine", "n": 1}).encode()
    path.write_bytes(b"\n".join([
        good,
        b'{"text": "truncated',                       # line 2: truncated JSON
        b'{"text": "caf\xe9 au lait"}',               # line 3: Latin-1 byte, not UTF-8
        json.dumps({"other": "no text"}).encode(),     # line 4: missing field
        json.dumps({"text": "   "}).encode(),          # line 5: empty text
        b"[1, 2]",                                     # line 6: not an object
    ]) + b"\n")
    got = items([path], text_field="text")
    assert len(got.items) == 1
    msgs = [r.message() for r in got.rejects]
    assert msgs[0].startswith(f"{path}:2:") and "invalid JSON" in msgs[0]
    assert msgs[1].startswith(f"{path}:3:") and "invalid UTF-8" in msgs[1]
    assert msgs[2] == f"{path}:4: field 'text': missing field"
    assert msgs[3] == f"{path}:5: field 'text': empty text"
    assert "not a JSON object" in msgs[4]
    with pytest.raises(BadRecordsError) as err:
        check_rejects(got.scan, "error")
    assert "5 bad record(s); nothing was sent" in str(err.value) and f"{path}:3" in str(err.value)
    check_rejects(got.scan, "skip")  # skip: the good item goes on


def test_empty_file_and_unknown_inputs(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    got = items([tmp_path / "empty.jsonl"])
    assert got.rejects == [Reject(location=str(tmp_path / "empty.jsonl"), reason="empty file: no records")]
    with pytest.raises(BadRecordsError, match="empty file"):
        check_rejects(got.scan, "error")
    with pytest.raises(InputError, match="no items to label"):
        check_rejects(got.scan, "skip")
    with pytest.raises(InputError, match="no such file"):
        items([tmp_path / "missing.jsonl"])
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown input format '.txt'"):
        items([tmp_path / "x.txt"])
    (tmp_path / "latin.json").write_bytes(b'[{"text": "ok"},\n {"text": "\xff"}]')
    with pytest.raises(InputError, match=r"latin.json:2: invalid UTF-8"):
        items([tmp_path / "latin.json"])


def test_auto_detected_text_field_and_clear_error(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"problem": "p1", "solution": "s"}])
    assert items([tmp_path / "a.jsonl"]).items[0].text == "p1"
    write_jsonl(tmp_path / "b.jsonl", [{"body": "x"}, {"text": "second"}, {"body": "y"}])
    got = items([tmp_path / "b.jsonl"])  # the first record names its line like any other
    assert [r.location for r in got.rejects] == [f"{tmp_path / 'b.jsonl'}:1", f"{tmp_path / 'b.jsonl'}:3"]
    assert got.rejects[0].field == "text" and "no text field (looked for text, input" in got.rejects[0].reason
    assert "--text-field" in got.rejects[0].reason and [i.text for i in got.items] == ["second"]


def test_compressed_jsonl_inputs(tmp_path):
    import gzip

    import zstandard

    records = [{"question": f"q{i}"} for i in range(3)] + [{"question": ""}]
    with gzip.open(tmp_path / "HumanEval.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records))
    zst = [{"question": f"z{i}"} for i in range(3)] + [{"question": ""}]
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(r) + "\n" for r in zst).encode()))
    got = items([tmp_path / "HumanEval.jsonl.gz", tmp_path / "b.jsonl.zst"])
    assert [i.text for i in got.items] == ["q0", "q1", "q2", "z0", "z1", "z2"]
    assert {i.source for i in got.items} == {"HumanEval", "b"}
    names = ("HumanEval.jsonl.gz", "b.jsonl.zst")
    assert [r.location for r in got.rejects] == [f"{tmp_path / name}:4" for name in names]
    data = (tmp_path / "HumanEval.jsonl.gz").read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jsonl.gz: unreadable compressed stream"):
        items([tmp_path / "cut.jsonl.gz"])
    bench = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "humaneval" / "HumanEval.jsonl.gz"
    if bench.exists():
        got = items([bench], text_field="prompt")
        assert len(got.items) == 164 and got.items[0].source == "HumanEval"


def test_items_are_typed_records():
    got = items([FIXTURES / "gsm8k-10.jsonl"])
    assert all(isinstance(i, Item) for i in got.items) and len(got.items) == 10
    with pytest.raises(ValidationError):
        got.items[0].text = "changed"  # frozen


def test_the_readmes_template_renders_as_written():
    """The README's MMLU template: one lettered option per line, as the user wrote it (not mashed together)."""
    readme = (ROOT / "README.md").read_text()
    tpl = readme.split("--template '", 1)[1].split("'\n", 1)[0]
    got = items([FIXTURES / "mmlu-8.jsonl"], template=tpl)
    lines = got.items[0].text.splitlines()
    assert lines[1:5] == ["A. True, True", "B. False, False", "C. True, False", "D. False, True"]
