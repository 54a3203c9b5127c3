"""Evidence from the record and consistency within a subset, on real benchmark records.

The records under ``tests/fixtures/records/`` are copies of real ones from ``../shared/data/bench``.
What each admits is what a careful engineer reads off the record: GSM8K's ``#### 18`` is a number,
MMLU's ``answer: 0`` indexes its ``choices``, BBH's ``True`` / ``(B)`` / ``] ]`` / a word list.
"""

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write_jsonl

from annotator.cli import main
from annotator.labeling.evidence import Evidence
from annotator.labeling.sources import SourceSpec, read_items
from annotator.taxonomy import load_taxonomy

RECORDS = FIXTURES / "records"
MMLU_TEMPLATE = "{{ question }}\n{% for c in choices %}{{ 'ABCDEFGHIJ'[loop.index0] }}. {{ c }}\n{% endfor %}"
TAXONOMY = load_taxonomy()


def found(name, spec=None, **kwargs):
    reader = Evidence(TAXONOMY.kinds["eval"].evidence, TAXONOMY.dimensions("eval"), **kwargs)
    return [reader(item) for item in read_items([RECORDS / name], spec or SourceSpec())]


@pytest.mark.parametrize(("name", "spec", "admitted"), [
    ("gsm8k.jsonl", SourceSpec(), ["number"]),
    ("mmlu_redux.jsonl", SourceSpec(template=MMLU_TEMPLATE), ["option_letter"]),
    ("mmlu_redux.jsonl", SourceSpec(text_field="question"), ["option_letter"]),  # choices not shown: still an index
    ("arc_challenge.jsonl", SourceSpec(), ["option_letter"]),
    ("hellaswag.jsonl", SourceSpec(), ["option_letter"]),
    ("bbh_boolean_expressions.json", SourceSpec(), ["boolean"]),
    ("bbh_sports_understanding.json", SourceSpec(), ["boolean"]),
    ("bbh_formal_fallacies.json", SourceSpec(), ["boolean"]),
    ("bbh_date_understanding.json", SourceSpec(), ["option_letter"]),
    ("bbh_object_counting.json", SourceSpec(), ["number"]),
    ("bbh_dyck_languages.json", SourceSpec(), ["exact_sequence"]),
    ("humaneval.jsonl", SourceSpec(), ["code"]),
    ("mbpp.jsonl", SourceSpec(), ["code"]),
    ("ifeval.jsonl", SourceSpec(), ["structured_text"]),
    ("math.jsonl", SourceSpec(), ["number"]),  # the \boxed{} answer inside the solution
])
def test_each_benchmarks_answer_shape_admits_its_output_constraint(name, spec, admitted):
    for f in found(name, spec):
        assert f.admitted["output_constraint"] == admitted, f.said
        assert f.said[0].startswith("benchmark: ")


def test_what_a_record_shows_is_said_and_names_the_subset():
    mmlu = found("mmlu_redux.jsonl", SourceSpec(template=MMLU_TEMPLATE))[0]
    assert mmlu.subset == "abstract_algebra" and mmlu.said[0] == "benchmark: mmlu_redux, subset: abstract_algebra"
    assert "answer field 'answer' is an index into the record's choices (0)" in mmlu.said
    gsm = found("gsm8k.jsonl")[0]
    assert "answer field 'answer' is a number (18)" in gsm.said and gsm.subset == ""
    code = found("humaneval.jsonl")[0]
    assert code.admitted["task_type"] == ["code_generation", "code_comprehension"]
    assert code.admitted["background"] == ["programming"]
    # BBH word_sorting: a list of words (or a short text when only two are sorted) is never an option letter
    for f in found("bbh_word_sorting.json"):
        assert "exact_sequence" in f.admitted["output_constraint"]
        assert "option_letter" not in f.admitted["output_constraint"]
    # DROP's structured answer: a number when it has one, a span otherwise
    drop = found("drop.jsonl")
    assert drop[1].admitted["output_constraint"] == ["number"]
    assert "short_span" in drop[0].admitted["output_constraint"]


def test_without_an_answer_field_the_text_still_speaks():
    spec = SourceSpec(text_field="question")
    bare = found("gsm8k.jsonl", spec, answer_field="no_such_field")[0]
    assert "option_letter" not in bare.admitted["output_constraint"]  # no lettered options in the text
    assert "the item shows no lettered options" in bare.said
    shown = found("mmlu_redux.jsonl", SourceSpec(template=MMLU_TEMPLATE), answer_field="no_such_field")[0]
    assert shown.admitted["output_constraint"] == ["option_letter"]


def test_evidence_rules_are_validated_as_data(tmp_path):
    text = (FIXTURES.parent.parent / "schemas" / "taxonomy-v1.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("admits: {output_constraint: [number]}", "admits: {output_constraint: [numbr]}", 1))
    with pytest.raises(Exception, match=r"answer_shapes.*number.*unknown labels \['numbr'\]"):
        load_taxonomy(bad)
    bad.write_text(text.replace("pattern: '^\\d{1,2}$'", "pattern: '^(\\d{1,2}$'", 1))
    with pytest.raises(Exception, match="option_index.*not a valid regular expression"):
        load_taxonomy(bad)


def run(llm, tmp_path, inputs, *extra, out="labels.parquet"):
    res = CliRunner().invoke(main, ["label", *map(str, inputs), "-o", str(tmp_path / out), "--base-url", llm.url,
                                    "--model", "m", "--mode", "json_schema", *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / f"{out}.summary.json").read_text())
    return pd.read_parquet(tmp_path / out), summary, res.output


def test_an_answer_the_record_contradicts_is_reasked_within_it_and_flagged(llm, tmp_path):
    gsm = RECORDS / "gsm8k.jsonl"
    janet = json.loads(gsm.read_text().splitlines()[0])["question"][:30]
    # the model calls the profit question multiple choice once; its record says the answer is a number
    llm.rules([{"match": janet, "times": 1, "answer": {"output_constraint": "option_letter"}}])
    df, summary, output = run(llm, tmp_path, [gsm])
    assert (df.output_constraint == "number").all()
    flagged = df[df["flags"].fillna("").str.contains("evidence:")]
    assert len(flagged) == 1 and janet in flagged.text.iloc[0]
    assert "output_constraint option_letter contradicts the record" in flagged["flags"].iloc[0]
    assert summary["reasked_by_evidence"] == 1 and summary["requests"] == 21  # 20 items + 1 re-ask
    assert "1 answers contradicted by their record" in output
    log = llm.log()
    assert all("What the record shows" in e["tail"] and "answer field 'answer' is a number" in e["tail"] for e in log)
    # a rerun answers everything from the cache, the contradicted answer included, and flags it again
    llm.reset()
    again, summary2, _ = run(llm, tmp_path, [gsm], out="again.parquet")
    assert llm.log() == [] and summary2["cached"] == 20
    assert list(again["flags"].fillna("")) == list(df["flags"].fillna(""))
    assert (again.output_constraint == "number").all()


def test_no_evidence_sends_the_text_alone(llm, tmp_path):
    df, _, _ = run(llm, tmp_path, [RECORDS / "gsm8k.jsonl"], "--no-evidence")
    assert df.evidence.isna().all() and not any("What the record shows" in e["tail"] for e in llm.log())


def subset_file(tmp_path, n_major, n_minor):
    rows = [{"id": f"r{i}", "subject": "algebra", "question": f"Problem r{i}: solve for x.", "answer": 0,
             "choices": ["1", "2", "3", "4"]} for i in range(n_major + n_minor)]
    return write_jsonl(tmp_path / "sub.jsonl", rows)


def test_outliers_of_a_subset_are_flagged_and_on_request_take_its_majority(llm, tmp_path):
    path = subset_file(tmp_path, 8, 2)
    rules = [{"match": f"Problem r{i}:", "answer": {"task_type": "math_problem" if i < 8 else "logical_puzzle"}}
             for i in range(10)]
    llm.rules(rules)
    df, summary, output = run(llm, tmp_path, [path], "--text-field", "question", "--id-field", "id")
    assert (df.subset == "algebra").all()
    outliers = df[df["flags"].fillna("").str.contains("subset outlier")]
    assert sorted(outliers.id) == ["r8", "r9"] and (outliers.task_type == "logical_puzzle").all()
    assert "task_type logical_puzzle, but 8 of 10 in sub/algebra are math_problem" in outliers["flags"].iloc[0]
    assert summary["subset_outliers"] == 2 and summary["subset_majority_taken"] == 0
    assert summary["subset_uniformity"]["sub/algebra"]["task_type"] == {"majority": "math_problem", "share": 0.8,
                                                                         "n": 10}
    assert "2 unlike their subset" in output
    taken, summary, _ = run(llm, tmp_path, [path], "--text-field", "question", "--id-field", "id",
                            "--subset-majority", out="t.parquet")
    assert (taken.task_type == "math_problem").all() and summary["subset_majority_taken"] == 2
    changed = taken.set_index("id").loc[["r8", "r9"]]
    assert changed["flags"].str.contains("subset majority: task_type logical_puzzle -> math_problem").all()
    assert changed.task_type_confidence.isna().all()


def test_what_the_record_decides_outranks_the_subset_majority(llm, tmp_path):
    # six BBH-style items of one subset: five answers True/False, one answers "(A)"
    rows = [{"input": f"Statement s{i} holds?", "target": "True" if i < 5 else "(A)"} for i in range(6)]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    df, summary, _ = run(llm, tmp_path, [path], "--subset-majority")
    odd = df[df.input == "Statement s5 holds?"].iloc[0]
    assert odd.output_constraint == "option_letter" and "subset" not in str(odd["flags"] or "")
    assert (df[df.input != "Statement s5 holds?"].output_constraint == "boolean").all()
    assert summary["subset_majority_taken"] == 0 and summary["subset_outliers"] == 0
