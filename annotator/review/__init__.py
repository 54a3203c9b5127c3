"""Human review: the resolution rules, the gate and the queue (no Argilla), and the Argilla boundary.

Argilla-free, importable with the base install: ``resolve`` (reviewers' answers -> one review
status and the labels that go on), ``gate`` (only reviewed labels go on), ``queue`` (each row's
priority, audit flag and queue text). The Argilla boundary, the only code that imports
``argilla`` (the ``review`` extra): ``connect``, ``layout`` (the dataset's questions and
guidelines), ``push`` (LLM labels as suggestions), ``pull`` (answers resolved into a labels table
with a ``review_status``), ``status`` (LLM-vs-human and inter-annotator agreement).

Importing this package imports nothing, so the rules need no ``review`` extra; the commands'
functions are ``annotator.review.push.push``, ``annotator.review.pull.pull`` and
``annotator.review.status.review_status``. The server comes from ``ARGILLA_API_URL`` /
``ARGILLA_API_KEY`` (``scripts/argilla-up`` starts a local one).
"""
