"""Human review: the resolution rules, the gate and the queue (no Argilla), and the Argilla boundary.

Argilla-free, importable with the base install: ``resolve`` (reviewers' answers -> one review
status and the labels that go on), ``gate`` (only reviewed labels go on), ``queue`` (each row's
priority, audit flag and queue text). The Argilla boundary, the only code that imports
``argilla`` (the ``review`` extra): ``connect``, ``layout`` (the dataset's questions and
guidelines), ``push`` (LLM labels as suggestions), ``pull`` (answers resolved into a labels table
with a ``review_status``), ``status`` (LLM-vs-human and inter-annotator agreement). ``push``,
``pull`` and ``review_status`` are imported from here on first use, so importing this package does
not import argilla. The server comes from ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``
(``scripts/argilla-up`` starts a local one).
"""

from typing import Any

__all__ = ["pull", "push", "review_status"]


def __getattr__(name: str) -> Any:
    if name == "pull":
        from annotator.review.pull import pull

        return pull
    if name == "push":
        from annotator.review.push import push

        return push
    if name == "review_status":
        from annotator.review.status import review_status

        return review_status
    raise AttributeError(f"module 'annotator.review' has no attribute {name!r}")
