r"""What the model wrote: a response state per item and run, its length and a repetition score.

The state is derived from the raw generation (``response``), what the benchmark's extraction
took from it (``prediction``), the gold answer (``target``) and, when the harness logged them, the
generation arguments (``until`` stop sequences, ``max_gen_toks``). First match wins; the
thresholds are data in ``schemas/diagnosis.yaml`` (``responses:``):

* ``runaway`` — the generation did not stop: it loops (the share of its word n-grams that
  already occurred earlier in it reaches ``repetition.runaway_at``), or it contains one of its
  own stop sequences (the stop was not applied), or it starts a new turn of its few-shot prompt
  (a line opening with the label that opens each example, ``Q:`` / ``Question:``, read off the
  logged prompt: it answered, then wrote the next question), or its estimated length (characters /
  ``chars_per_token``) reaches ``length_limit_share`` of ``max_gen_toks``, or the harness
  logged ``finish_reason = length``. Whatever the extraction then picked out of it does not
  change the state: a letter drawn from a loop is a lucky draw, not an answer.
* ``no_answer`` — it stopped, but the extraction found nothing (null, empty, ``[invalid]``).
* ``buried`` — scored wrong, but the model gave the right answer in a form the scoring lost: its
  first stated answer ("the answer is ...", ``####``, ``\boxed{}``, ...) equals the target, or
  a word target (letters, no digits) of at least ``min_text_target`` characters appears in the
  response as a whole word.
* ``answered`` — anything else with a response.
* ``n/a`` — no response text (a log-likelihood task, or a table without a response column):
  never guessed.

Repetition follows the duplicate n-gram measures of Gopher (Rae et al., 2021), as datatrove's
``GopherRepetitionFilter`` uses them for documents: here, the share of word ``ngram``-grams that
repeat an earlier one (0 for a response of fewer than ``min_words`` words; near 1 for a loop).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

STATES = ("runaway", "no_answer", "buried", "answered")
NA = "n/a"


@dataclass(frozen=True)
class Response:
    """One item's response in one run, as read from a results file (all fields optional)."""

    text: str | None = None
    prediction: Any = None
    target: Any = None
    until: tuple[str, ...] = ()
    turns: tuple[str, ...] = ()
    max_gen_toks: int | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Judged:
    """The derived state of one response."""

    state: str
    length: int | None
    repetition: float | None
    why: str


def repetition(text: str, ngram: int = 5, min_words: int = 20) -> float:
    """Share of the word n-grams of ``text`` that repeat an earlier n-gram (0..1)."""
    words = text.split()
    if len(words) < max(min_words, ngram + 1):
        return 0.0
    grams = [tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]
    return 1.0 - len(set(grams)) / len(grams)


_LABEL = re.compile(r"^([A-Z][\w ]{0,24}):", re.MULTILINE)


def turn_markers(prompt: Any) -> tuple[str, ...]:
    r"""Labels that open each example of a few-shot prompt (``Q``, ``Question``), as ``"\nQ:"``.

    The line labels that repeat in the prompt, minus the label of its last line (where the answer
    goes: ``A:`` / ``Answer:``).
    """
    if not isinstance(prompt, str):
        return ()
    labels = _LABEL.findall(prompt)
    if len(labels) < 3:
        return ()
    last = labels[-1]
    counts = {lab: labels.count(lab) for lab in labels}
    return tuple(f"\n{lab}:" for lab in dict.fromkeys(labels) if counts[lab] >= 2 and lab != last)


def _is_empty(value: Any, empty: set[str]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_empty(v, empty) for v in value) if value else True
    return str(value).strip().lower() in empty


def _number(text: str) -> float | None:
    cleaned = text.strip().strip("$().,;:").replace(",", "").replace("\\", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def _norm(value: Any) -> str:
    return re.sub(r"[\s\W_]+", " ", str(value)).strip().lower()


def same_answer(stated: str, target: Any, tolerance: float) -> bool:
    """Whether a stated answer equals the target (numbers within a relative tolerance)."""
    if isinstance(target, bool) or str(target).strip().lower() in ("true", "false", "yes", "no"):
        truth = {"true": "yes", "yes": "yes", "false": "no", "no": "no"}
        return truth.get(_norm(stated)) == truth.get(str(target).strip().lower())
    goal = target if isinstance(target, (int, float)) else _number(str(target))
    if goal is not None:
        got = _number(stated)
        return got is not None and math.isclose(got, float(goal), rel_tol=tolerance, abs_tol=tolerance)
    return _norm(stated) == _norm(target) and bool(_norm(target))


class Classifier:
    """Response states under one ``responses:`` configuration (``schemas/diagnosis.yaml``)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        rep = cfg["repetition"]
        self.ngram, self.min_words, self.runaway_at = int(rep["ngram"]), int(rep["min_words"]), float(rep["runaway_at"])
        self.chars_per_token = float(cfg["chars_per_token"])
        self.length_share = float(cfg["length_limit_share"])
        self.empty = {str(v).lower() for v in cfg["no_answer_values"]}
        self.patterns = [re.compile(p, re.IGNORECASE) for p in cfg["answer_patterns"]]
        self.min_text = int(cfg["min_text_target"])
        self.tolerance = float(cfg["number_tolerance"])

    def first_stated(self, text: str) -> str | None:
        """The earliest answer statement in ``text`` (by position, over every pattern)."""
        hits = [(m.start(), m.group(1)) for p in self.patterns for m in [p.search(text)] if m]
        return min(hits)[1] if hits else None

    def judge(self, response: Response, correct: bool) -> Judged:
        """The state of one response (see the module docstring for the rules)."""
        text = response.text
        if text is None or (isinstance(text, float) and math.isnan(text)):
            return Judged(NA, None, None, "no response text")
        text = str(text)
        score = repetition(text, self.ngram, self.min_words)
        length = len(text)

        def out(state: str, why: str) -> Judged:
            return Judged(state, length, round(score, 4), why)

        if score >= self.runaway_at:
            return out("runaway", f"loops: {score:.0%} of its {self.ngram}-grams repeat")
        leaked = next((s for s in response.until if s and s.strip() and s in text), None)
        if leaked is not None:
            return out("runaway", f"went past its stop sequence {leaked!r}")
        turn = next((t for t in response.turns if t in text), None)
        if turn is not None:
            return out("runaway", f"answered, then wrote a new turn of its prompt ({turn.strip()!r})")
        if (response.finish_reason or "").lower() == "length":
            return out("runaway", "stopped by the length limit (finish_reason=length)")
        if response.max_gen_toks and length / self.chars_per_token >= self.length_share * response.max_gen_toks:
            return out("runaway", f"ran to its length limit ({response.max_gen_toks} tokens)")
        if _is_empty(response.prediction, self.empty):
            return out("no_answer", "stopped, but nothing was extracted")
        if not correct and response.target is not None and not _is_empty(response.target, set()):
            stated = self.first_stated(text)
            if stated is not None and same_answer(stated, response.target, self.tolerance):
                return out("buried", f"its first stated answer {stated!r} is the target")
            goal = str(response.target).strip()
            if (len(goal) >= self.min_text and not re.search(r"\d", goal) and re.search(r"[A-Za-z]{2}", goal)
                    and goal.lower() not in ("true", "false", "yes", "no")
                    and re.search(rf"(?<!\w){re.escape(_norm(goal))}(?!\w)", _norm(text))):
                return out("buried", "the response contains the target")
        return out("answered", "stopped with an extracted answer")
