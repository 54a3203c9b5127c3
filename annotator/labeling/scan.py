"""The checking pass: read the input once, cheaply, before any request is sent.

It finds every bad record (so ``--on-bad-record error`` refuses before spending), repeated ids
(the same text: a duplicate, the first kept; a different text: a bad record "duplicate id with
different content"), and counts the items. Memory stays small at millions of items: only two
64-bit hashes per item are kept (ids and texts), repeats are found by sorting them, and only
the few records in a repeated group are read again to name them exactly (which also rules out
hash collisions). The labeling pass then reads the input again through :func:`labelable`.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from annotator.errors import BadRecordsError, InputError
from annotator.records import Item, Reject

Source = Callable[[], Iterable[Item | Reject]]  # reads the input from the start each time it is called
_SHOWN_REJECTS = 20


@dataclass
class Scan:
    """What the checking pass found."""

    items: int = 0
    rejects: list[Reject] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)  # item ordinals not to label (repeats)
    input_text_differs: bool = False  # some record's own `text` field is not the labeled text

    @property
    def labelable(self) -> int:
        """Items that will be labeled."""
        return self.items - len(self.skip)


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def scan(source: Source) -> Scan:
    """Read the input once; return rejects, repeats and counts (nothing is kept per item but hashes)."""
    ids, texts = array("q"), array("q")
    result = Scan()
    for rec in source():
        if isinstance(rec, Reject):
            result.rejects.append(rec)
            continue
        ids.append(_h64(rec.id))
        texts.append(_h64(rec.text))
        if not result.input_text_differs and rec.fields.get("text") not in (None, rec.text):
            result.input_text_differs = True
    result.items = len(ids)
    groups = _repeated_groups(np.frombuffer(ids, dtype=np.int64)) if len(ids) > 1 else []
    if groups:
        _name_repeats(source, groups, result)
    return result


def _repeated_groups(ids: np.ndarray) -> list[list[int]]:
    """Ordinals of items whose id hash occurs more than once, grouped, each in input order."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    return [order[s : s + n].tolist() for s, n in zip(starts[sizes > 1], sizes[sizes > 1], strict=True)]


def _name_repeats(source: Source, groups: list[list[int]], result: Scan) -> None:
    wanted = {o for group in groups for o in group}
    seen: dict[int, Item] = {}
    ordinal = -1
    for rec in source():
        if isinstance(rec, Item):
            ordinal += 1
            if ordinal in wanted:
                seen[ordinal] = rec
    for group in groups:
        first: dict[str, Item] = {}
        for o in group:
            item = seen[o]
            earlier = first.get(item.id)
            if earlier is None:
                first[item.id] = item
            elif earlier.text == item.text:
                result.skip.add(o)
                result.duplicate_ids.append(item.id)
            else:
                result.skip.add(o)
                result.rejects.append(Reject(
                    location=item.location, field="id", raw=item.text[:200],
                    reason=f"duplicate id {item.id!r} with different content (first at {earlier.location})"))


def labelable(source: Source, found: Scan) -> Iterator[Item]:
    """Stage: the items to label, in input order (bad records and repeats left out)."""
    ordinal = -1
    for rec in source():
        if isinstance(rec, Item):
            ordinal += 1
            if ordinal not in found.skip:
                yield rec


def check_rejects(found: Scan, on_bad_record: str) -> None:
    """Raise :class:`BadRecordsError` for bad records under the ``error`` policy.

    Raises:
        BadRecordsError: bad records and ``on_bad_record == "error"``; nothing was sent.
        InputError: nothing left to label.
    """
    if found.rejects and on_bad_record == "error":
        shown = "\n".join(r.message() for r in found.rejects[:_SHOWN_REJECTS])
        more = len(found.rejects) - _SHOWN_REJECTS
        tail = f"\n... and {more} more" if more > 0 else ""
        raise BadRecordsError(
            f"{len(found.rejects)} bad record(s); nothing was sent "
            f"(use --on-bad-record skip to label the rest):\n{shown}{tail}",
            found.rejects,
        )
    if not found.labelable:
        raise InputError("no items to label" + (
            f" ({len(found.rejects)} bad record(s))" if found.rejects else ""))
