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
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from annotator.corpus.shards import Doc, ShardError, list_shards, read_shard
from annotator.errors import InputError
from annotator.io import atomic_path
from annotator.stats import StratifiedReservoir


class SampleResult(BaseModel):
    """What a sampling pass saw and wrote."""

    output: str
    shards: int
    documents: int
    sampled: int
    strata: dict[str, dict[str, int]]
    skipped_records: int
    failed_shards: dict[str, str]


def sample_shards(inputs: list[str | Path], n: int, output: str | Path, *, seed: int = 0,
                  stratify: str = "source") -> SampleResult:
    """Draw the sample and write it as JSONL (atomically).

    Raises:
        InputError: no shards, ``n`` < 1, or nothing readable.
    """
    if n < 1:
        raise InputError("-n must be at least 1")
    shards = list_shards(inputs)
    reservoir = StratifiedReservoir(n, seed)  # places (shard, line) per stratum, not documents
    skipped, failed, total = 0, {}, 0
    for shard in shards:
        try:
            for rec in read_shard(shard):
                if not isinstance(rec, Doc):
                    skipped += 1
                    continue
                key = (rec.source or shard.name) if stratify == "source" else shard.name
                total += 1
                reservoir.add(key, (str(shard), rec.line))
        except ShardError as exc:
            failed[str(shard)] = str(exc)
    if not total:
        raise InputError(f"no readable documents in {len(shards)} shard(s)" + (f": {failed}" if failed else ""))
    chosen = {key: sorted(places) for key, places in reservoir.draw().items()}
    docs = _fetch({place for places in chosen.values() for place in places}, shards)
    picked: list[dict[str, Any]] = [
        {"id": d.id, "text": d.text, "source": d.source or key, "shard": shard, "metadata": d.metadata}
        for key, places in chosen.items() for shard, line in places for d in [docs[(shard, line)]]]
    out = Path(output)
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in picked:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    strata = {k: {"documents": reservoir.seen[k], "sampled": len(chosen[k])} for k in sorted(reservoir.seen)}
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
