"""Text -> hashed n-gram features: the one featurizer of the package (the hashing trick).

A text becomes words plus character n-grams, each hashed into a fixed number of columns (no
vocabulary to fit or ship). Two configurations use it, each fixed because something persists
from it: :data:`RETRIEVAL` (few-shot and candidate retrieval, :mod:`annotator.labeling.fewshot`: the
examples it picks are part of every cached request) and :data:`CLASSIFIER` (the distilled corpus
classifier, :mod:`annotator.corpus.model`: a fitted model's weights are over its columns; CRC-32
because it is the fastest hash at billions of documents).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Featurizer:
    """How a text becomes hashed features.

    Attributes:
        word_chars: words are taken from the first ``word_chars`` characters, lower-cased.
        word_pattern: a regex for words (None: split on white space).
        gram: the length of character n-grams.
        stride: a character n-gram starts every ``stride`` characters.
        gram_chars: n-grams are taken from the first ``gram_chars`` characters of ``gram_source``.
        gram_source: ``raw`` (the text as written) or ``words`` (its words joined by single spaces).
        tagged: prefix features with ``w:`` / ``c:`` so a word and an n-gram never share a hash.
        buckets: the number of columns (hash modulo ``buckets``).
        hash: ``crc32`` or ``blake2b`` (4 bytes, little-endian).
    """

    word_chars: int
    word_pattern: str | None
    gram: int
    stride: int
    gram_chars: int
    gram_source: Literal["raw", "words"]
    tagged: bool
    buckets: int
    hash: Literal["crc32", "blake2b"]

    def tokens(self, text: str) -> list[str]:
        """The features of ``text`` as strings (words first, then character n-grams)."""
        low = text[: self.word_chars].lower()
        words = re.findall(self.word_pattern, low) if self.word_pattern else low.split()
        chars = " ".join(words) if self.gram_source == "words" else text
        chars = chars[: self.gram_chars]
        grams = [chars[i : i + self.gram] for i in range(0, len(chars) - self.gram + 1, self.stride)]
        if self.tagged:
            return [f"w:{w}" for w in words] + [f"c:{g}" for g in grams]
        return words + grams

    def columns(self, text: str) -> list[int]:
        """The column of every feature of ``text`` (repeats kept)."""
        n = self.buckets
        if self.hash == "crc32":
            crc = zlib.crc32
            return [crc(t.encode()) % n for t in self.tokens(text)]
        blake = hashlib.blake2b
        return [int.from_bytes(blake(t.encode(), digest_size=4).digest(), "little") % n for t in self.tokens(text)]

    def counts(self, text: str) -> Counter[int]:
        """Column -> how often ``text`` hits it."""
        return Counter(self.columns(text))

    def matrix(self, texts: list[str]) -> Any:
        """A ``scipy.sparse`` CSR matrix of L2-normalised counts (rows: texts, float32)."""
        import scipy.sparse as sp

        indices: list[int] = []
        indptr = [0]
        for text in texts:
            indices += self.columns(text)
            indptr.append(len(indices))
        x = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), np.array(indices, dtype=np.int32),
                           np.array(indptr, dtype=np.int64)), shape=(len(texts), self.buckets))
        x.sum_duplicates()
        rows = np.repeat(np.arange(len(texts)), np.diff(x.indptr))
        norms = np.sqrt(np.bincount(rows, weights=x.data.astype(np.float64) ** 2, minlength=len(texts)))
        norms[norms == 0] = 1.0
        x.data /= norms[rows].astype(np.float32)
        return x


RETRIEVAL = Featurizer(word_chars=2000, word_pattern=r"[a-z0-9]+", gram=4, stride=1, gram_chars=10**9,
                       gram_source="words", tagged=True, buckets=2**18, hash="blake2b")
"""Few-shot retrieval: words and every 4-gram of the joined words of the first 2,000 characters."""

CLASSIFIER = Featurizer(word_chars=8000, word_pattern=None, gram=5, stride=4, gram_chars=256, gram_source="raw",
                        tagged=False, buckets=2**20, hash="crc32")
"""The corpus classifier: words of the first 8,000 characters + 5-grams (stride 4) of the first 256."""
