"""Retrieval of labeled neighbours: leave-one-out, similarity order, candidate label order."""

import json

import pytest

from annotator.errors import InputError
from annotator.labeling.fewshot import PoolEntry, Retriever, candidates_for_pool, examples_for_pool, load_pool
from annotator.records import Item
from annotator.taxonomy import load_taxonomy

DIMS = load_taxonomy().dimensions("eval")


def entry(i, text, bg, ops=("arithmetic",)):
    return PoolEntry(id=f"p{i}", text=text, labels={"background": bg, "task_type": "math_problem",
                                                     "solving_operation": list(ops), "output_constraint": "number"})


POOL = [
    entry(0, "not ( True ) and ( True ) is", "none", ("logical_deduction",)),
    entry(1, "def is_true(x): return x and True", "programming", ("algorithm_implementation",)),
    entry(2, "def add(a, b): return a + b", "programming", ("algorithm_implementation",)),
    entry(3, "Natalia sold clips to 48 of her friends", "school_math"),
]


def test_nearest_is_by_similarity_and_never_the_item_itself():
    r = Retriever(POOL)
    near = r.nearest(Item(id="q", text="True and not ( False ) is", source="s"), 2)
    assert near[0].id == "p0"
    self_query = Item(id="p0", text="anything else entirely", source="s")
    assert "p0" not in [e.id for e in r.nearest(self_query, 4)]
    same_text = Item(id="other-id", text=POOL[3].text, source="s")
    assert "p3" not in [e.id for e in r.nearest(same_text, 4)]


def test_candidates_put_the_nearest_neighbours_label_first():
    pick = candidates_for_pool(POOL, 3, DIMS)
    cands = pick(Item(id="q", text="not ( False ) and ( True ) is", source="s"))
    # ranks: p0 (none, weight 1), then the two programming items (1/2 + 1/3 = 0.83)
    assert cands["background"][0] == "none" and "programming" in cands["background"]
    assert cands["solving_operation"][0] == "logical_deduction"


def test_examples_show_text_and_labels_as_json():
    examples = examples_for_pool(POOL, 1)(Item(id="q", text="Natalia sold 30 clips", source="s"))
    assert examples[0].text.startswith("Natalia") and json.loads(examples[0].labels)["background"] == "school_math"


def test_pool_rows_are_checked_and_unreviewed_rows_skipped(tmp_path):
    path = tmp_path / "pool.jsonl"
    rows = [{"id": "a", "text": "x", "background": "none", "task_type": "proof", "solving_operation": ["arithmetic"],
             "output_constraint": "number", "review_status": "confirmed"},
            {"id": "b", "text": "y", "background": "none", "task_type": "proof", "solving_operation": ["arithmetic"],
             "output_constraint": "number", "review_status": "pending"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.id for e in load_pool(path, DIMS)] == ["a"]
    path.write_text(json.dumps({"id": "c", "text": "z", "background": "none"}) + "\n")
    with pytest.raises(InputError, match="row 0: missing task_type"):
        load_pool(path, DIMS)


def test_a_large_pool_is_held_sparse():
    """A review pull of thousands of rows as --fewshot-pool: memory follows the texts, not pool x 2^18."""
    import tracemalloc

    from annotator.labeling.fewshot import PoolEntry, Retriever
    from annotator.records import Item

    words = [f"w{i}" for i in range(20000)]
    pool = [PoolEntry(id=f"p{i}", text=" ".join(words[(i * 37 + j * 11) % 20000] for j in range(150)), labels={})
            for i in range(3000)]
    tracemalloc.start()
    retriever = Retriever(pool)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MB"  # a dense pool x buckets float32 matrix: several GB
    got = retriever.nearest(Item(id="x", source="s", text=pool[5].text + " extra"), 2)
    assert got[0].id == "p5"


def test_a_pool_nobody_reviewed_is_refused_and_a_partial_pool_is_counted(llm, tmp_path):
    from click.testing import CliRunner
    from conftest import FIXTURES

    from annotator.cli import main

    rows = [json.loads(line) for line in (FIXTURES / "dev-labels.jsonl").read_text().splitlines()]
    pending = tmp_path / "pending.jsonl"
    pending.write_text("".join(json.dumps(r | {"review_status": "pending"}) + "\n" for r in rows))
    args = ["label", str(FIXTURES / "gsm8k-10.jsonl"), "-o", str(tmp_path / "o.parquet"), "--base-url", llm.url,
            "--model", "m", "--mode", "json_schema", "--fewshot", "1"]
    res = CliRunner().invoke(main, [*args, "--fewshot-pool", str(pending)])
    assert res.exit_code == 2 and "no usable rows" in res.output and llm.log() == []
    half = tmp_path / "half.jsonl"
    half.write_text("".join(json.dumps(r | {"review_status": "confirmed" if i % 2 else "pending"}) + "\n"
                            for i, r in enumerate(rows)))
    res = CliRunner().invoke(main, [*args, "--fewshot-pool", str(half)])
    assert res.exit_code == 0 and "35 of 70 rows usable" in res.output, res.output
