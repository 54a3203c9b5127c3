"""``annotator label --batch-api``: the requests the cache cannot answer go through the Batch API.

Steps, each recorded in ``<output>.batches/state.json`` (written atomically after every change)
so that a rerun after kill -9 or a closed laptop *attaches* to the batches it already paid for:

1. plan: the tagger's requests the cache cannot answer (exactly the online request bodies,
   ``custom_id`` = our cache key) are written to ``input-NNNN.jsonl`` files, split under the
   provider's limits (``--batch-size`` requests, default 50,000; 190 MB); requests already in an
   uncollected batch of an earlier run are left out;
2. submit: upload (the file id is recorded and saved before the batch is created), create the
   batch (its id is recorded; a batch created by a run killed while the create call was answered
   is found again by its recorded input file, so it is never created twice). A run killed while the
   upload was answered uploads the file again: a stray file, no batch, nothing paid;
3. wait: poll with backoff (``--batch-poll`` seconds, x1.5 up to 5 min) and print a progress line;
4. collect: download the output and error files; each answer is validated exactly as the online
   path does and cached; invalid answers, failed requests and those a batch never ran (expired,
   cancelled) are counted and left to the online path that follows, so the labels table is the
   same as an online run's.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from annotator.errors import ConfigError
from annotator.io import write_json_atomic
from annotator.labeling.tagging import Tagger
from annotator.llm.batches import TERMINAL, BatchAPI
from annotator.llm.cache import short_key
from annotator.llm.translate import redact
from annotator.llm.usage import Counters, estimate_answer_tokens, estimate_tokens, run_cost
from annotator.records import Item

MAX_BYTES = 190 * 1024 * 1024
POLL_CAP = 300.0


class BatchCounts(BaseModel):
    """What the Batch API did in one run."""

    batches: int = 0
    attached: int = 0  # batches of an earlier run this run waited for instead of paying again
    requests: int = 0
    answered: int = 0
    invalid: int = 0
    failed: int = 0
    not_run: int = 0  # expired or cancelled before they ran
    over_budget: int = 0  # requests not submitted: --max-cost reached (estimated at the batch price)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def state_dir(output: str | Path) -> Path:
    """``<output>.batches/``: the requests files and ``state.json``."""
    return Path(f"{output}.batches")


def load_state(output: str | Path) -> dict[str, Any]:
    """The recorded batches of ``output`` (empty when none).

    Raises:
        ConfigError: a state file that cannot be read.
    """
    path = state_dir(output) / "state.json"
    if not path.exists():
        return {"batches": []}
    try:
        state = json.loads(path.read_text())
        assert isinstance(state.get("batches"), list)
        return state
    except (OSError, ValueError, AssertionError) as exc:
        raise ConfigError(f"{path}: unreadable batch state ({exc}); move it aside to start over") from None


def run_batches(tagger: Tagger, items: Iterable[Item], api: BatchAPI, *, output: str | Path,
                max_requests: int, poll: float, report: Callable[[str], None]) -> BatchCounts:
    """Label through the Batch API what the cache cannot answer; the tagger takes the answers; return the counts.

    What the batches are estimated to cost is told to the tagger (:meth:`Tagger.spent_elsewhere`),
    so the online pass that follows keeps ``--max-cost`` for both together.
    """
    api.check()
    folder = state_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    state = load_state(output)
    state["endpoint"] = tagger.client.config.labeler
    state["base_url"] = redact(tagger.client.config.base_url)
    counts = BatchCounts()
    open_entries = [b for b in state["batches"] if not b.get("collected")]
    counts.attached = len(open_entries)
    budget = _Budget(tagger) if tagger.options.max_cost is not None and tagger.price is not None else None

    def open_keys() -> Iterator[str]:  # in open batches: not sent again, and counted against the budget
        for entry in open_entries:
            for key, body in _requests_in(folder / entry["input"]):
                if budget:
                    budget.count(body)
                yield key

    pending = _key_set(open_keys())
    requests = _not_in(tagger.pending_requests(items), pending)
    if budget:
        requests = budget.within(requests, counts)
    for path, n in _write_requests(requests, folder, len(state["batches"]), max_requests):
        state["batches"].append({"input": path.name, "requests": n})
    _save(folder, state)
    for entry in state["batches"]:
        if not entry.get("collected") and not entry.get("batch_id"):
            _submit(api, entry, folder, state)
    mine = [b for b in state["batches"] if not b.get("collected")]
    counts.batches, counts.requests = len(mine), sum(b["requests"] for b in mine)
    try:
        _wait(api, mine, folder, state, poll, report)
    except KeyboardInterrupt:
        report(f"the batches keep running at the provider (recorded in {folder / 'state.json'}): rerun the same "
               f"command to attach to them, or `annotator batches cancel {output}`")
        raise
    for entry in mine:
        _collect(api, entry, tagger, counts)
        entry["collected"] = True
        (folder / entry["input"]).unlink(missing_ok=True)
        _save(folder, state)
    if tagger.price is not None:  # billed at batch prices; the online pass gets what is left of --max-cost
        tagger.spent_elsewhere(run_cost(tagger.price, Counters(), counts) or 0.0)
    return counts


def through_batches(tagger: Tagger, items: Iterable[Item], output: str | Path, *, batch_size: int,
                    poll: float) -> BatchCounts:
    """:func:`run_batches` with the tagger's endpoint's Batch API; progress lines on stderr."""
    api = BatchAPI(tagger.client.config)
    try:
        return run_batches(tagger, items, api, output=output, max_requests=batch_size, poll=poll,
                           report=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        api.close()


def _save(folder: Path, state: dict[str, Any]) -> None:
    write_json_atomic(folder / "state.json", state)


def _requests_in(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(custom_id, body) of a requests file (none once it is collected and removed)."""
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                request = json.loads(line)
                yield request["custom_id"], request["body"]


class _Budget:
    """``--max-cost`` applied before submitting.

    Each request is estimated as ``--dry-run`` does (prompt from its text, the answer from the
    dimensions) at the batch price (the online price where the table has none). Requests in open
    batches count first; those beyond the budget are not put in a batch. The online pass that
    follows gets what the batches did not spend.
    """

    def __init__(self, tagger: Tagger) -> None:
        assert tagger.price is not None and tagger.options.max_cost is not None
        self.price, self.max_cost = tagger.price, tagger.options.max_cost
        self.answer = estimate_answer_tokens(len(tagger.dims), tagger.options.rationale)
        self.spent = 0.0

    def count(self, body: dict[str, Any]) -> None:
        """Add a request's estimated cost to the spend."""
        prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in body.get("messages", []))
        cost = self.price.batch_cost(prompt, self.answer)
        self.spent += self.price.cost(prompt, self.answer) if cost is None else cost

    def within(self, requests: Iterator[tuple[str, dict[str, Any]]],
               counts: BatchCounts) -> Iterator[tuple[str, dict[str, Any]]]:
        """The requests that fit; the rest are counted in ``counts.over_budget``, not sent."""
        for key, body in requests:
            self.count(body)
            if self.spent > self.max_cost:
                counts.over_budget += 1
                continue
            yield key, body


def _key_set(keys: Iterable[str]) -> np.ndarray:
    """:func:`~annotator.llm.cache.short_key` of every request key, sorted (1M requests in open batches: 8 MB).

    A false match (2^-64 odds) only sends that request online after the batches, so it is safe.
    """
    return np.sort(np.fromiter((short_key(k) for k in keys), dtype=np.uint64))


def _not_in(requests: Iterator[tuple[str, dict[str, Any]]], skip: np.ndarray) -> Iterator[tuple[str, dict[str, Any]]]:
    """The requests whose keys are not in ``skip`` (:func:`_key_set`: already in an open batch)."""
    for key, body in requests:
        if len(skip):
            h = np.uint64(short_key(key))
            at = int(np.searchsorted(skip, h))
            if at < len(skip) and skip[at] == h:
                continue
        yield key, body


def _write_requests(requests: Iterator[tuple[str, dict[str, Any]]], folder: Path, start: int,
                    max_requests: int) -> Iterator[tuple[Path, int]]:
    """Write request files under the limits; yield each finished file and its number of requests."""
    fh, path, n, size, index = None, None, 0, 0, start
    try:
        for key, body in requests:
            line = json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                              ensure_ascii=False, separators=(",", ":")) + "\n"
            if fh is not None and (n >= max_requests or size + len(line.encode()) > MAX_BYTES):
                fh.close()
                yield path, n
                fh = None
            if fh is None:
                index += 1
                path = folder / f"input-{index:04d}.jsonl"
                fh, n, size = open(path, "w", encoding="utf-8"), 0, 0
            fh.write(line)
            n, size = n + 1, size + len(line.encode())
        if fh is not None:
            fh.close()
            fh = None
            yield path, n
    finally:
        if fh is not None:
            fh.close()


def _submit(api: BatchAPI, entry: dict[str, Any], folder: Path, state: dict[str, Any]) -> None:
    """Upload and create, recording each id the moment it exists (a kill between the steps never pays twice)."""
    if not entry.get("file_id"):
        entry["file_id"] = api.upload(folder / entry["input"])
        _save(folder, state)  # recorded before the batch is created: a rerun finds the batch by this file
        batch = api.create(entry["file_id"])
    else:  # uploaded by a run killed before it recorded the batch: find it, or create it now
        batch = api.find(entry["file_id"]) or api.create(entry["file_id"])
    entry.update(batch_id=batch["id"], status=batch["status"])
    _save(folder, state)


def _wait(api: BatchAPI, entries: list[dict[str, Any]], folder: Path, state: dict[str, Any], poll: float,
          report: Callable[[str], None]) -> None:
    interval, started = poll, time.monotonic()
    while True:
        for entry in entries:
            if entry.get("status") in TERMINAL and entry.get("polled"):
                continue
            batch = api.retrieve(entry["batch_id"])
            counts = batch.get("request_counts") or {}
            entry.update(status=batch["status"], output_file_id=batch.get("output_file_id"),
                         error_file_id=batch.get("error_file_id"), polled=True,
                         done=(counts.get("completed") or 0) + (counts.get("failed") or 0))
        _save(folder, state)
        total = sum(e["requests"] for e in entries)
        done = sum(e.get("done", 0) for e in entries)
        statuses = ", ".join(f"{e['batch_id']} {e['status']}" for e in entries)
        report(f"batches: {done}/{total} requests done after {time.monotonic() - started:.0f}s ({statuses})")
        if all(e["status"] in TERMINAL for e in entries):
            return
        time.sleep(interval)
        interval = min(interval * 1.5, POLL_CAP)


def _collect(api: BatchAPI, entry: dict[str, Any], tagger: Tagger, counts: BatchCounts) -> None:
    seen = 0
    for file_id in (entry.get("output_file_id"), entry.get("error_file_id")):
        if not file_id:
            continue
        for line in api.lines(file_id):
            record = json.loads(line)
            seen += 1
            response = record.get("response") or {}
            if response.get("status_code") != 200:
                code = (record.get("error") or {}).get("code") or ""
                if code in ("batch_expired", "batch_cancelled"):
                    counts.not_run += 1
                else:
                    counts.failed += 1
                continue
            body = response.get("body") or {}
            usage = body.get("usage") or {}
            counts.prompt_tokens += usage.get("prompt_tokens") or 0
            counts.completion_tokens += usage.get("completion_tokens") or 0
            if tagger.accept(record["custom_id"], body):
                counts.answered += 1
            else:
                counts.invalid += 1
    counts.not_run += max(0, entry["requests"] - seen)  # a failed or cancelled batch without files


# ``annotator batches status|cancel OUTPUT``: the recorded batches as the provider sees them now.

def batch_table(output: str | Path, *, base_url: str | None = None, api_key_env: str | None = None,
                cancel: bool = False) -> str:
    """The recorded batches of ``output`` as the provider sees them now (``annotator batches status``).

    With ``cancel``, every batch still running is cancelled first (``annotator batches cancel``);
    a rerun of ``annotator label`` then collects what they answered and labels the rest online.

    Args:
        output: the labels table the batches are for.
        base_url: the endpoint [the one the run recorded].
        api_key_env: the environment variable holding the API key [OPENAI_API_KEY].
        cancel: cancel running batches.

    Raises:
        ConfigError: no batches recorded for ``output``.
    """
    from annotator.config import api_key, load_settings
    from annotator.llm.endpoint import EndpointConfig

    # one model's state next to the table; several models' next to each model's table
    tables = [Path(output), *sorted(Path(f"{output}.models").glob("*.parquet"))]
    states = [(t, load_state(t)) for t in tables]
    states = [(t, st) for t, st in states if st["batches"]]
    if not states:
        raise ConfigError(f"{output}: no batches recorded (looked in {state_dir(output)}/state.json and "
                          f"{output}.models/*.parquet.batches/state.json)")
    settings = load_settings({"base_url": base_url, "api_key_env": api_key_env})  # --base-url, env, config
    url = settings.base_url or states[0][1].get("base_url")  # else the endpoint the run recorded
    if url and "***" in url:  # credentials are never recorded: the run's URL carried some
        raise ConfigError(f"{output}: the run's endpoint carried credentials, which are never stored ({url}): "
                          "pass the URL again with --base-url (or ANNOTATOR_BASE_URL)")
    api = BatchAPI(EndpointConfig(base_url=url, model=settings.model or "-", api_key=api_key(settings)))
    try:
        return _table([row for t, st in states for row in _rows(st, api, cancel, "" if t == Path(output) else t.stem)])
    finally:
        api.close()


def _rows(state: dict[str, Any], api: BatchAPI, cancel: bool, model: str) -> list[dict[str, Any]]:
    rows = []
    for entry in state["batches"]:
        name = f"{model}/{entry['input']}" if model else entry["input"]
        row = {"batch_id": entry.get("batch_id"), "input": name, "requests": entry["requests"],
               "collected": bool(entry.get("collected"))}
        if entry.get("batch_id"):
            batch = api.retrieve(entry["batch_id"])
            if cancel and batch["status"] not in TERMINAL and batch["status"] != "cancelling":
                batch = api.cancel(entry["batch_id"])
            counts = batch.get("request_counts") or {}
            row.update(status=batch["status"], completed=counts.get("completed"), failed=counts.get("failed"))
        else:
            row.update(status="not submitted", completed=None, failed=None)
        rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    width = max(len("requests file"), *(len(r["input"]) for r in rows))
    lines = [f"| {'batch':<22} | {'status':<13} | {'requests':>8} | {'completed':>9} | {'failed':>6} | collected | "
             f"{'requests file':<{width}} |"]
    for r in rows:
        done = "-" if r["completed"] is None else r["completed"]
        failed = "-" if r["failed"] is None else r["failed"]
        lines.append(f"| {r['batch_id'] or '-':<22} | {r['status']:<13} | {r['requests']:>8} | {done:>9} | "
                     f"{failed:>6} | {'yes' if r['collected'] else 'no':<9} | {r['input']:<{width}} |")
    return "\n".join(lines)
