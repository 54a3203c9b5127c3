"""slice-annotator: LLM-assisted capability-slice annotation.

The public Python API: ``annotator.label(...)`` labels records and returns the labels table;
``annotator.gate(table)`` passes only reviewed labels on (see the README). Both are imported on
first use, so that the corpus workers and the command line start light. The package map is in
the README's "Layout" section; each subpackage's docstring says what lives there.
"""

from typing import Any

from annotator.errors import AnnotatorError

__all__ = ["AnnotatorError", "Annotation", "Item", "gate", "label"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "label":
        from annotator.labeling.run import label

        return label
    if name == "gate":
        from annotator.review.gate import gate

        return gate
    if name in ("Annotation", "Item"):
        from annotator import records

        return getattr(records, name)
    raise AttributeError(f"module 'annotator' has no attribute {name!r}")
