"""slice-annotator: LLM-assisted capability-slice annotation.

``annotator.label(...)`` labels records and returns the labels table; see the README. The
labeling pipeline (openai, instructor, pandas) is imported on first use, so that the corpus
workers and the command line start light.
"""

from typing import Any

from annotator.errors import AnnotatorError

__all__ = ["AnnotatorError", "Annotation", "Item", "label"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "label":
        from annotator.pipeline import label

        return label
    if name in ("Annotation", "Item"):
        from annotator import records

        return getattr(records, name)
    raise AttributeError(f"module 'annotator' has no attribute {name!r}")
