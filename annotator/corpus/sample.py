"""``annotator shards sample``: a seeded sample across shards for the LLM teacher, in flat memory.

Documents are stratified by ``source`` (top level or ``metadata.source``), else by shard file.
Each stratum keeps a uniform reservoir (Algorithm R, seeded) of up to ``n`` document *places*
(shard and line, not the documents) while the shards stream by; at the end the ``n`` places are
shared out in proportion to the strata's sizes (largest remainder, at least one per stratum while
places last), each stratum contributes that many places from its reservoir, and a second pass
reads only the shards holding a chosen place, keeping only the chosen documents. Memory holds
``n`` places per stratum and the ``n`` chosen documents, never a stratum's documents. The
output JSONL (``id``, ``text``, ``source``, ``shard``, ``metadata``) goes straight into
``annotator label SAMPLE.jsonl --kind corpus --id-field id``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from annotator.atomic import atomic_path
from annotator.corpus.shards import Doc, ShardError, list_shards, read_shard
from annotator.errors import InputError


class SampleResult(BaseModel):
    """What a sampling pass saw and wrote."""

    output: str
    shards: int
    documents: int
    sampled: int
    strata: dict[str, dict[str, int]]
    skipped_records: int
    failed_shards: dict[str, str]


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Share ``n`` places among strata: one each while places last, the rest by size (largest remainder)."""
    total = sum(sizes.values())
    if total <= n:
        return dict(sizes)
    floor = dict.fromkeys(sizes, 1) if n >= len(sizes) else dict.fromkeys(sizes, 0)
    left = {k: v - floor[k] for k, v in sizes.items()}
    room, spare = n - sum(floor.values()), sum(left.values())
    exact = {k: room * v / spare if spare else 0.0 for k, v in left.items()}
    out = {k: floor[k] + min(left[k], int(x)) for k, x in exact.items()}
    for k in sorted(sizes, key=lambda k: (-(exact[k] - int(exact[k])), -sizes[k], k)):
        if sum(out.values()) >= n:
            break
        if out[k] < sizes[k]:
            out[k] += 1
    return out


def sample_shards(inputs: list[str | Path], n: int, output: str | Path, *, seed: int = 0,
                  stratify: str = "source") -> SampleResult:
    """Draw the sample and write it as JSONL (atomically).

    Raises:
        InputError: no shards, ``n`` < 1, or nothing readable.
    """
    if n < 1:
        raise InputError("-n must be at least 1")
    shards = list_shards(inputs)
    rng = random.Random(seed)
    reservoirs: dict[str, list[tuple[str, int]]] = {}  # stratum -> places (shard, line), not documents
    seen: dict[str, int] = {}
    skipped, failed, total = 0, {}, 0
    for shard in shards:
        try:
            for rec in read_shard(shard):
                if not isinstance(rec, Doc):
                    skipped += 1
                    continue
                key = (rec.source or shard.name) if stratify == "source" else shard.name
                count = seen.get(key, 0) + 1
                seen[key] = count
                total += 1
                bucket = reservoirs.setdefault(key, [])
                if len(bucket) < n:
                    bucket.append((str(shard), rec.line))
                else:
                    j = rng.randrange(count)
                    if j < n:
                        bucket[j] = (str(shard), rec.line)
        except ShardError as exc:
            failed[str(shard)] = str(exc)
    if not total:
        raise InputError(f"no readable documents in {len(shards)} shard(s)" + (f": {failed}" if failed else ""))
    quota = allocate(seen, n)
    chosen = {key: sorted(rng.sample(bucket, min(quota[key], len(bucket))))
              for key, bucket in sorted(reservoirs.items())}
    docs = _fetch({place for places in chosen.values() for place in places}, shards)
    picked: list[dict[str, Any]] = [
        {"id": d.id, "text": d.text, "source": d.source or key, "shard": shard, "metadata": d.metadata}
        for key, places in chosen.items() for shard, line in places for d in [docs[(shard, line)]]]
    out = Path(output)
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in picked:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    strata = {k: {"documents": seen[k], "sampled": quota[k]} for k in sorted(seen)}
    return SampleResult(output=str(out), shards=len(shards), documents=total, sampled=len(picked), strata=strata,
                        skipped_records=skipped, failed_shards=failed)


def _fetch(places: set[tuple[str, int]], shards: list[Path]) -> dict[tuple[str, int], Doc]:
    """The documents at the chosen places: a second pass over only the shards that hold one."""
    out: dict[tuple[str, int], Doc] = {}
    wanted = {shard for shard, _ in places}
    for shard in shards:
        if str(shard) not in wanted:
            continue
        for rec in read_shard(shard):
            if isinstance(rec, Doc) and (str(shard), rec.line) in places:
                out[(str(shard), rec.line)] = rec
    return out
