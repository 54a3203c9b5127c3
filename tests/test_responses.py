"""Response states on real responses (tests/fixtures/real-outputs and the lm-eval miniature)."""

import gzip
import json

from conftest import FIXTURES

from annotator.diagnose.responses import Classifier, Response, repetition, turn_markers
from annotator.diagnose.verdict import diagnosis_config

JUDGE = Classifier(diagnosis_config()["responses"])


def rows(path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return {str(r["id"]): r for r in map(json.loads, fh)}


def state(r):
    return JUDGE.judge(Response(text=r["response"], prediction=r["prediction"], target=r["target"]),
                       bool(r["correct"])).state


def test_states_of_real_theoremqa_responses():
    tqa = rows(FIXTURES / "real-outputs" / "theoremqa" / "mistral-7b-v0.1.jsonl.gz")
    # tqa0 repeats "8! / (5! 3! 2!) = " until the length limit
    assert repetition(tqa["tqa0"]["response"]) > 0.8 and state(tqa["tqa0"]) == "runaway"
    buried = [r for r in tqa.values() if state(r) == "buried"]
    # "The answer is (b)" scored wrong against the target "(b)" (the extraction kept "B"): buried
    assert any(str(r["target"]).lower() == "(b)" and r["prediction"] == "B" for r in buried)
    for r in buried:  # never a guess: the first stated answer is the target, read off the text itself
        assert not r["correct"] and (JUDGE.first_stated(r["response"]) or "").lower().strip("()") in \
            str(r["target"]).lower()
    # "1/sqrt(pi)" is not the answer 1; "-frac{1}{4}" does not contain the list [-1, 4]
    assert not any(str(r["target"]) in ("1.0", "[-1, 4]") for r in buried)
    empty = [r for r in tqa.values() if not r["prediction"] and repetition(r["response"]) < 0.3]
    assert empty and all(state(r) == "no_answer" for r in empty)


def test_runaway_reads_the_logged_generation_arguments():
    (path,) = (FIXTURES / "lm-eval" / "masked").glob("samples_bbh_boolean_local_*.jsonl")
    rec = json.loads(path.read_text().splitlines()[0])
    prompt = rec["arguments"]["gen_args_0"]["arg_0"]
    assert turn_markers(prompt) == ("\nQ:",)
    masked = Response(text=rec["resps"][0][0], prediction=rec["filtered_resps"][0], target=rec["target"],
                      turns=turn_markers(prompt))
    assert JUDGE.judge(masked, False).state == "runaway"
    stopped = Response(text=" False", prediction="False", target="False", until=("\n\n", "Q:"),
                       turns=turn_markers(prompt), max_gen_toks=64)
    assert JUDGE.judge(stopped, True).state == "answered"
    leaked = Response(text=" False\n\nQ: True is", prediction="False", target="False", until=("\n\nQ:",))
    assert JUDGE.judge(leaked, False).why.startswith("went past its stop sequence")
    assert JUDGE.judge(Response(), False).state == "n/a"
