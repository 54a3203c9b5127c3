"""Human review in Argilla: the only subpackage that imports ``argilla``.

``push`` sends LLM labels as suggestions, ``pull`` resolves reviewers' answers into a labels
table with a ``review_status``, ``status`` measures LLM-vs-human and inter-annotator agreement.
The server comes from ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY`` (``scripts/argilla-up`` starts
a local one).
"""

import logging
import warnings

warnings.filterwarnings("ignore", module="argilla")  # e.g. "dataset not found" on lookups we expect
logging.getLogger("argilla.sdk").setLevel(logging.ERROR)

from annotator.review.pull import pull  # noqa: E402
from annotator.review.push import push  # noqa: E402
from annotator.review.status import review_status  # noqa: E402

__all__ = ["pull", "push", "review_status"]
