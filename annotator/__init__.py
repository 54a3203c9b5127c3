"""slice-annotator: LLM-assisted capability-slice annotation.

``annotator.label(...)`` labels records and returns the labels table; see the README.
"""

from annotator.errors import AnnotatorError
from annotator.pipeline import label
from annotator.records import Annotation, Item

__all__ = ["AnnotatorError", "Annotation", "Item", "label"]
__version__ = "0.1.0"
