"""``annotator batches status|cancel OUTPUT``: the recorded batches as the provider sees them now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator.batch import load_state, state_dir
from annotator.errors import ConfigError
from annotator.llm.batches import TERMINAL, BatchAPI


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
    from annotator.llm import EndpointConfig

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
