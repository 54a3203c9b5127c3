"""Label cues rank the candidate labels of items from benchmarks the few-shot pool does not hold.

Every figure here is leave-one-benchmark-out: the pool is the dev labels (a copy under
``tests/fixtures/``) without any sample of the item's own benchmark, as for a newcomer's first
benchmark. The first label of the ranking is what the embedded model answers nearly always.
"""

import json

import pytest
from conftest import FIXTURES

from annotator.config import Settings
from annotator.errors import TaxonomyError
from annotator.labeling.cues import default_cues_path, load_cues
from annotator.labeling.evidence import Evidence
from annotator.labeling.fewshot import PoolEntry, candidates_for_pool, examples_for_pool
from annotator.labeling.planning import narrowed
from annotator.labeling.prepare import taxonomy_and_prompts
from annotator.labeling.sources import SourceSpec, read_items
from annotator.records import Item
from annotator.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
DIMS = TAXONOMY.dimensions("eval")
NAMES = [d.id for d in DIMS]
DEV = [json.loads(line) for line in (FIXTURES / "dev-labels.jsonl").read_text().splitlines()]
EVIDENCE = Evidence(TAXONOMY.kinds["eval"].evidence, DIMS)


def pool_without(benchmark: str) -> list[PoolEntry]:
    return [PoolEntry(r["id"], r["text"], {d: r[d] for d in NAMES}) for r in DEV if r["benchmark"] != benchmark]


def first_labels(rank, item: Item) -> dict[str, str]:
    """What the embedded model is offered first: the ranking, narrowed to what the record admits."""
    found = EVIDENCE(item)
    cands = narrowed(rank(item), found.admitted) if found.admitted else rank(item)
    return {d: cands[d][0] for d in NAMES}


def accuracy(cues) -> dict[str, float]:
    hits = dict.fromkeys(NAMES, 0)
    for bench in sorted({r["benchmark"] for r in DEV}):
        rank = candidates_for_pool(pool_without(bench), 8, DIMS, cues)
        for r in (r for r in DEV if r["benchmark"] == bench):
            got = first_labels(rank, Item(id=r["id"], text=r["text"], source=bench, fields={"subset": r["subset"]}))
            for d in NAMES:
                hits[d] += got[d] == (r[d][0] if d == "solving_operation" else r[d])
    return {d: hits[d] / len(DEV) for d in NAMES}


def test_on_unseen_benchmarks_the_words_rank_the_right_label_first_far_more_often():
    alone, with_cues = accuracy(None), accuracy(load_cues(DIMS, "eval"))
    # neighbours from other benchmarks carry their own benchmark's labels: a BBH puzzle is offered
    # MMLU's knowledge_recall; the item's words name its subject, task and operation
    for d in ("background", "task_type", "solving_operation"):
        assert with_cues[d] >= alone[d] + 0.2, (d, alone, with_cues)
    assert with_cues["output_constraint"] >= 0.9, with_cues  # the target for this dimension


@pytest.mark.parametrize(("records", "benchmark", "expected"), [
    # grade-school word problems: the answer is computed from the story's numbers
    ("gsm8k.jsonl", "gsm8k", {"background": "school_math", "task_type": "math_word_problem",
                              "solving_operation": "arithmetic", "output_constraint": "number"}),
    # closing a bracket sequence: self-contained symbols, transformed by rule, matched exactly
    ("bbh_dyck_languages.json", "bbh", {"background": "none", "task_type": "symbolic_manipulation",
                                        "output_constraint": "exact_sequence"}),
    # a function to write from its docstring
    ("humaneval.jsonl", "humaneval", {"background": "programming", "task_type": "code_generation",
                                      "solving_operation": "algorithm_implementation", "output_constraint": "code"}),
])
def test_real_records_of_an_unseen_benchmark_are_offered_their_labels_first(records, benchmark, expected):
    rank = candidates_for_pool(pool_without(benchmark), 8, DIMS, load_cues(DIMS, "eval"))
    items = [it for it in read_items([FIXTURES / "records" / records], SourceSpec()) if isinstance(it, Item)]
    assert items
    got = [first_labels(rank, item) for item in items]
    for d, label in expected.items():  # what every one of them is; at least 9 in 10 offered it first
        share = sum(g[d] == label for g in got) / len(got)
        assert share >= 0.9, (d, [g[d] for g in got])


def test_cues_are_validated_against_the_taxonomy(tmp_path):
    bad = tmp_path / "cues.yaml"
    bad.write_text("kind: eval\ndimensions:\n  background:\n    none: ['(unclosed']\n")
    with pytest.raises(TaxonomyError, match=r"cues.yaml: dimensions.background.none\[0\]: pattern does not compile"):
        load_cues(DIMS, "eval", bad)
    bad.write_text("kind: eval\ndimensions:\n  background:\n    astrology: ['stars']\n")
    with pytest.raises(TaxonomyError, match="dimensions.background.astrology: no such label"):
        load_cues(DIMS, "eval", bad)
    bad.write_text("kind: eval\ndimensions:\n  mood:\n    none: ['x']\n")
    with pytest.raises(TaxonomyError, match="dimensions.mood: no such eval dimension"):
        load_cues(DIMS, "eval", bad)
    bad.write_text("kind: eval\nweigth: 2\ndimensions: {}\n")
    with pytest.raises(TaxonomyError, match="weigth: Extra inputs are not permitted"):
        load_cues(DIMS, "eval", bad)
    assert load_cues(DIMS, "corpus") is None  # the shipped file holds eval cues only


def test_the_cues_version_is_part_of_the_prompt_version_only_when_they_rank():
    on, off, plain = (taxonomy_and_prompts(s)[1] for s in (Settings(candidates=8), Settings(candidates=8, cues=False),
                                                            Settings()))
    version = load_cues(DIMS, "eval", default_cues_path()).version
    assert version in on.pool_version and version not in off.pool_version and not plain.pool_version
    assert len({on.version, off.version, plain.version}) == 3  # so in every cache key


def test_only_contenders_are_offered_so_a_copied_example_cannot_carry_far_weaker_labels():
    # the 135M model tends to copy its retrieved example's labels when they are allowed: with cues,
    # a label scoring under half the best one is not offered at all
    cues = load_cues(DIMS, "eval")
    pool = pool_without("bbh")
    with_cues, alone = candidates_for_pool(pool, 8, DIMS, cues), candidates_for_pool(pool, 8, DIMS)
    items = [it for it in read_items([FIXTURES / "records" / "bbh_dyck_languages.json"], SourceSpec())
             if isinstance(it, Item)]
    for item in items:
        offered, before = with_cues(item), alone(item)
        assert offered["background"][0] == "none" and "none" not in before["background"][:1]
        for d in NAMES:
            assert len(offered[d]) <= len(before[d]) + 1, (d, offered[d], before[d])
        assert sum(len(offered[d]) for d in NAMES) < sum(len(before[d]) for d in NAMES)


def test_with_cues_the_example_shown_carries_the_labels_the_evidence_ranks_first():
    # the model copies its example: of the 8 nearest, the one agreeing with the most first-ranked
    # candidates is shown, not merely the nearest text (on an unseen benchmark, another benchmark's)
    pool = pool_without("bbh")
    rank = candidates_for_pool(pool, 8, DIMS, load_cues(DIMS, "eval"))
    agreeing, nearest = examples_for_pool(pool, 1, agree_with=rank), examples_for_pool(pool, 1)
    items = [it for it in read_items([FIXTURES / "records" / "bbh_dyck_languages.json"], SourceSpec())
             if isinstance(it, Item)]

    def agreement(example, item) -> int:
        labels = json.loads(example.labels)
        return sum((labels[d][0] if isinstance(labels[d], list) else labels[d]) == c[0]
                   for d, c in rank(item).items() if c)

    got = [(agreement(agreeing(it)[0], it), agreement(nearest(it)[0], it)) for it in items]
    assert items and all(a >= n for a, n in got), got
    assert sum(a for a, _ in got) > sum(n for _, n in got), got
