"""The trust gate for classified shards: a stratified audit sample for human review.

``annotator review push OUTDIR --kind corpus --sample N`` draws N classified documents from the
labeled shards under OUTDIR in one streaming pass (a seeded reservoir per predicted ``genre``,
places shared in proportion to the strata's sizes, so the sample stays self-weighting and the
reviewed accuracy estimates the accuracy of every document), finds their texts (the ``text``
column with ``--keep-text``, else the source shards named in ``OUTDIR/manifest.json``), and
writes ``OUTDIR/audit-<N>-<seed>.parquet``: a labels table that ``review push`` sends to Argilla
with every record flagged ``audit=yes``. ``review status`` then reports per-dimension accuracy
of the classifier with a 95% Wilson interval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from annotator.corpus.shards import Doc, ShardError, read_shard
from annotator.errors import InputError
from annotator.io import records, table_writer
from annotator.stats import StratifiedReservoir

STRATUM = "genre"


def audit_sample(out_dir: str | Path, n: int, *, seed: int = 0) -> Path:
    """Write the audit sample's labels table and return its path.

    Raises:
        InputError: not a labeled-shards directory, nothing classified, or texts not found.
    """
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{out}: no manifest.json (a directory written by `annotator shards label`)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    source_of = {Path(e["output"]).name: e["shard"] for e in manifest.get("shards", {}).values() if e.get("output")}
    reservoir = StratifiedReservoir(n, seed)
    for part in sorted(out.glob("*.parquet")):
        if part.name.startswith("audit-"):
            continue
        for _, row in records(part):
            if row.get("status") != "ok":
                continue
            row["_output"] = part.name
            reservoir.add(str(row.get(STRATUM)), row)
    if not reservoir.seen:
        raise InputError(f"{out}: no classified documents to sample")
    picked = [row for rows in reservoir.draw().values() for row in rows]
    _attach_texts(picked, source_of, out)
    for row in picked:
        shard = source_of.get(row.pop("_output"), "")
        row.update(kind="corpus", source=Path(shard).name.split(".")[0] if shard else "corpus",
                   prompt_version=str(manifest.get("model_id") or ""), error=None)
    path = out / f"audit-{n}-{seed}.parquet"
    with table_writer(path) as write:
        write(picked)
    return path


def _attach_texts(rows: list[dict[str, Any]], source_of: dict[str, str], out: Path) -> None:
    missing = [r for r in rows if not r.get("text")]
    by_shard: dict[str, dict[str, dict[str, Any]]] = {}
    for row in missing:
        shard = source_of.get(row["_output"])
        if shard is None:
            raise InputError(f"{out}: {row['_output']} is not in manifest.json; cannot find the texts")
        by_shard.setdefault(shard, {})[str(row["id"])] = row
    for shard, wanted in by_shard.items():
        try:
            for rec in read_shard(Path(shard)):
                if isinstance(rec, Doc) and rec.id in wanted:
                    wanted.pop(rec.id)["text"] = rec.text
                    if not wanted:
                        break
        except ShardError as exc:
            raise InputError(f"cannot read the texts of the audit sample: {exc}") from None
        if wanted:
            raise InputError(f"{shard}: documents {sorted(wanted)[:3]} not found (the shard changed since labeling?)")
