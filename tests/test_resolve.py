"""The review rules without Argilla: resolving reviewers' answers, the gate, the queue, the guidelines."""

import pandas as pd
import pytest

from annotator.config import resource_path
from annotator.errors import GateError
from annotator.review.gate import gate
from annotator.review.layout import MAX_DATASET_GUIDELINES, dataset_guidelines, guidelines
from annotator.review.resolve import canonical, resolve
from annotator.stats import krippendorff_alpha, wilson
from annotator.taxonomy import load_taxonomy

TAX = load_taxonomy()
DIMS = TAX.dimensions("eval")
OPS = TAX.dimension("eval", "solving_operation")
LLM = {"background": "everyday", "task_type": "math_word_problem",
       "solving_operation": ["temporal_reasoning", "arithmetic"], "output_constraint": "number"}


def ui_answer(**changes):
    """What Argilla's UI stores for an untouched submit: multi-label values in label order."""
    answer = {"status": "submitted", **LLM, "solving_operation_primary": "temporal_reasoning"}
    answer["solving_operation"] = [x for x in OPS.label_ids if x in LLM["solving_operation"]]
    answer.update(changes)
    return answer


def test_untouched_submit_in_label_order_is_confirmed():
    assert ui_answer()["solving_operation"] == ["arithmetic", "temporal_reasoning"]  # the UI's order
    res = resolve({"ann": ui_answer()}, LLM, DIMS)
    assert res.status == "confirmed" and res.labels == LLM and not res.flags
    # an older dataset without the primary question: the suggestion's order is kept
    legacy = ui_answer()
    legacy.pop("solving_operation_primary")
    assert resolve({"ann": legacy}, LLM, DIMS).status == "confirmed"


def test_primary_question_reorders_and_counts_as_a_correction():
    res = resolve({"ann": ui_answer(solving_operation_primary="arithmetic")}, LLM, DIMS)
    assert res.status == "corrected" and res.labels["solving_operation"] == ["arithmetic", "temporal_reasoning"]


def test_new_labels_follow_the_suggestion_then_taxonomy_order():
    value, problems = canonical(OPS, ["arithmetic", "counting_combinatorics", "temporal_reasoning"],
                                LLM["solving_operation"], "temporal_reasoning")
    assert value == ["temporal_reasoning", "arithmetic", "counting_combinatorics"] and not problems


def test_removing_the_preselected_primary_is_not_an_error_but_a_foreign_primary_is():
    removed = ui_answer(solving_operation=["arithmetic"])  # primary still preselected: temporal_reasoning
    res = resolve({"ann": removed}, LLM, DIMS)
    assert res.status == "corrected" and res.labels["solving_operation"] == ["arithmetic"]
    foreign = ui_answer(solving_operation_primary="state_tracking")
    res = resolve({"ann": foreign}, LLM, DIMS)
    assert res.status == "invalid" and "state_tracking" in res.flags[0] and res.labels == LLM


def test_more_labels_than_the_taxonomy_allows_is_flagged():
    four = ["arithmetic", "temporal_reasoning", "counting_combinatorics", "state_tracking"]
    res = resolve({"ann": ui_answer(solving_operation=four), "other": ui_answer()}, LLM, DIMS)
    assert res.status == "invalid"
    assert res.flags == ["ann: solving_operation has 4 labels; the taxonomy allows at most 3"]


def test_a_discard_next_to_a_submit_is_a_conflict():
    res = resolve({"a": ui_answer(), "b": {"status": "discarded"}}, LLM, DIMS)
    assert res.status == "conflict" and res.flags[0] == "disputed: submitted by a; discarded by b"
    assert resolve({"b": {"status": "discarded"}}, LLM, DIMS).status == "discarded"
    assert resolve({"b": {"status": "draft", **LLM}}, LLM, DIMS).status == "pending"


def test_majority_and_ties():
    two = {"a": ui_answer(background="school_math"), "b": ui_answer(background="school_math"), "c": ui_answer()}
    res = resolve(two, LLM, DIMS)
    assert res.status == "corrected" and res.labels["background"] == "school_math"
    tie = resolve({"a": ui_answer(background="school_math"), "b": ui_answer()}, LLM, DIMS)
    assert tie.status == "conflict" and tie.flags == ["background: tie between school_math (1) vs everyday (1)"]


def test_gate_passes_only_confirmed_and_corrected_and_records_an_override():
    table = pd.DataFrame({"id": list("abcdef"), "status": ["ok"] * 5 + ["failed"],
                          "review_status": ["confirmed", "corrected", "conflict", "invalid", "pending", None]})
    passed, record = gate(table)
    assert list(passed.id) == ["a", "b"] and set(passed.gate) == {"reviewed"} and record.rows_out == 2
    with pytest.raises(GateError, match="never reviewed"):
        gate(table.drop(columns="review_status"))
    with pytest.raises(GateError, match="no confirmed or corrected"):
        gate(table[table.review_status == "pending"])
    allowed, record = gate(table, allow_unreviewed=True)
    assert record.allow_unreviewed and list(allowed.id) == list("abcde")
    assert list(allowed.gate) == ["reviewed", "reviewed"] + ["unreviewed-allowed"] * 3


# ---- the review queue and the guidelines (no Argilla) ----

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


def test_queue_text_reads_right_and_guidelines_go_to_the_working_directory(tmp_path, monkeypatch):
    from annotator.config import guidelines_dir
    from annotator.review.queue import model_name, plan, queue_text

    sure = {"id": "x", **{f"{d.id}_confidence": 0.8 for d in DIMS}}
    meta = plan(sure, DIMS, 0.0)
    text = queue_text(meta, DIMS)
    assert meta["priority"] < 1 and "above 1" not in text and "after the unsure ones" in text
    unsure = plan({"id": "y", **{f"{d.id}_confidence": 0.3 for d in DIMS}}, DIMS, 0.0)
    assert unsure["priority"] > 1 and "above 1: reviewed first" in queue_text(unsure, DIMS)
    assert model_name("127.0.0.1:8000:my-model") == "my-model" and model_name("openai:gpt-4o") == "gpt-4o"
    monkeypatch.chdir(tmp_path)
    assert guidelines_dir() == tmp_path / "review"  # never the package's own checkout


def test_rows_their_record_or_subset_doubts_are_reviewed_first():
    """An answer re-asked against its record, or unlike its subset, goes before every unsure row."""
    from annotator.review.queue import plan, queue_text

    unsure = plan({"id": "u", **{f"{d.id}_confidence": 0.1 for d in DIMS}}, DIMS, 0.0)
    outlier = plan({"id": "o", "flags": "subset outlier: task_type logical_puzzle, but 8 of 10 in sub/algebra are "
                    "math_problem", **{f"{d.id}_confidence": 0.9 for d in DIMS}}, DIMS, 0.0)
    reasked = plan({"id": "r", "flags": "task_type_confidence 2 clipped; evidence: output_constraint option_letter "
                    "contradicts the record (...); re-asked within it"}, DIMS, 0.0)
    clipped = plan({"id": "c", "flags": "task_type_confidence 2 clipped", **{f"{d.id}_confidence": 0.9
                                                                              for d in DIMS}}, DIMS, 0.0)
    assert outlier["priority"] > unsure["priority"] and reasked["priority"] > unsure["priority"]
    assert clipped["priority"] < 1  # a repaired confidence alone is no doubt about the labels
    assert queue_text(outlier, DIMS).startswith("**Priority") and "flagged: subset outlier" in queue_text(outlier, DIMS)
    assert reasked["flagged"].startswith("evidence:") and "clipped" not in reasked["flagged"]
