"""The embedded default on two real files it was never tuned on, as a newcomer labels them.

20 GSM8K test records as they are and 20 MMLU-Redux abstract_algebra records through the README's
own ``--template`` (copies under ``tests/fixtures/records/``). Before the record's evidence, the
135M model called a third of the GSM8K items ``option_letter`` or ``boolean`` and most of the
abstract-algebra items ``boolean`` (their options read "True, True / False, False"); with a GSM8K
drop planted and MMLU unchanged, the slice report's top finding was ``output_constraint=
option_letter`` — carried by mislabeled GSM8K items, a confident and wrong verdict.
"""

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write_jsonl

from annotator.cli import main

pytest.importorskip("llama_cpp", reason="the embedded model needs the `local` extra")
pytestmark = [pytest.mark.local_llm, pytest.mark.slow, pytest.mark.timeout(900)]

README_TEMPLATE = '{{ question }}{% for c in choices %}\n{{ "ABCDEFGHIJ"[loop.index0] }}. {{ c }}{% endfor %}'
RECORDS = FIXTURES / "records"


def test_a_planted_gsm8k_drop_is_never_read_as_an_option_letter_problem(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["label", str(RECORDS / "gsm8k.jsonl"), "-o", str(tmp_path / "gsm.parquet")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["label", str(RECORDS / "mmlu_redux.jsonl"), "-o", str(tmp_path / "mmlu.parquet"),
                               "--template", README_TEMPLATE])
    assert res.exit_code == 0, res.output
    gsm, mmlu = pd.read_parquet(tmp_path / "gsm.parquet"), pd.read_parquet(tmp_path / "mmlu.parquet")
    assert len(gsm) == 20 and len(mmlu) == 20 and (gsm.status == "ok").all() and (mmlu.status == "ok").all()
    # what the records say: a number after ####, an index into the choices
    assert (gsm.output_constraint == "number").all() and (mmlu.output_constraint == "option_letter").all()
    assert (mmlu.subset == "abstract_algebra").all()
    # grade-school word problems computed from the story's numbers, on a benchmark whose items the
    # label cues never saw as examples (9 in 10 at least, per dimension)
    assert (gsm.background == "school_math").mean() >= 0.9, gsm.background.value_counts()
    assert (gsm.task_type == "math_word_problem").mean() >= 0.9, gsm.task_type.value_counts()
    assert (gsm.solving_operation.map(lambda ops: ops[0]) == "arithmetic").mean() >= 0.9
    # plant: GSM8K falls from 70% to 30% correct, MMLU stays at 70%
    ids = list(gsm.id) + list(mmlu.id)
    before = [{"id": i, "correct": int((k * 7) % 10 < 7)} for k, i in enumerate(ids)]
    now = [{"id": i, "correct": int((k * 3) % 10 < 3) if k < 20 else int((k * 7) % 10 < 7)}
           for k, i in enumerate(ids)]
    write_jsonl(tmp_path / "before.jsonl", before)
    write_jsonl(tmp_path / "now.jsonl", now)
    res = runner.invoke(main, ["slices", "report", "--labels", str(tmp_path / "gsm.parquet"),
                               str(tmp_path / "mmlu.parquet"), "--results", str(tmp_path / "now.jsonl"),
                               "--baseline", str(tmp_path / "before.jsonl"), "--allow-unreviewed", "--min-n", "5",
                               "-o", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["findings"], "a drop of 40 points on 20 of 40 items is a finding"
    assert not any(f["slice"].get("output_constraint") == "option_letter" for f in report["findings"])
    # the drop is located where it happened: the first finding's items are GSM8K's
    both = pd.concat([gsm.assign(bench="gsm8k"), mmlu.assign(bench="mmlu")])
    first = report["findings"][0]["slice"]
    inside = both[[all((v in row[d]) if d == "solving_operation" else row[d] == v for d, v in first.items()
                       if d in both.columns) for _, row in both.iterrows()]]
    assert len(inside) and (inside.bench == "gsm8k").mean() >= 0.8, (first, inside.bench.value_counts())
