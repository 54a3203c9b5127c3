"""One hierarchy for setup failures.

Item failures are data (an :class:`~annotator.records.Annotation` with ``status="failed"``);
everything that stops a whole run is an :class:`AnnotatorError`. The CLI turns these into
messages and exit code 2; nothing else in the package prints them.
"""

from __future__ import annotations


class AnnotatorError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(AnnotatorError):
    """A setting is missing, malformed or contradictory."""


class TaxonomyError(AnnotatorError):
    """A taxonomy file is invalid; the message names the file and the path inside it."""


class TemplateError(AnnotatorError):
    """A prompt or input template failed to load or render (e.g. an undefined variable)."""


class InputError(AnnotatorError):
    """An input file or record is unusable; the message names file, line/record and field."""


class OutputError(AnnotatorError):
    """An output could not be written (a full disk, a read-only folder); the message names the path."""


class BadRecordsError(InputError):
    """One or more input records are bad and ``--on-bad-record error`` is in force.

    Attributes:
        rejects: the rejected records, each with its location and reason.
    """

    def __init__(self, message: str, rejects: list) -> None:
        super().__init__(message)
        self.rejects = rejects


class LLMError(AnnotatorError):
    """Base for failures at the LLM boundary (raised by :mod:`annotator.llm` only)."""


class TransportError(LLMError):
    """The endpoint could not be reached or kept failing after all transport retries."""


class EndpointError(LLMError):
    """The endpoint cannot serve this run (refused, unknown host, TLS, 404, not a chat API): no retry can help.

    Raised by the first requests (the probe) it stops the run before the rest are sent (exit 2);
    repeated mid-run it trips the circuit breaker.
    """


class AuthError(EndpointError):
    """The endpoint refused the credentials (401/403); retrying cannot help."""


class ResponseError(LLMError):
    """The answer stayed invalid (unparsable or out of taxonomy) after all re-asks."""


class LocalModelError(AnnotatorError):
    """The embedded llama.cpp server could not be started or the model file is missing."""


class ReviewError(AnnotatorError):
    """Argilla could not be reached, refused the key, or holds an incompatible dataset."""


class GateError(AnnotatorError):
    """Labels were offered to a later stage without the review that stage requires."""
