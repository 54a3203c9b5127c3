"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers and injected faults.

Tests and benchmarks run it as a subprocess (``python tests/fakellm.py --port P``) and talk to it
over HTTP only. By default it answers ``/v1/chat/completions`` with a valid answer generated from
the request's JSON schema (``response_format`` or ``tools``): the choice of each label is a hash
of the item text (and ``seed``), so answers are deterministic. Rules posted to
``/_control/rules`` override that for requests whose last user message contains ``match``:

    {"match": "item-7", "times": 2, "status": 429, "headers": {"Retry-After": "1"}}
    {"match": "item-8", "times": 1, "status": 500}
    {"match": "item-9", "times": 1, "content": "{not json"}
    {"match": "item-3", "answer": {"background": "not_a_label"}}   # merged into the answer
    {"match": "item-4", "delay": 2.0}
    {"match": "item-5", "drop": true}                                 # close the connection
    {"match": "item-6", "model": "m2", "answer": {...}}               # only for requests to model m2
    {"match": "batch", "omit_ids": ["x1"]}                            # leave items out of a batch

It also implements the Batch API (``/v1/files``, ``/v1/batches``): a batch finishes
``batch.delay`` seconds after creation; ``batch.hold_create`` / ``batch.hold_upload`` S hold the
next create / upload answer S seconds after the batch / file exists (a kill while it is answered);
``batch.expire_after`` N expires it after N requests
(the rest in the error file), ``batch.fail_every`` k fails every k-th request (a 500 line),
``batch.absent`` answers 404 on every files/batches path (a server without a Batch API, like vLLM).

Like a model that reads its prompt, a default answer keeps to the evidence lines of the message
("output_constraint must be number", "output_constraint is not option_letter"; per item in a
batch); an ``answer`` rule overrides that too (to script an answer its record contradicts).

``times`` defaults to unlimited. ``/_control/log`` lists every request received (user message
head and tail, status sent); ``/_control/reset`` clears rules and the log.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiohttp import web

ITEM_ID = re.compile(r'^id: (\S+)$', re.M)
MUST = re.compile(r"\b([a-z_]+) must be ([a-z_]+(?: or [a-z_]+)*)")
MUST_NOT = re.compile(r"\b([a-z_]+) is not ([a-z_]+(?: or [a-z_]+)*)")


def evidence_lines(text: str) -> dict[str, tuple[set[str], set[str]]]:
    """dimension -> (labels it must be, labels it must not be), from a message's evidence lines."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for pattern, slot in ((MUST, 0), (MUST_NOT, 1)):
        for dim, labels in pattern.findall(text):
            out.setdefault(dim, (set(), set()))[slot].update(labels.split(" or "))
    return out


def _obey(options: list[Any], rule: tuple[set[str], set[str]] | None) -> list[Any]:
    if not rule:
        return options
    must, must_not = rule
    kept = [o for o in options if (not must or o in must) and o not in must_not]
    return kept or options


def _choose(options: list[Any], seed: str) -> Any:
    h = int(hashlib.md5(seed.encode()).hexdigest()[:8], 16)
    return options[h % len(options)]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = root.get("$defs", {}).get(name) or root.get("definitions", {})[name]
    return schema


def generate(schema: dict[str, Any], root: dict[str, Any], seed: str, ids: list[str],
             said: dict[str, dict[str, tuple[set[str], set[str]]]] | None = None, obey: Any = None) -> Any:
    """A value valid under ``schema`` (enums, arrays with bounds, objects, numbers, strings).

    ``said``: item id ("" for a single item) -> its evidence lines, kept to by enum choices.
    """
    schema = _resolve(schema, root)
    said = said or {}
    if "anyOf" in schema:
        return generate(schema["anyOf"][0], root, seed, ids, said, obey)
    if "enum" in schema:
        return _choose(_obey(schema["enum"], obey), seed)
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        out = {}
        for name, sub in schema.get("properties", {}).items():
            if name == "items" and _resolve(sub, root).get("type") == "array" and ids:
                entry = _resolve(sub, root)["items"]
                out[name] = [dict(generate(entry, root, seed + i, [], {"": said.get(i, {})}), id=i) for i in ids]
            else:
                out[name] = generate(sub, root, f"{seed}/{name}", ids, said, said.get("", {}).get(name))
        return out
    if kind == "array":
        lo = schema.get("minItems", 0)
        hi = schema.get("maxItems", max(lo, 1))
        options = _resolve(schema.get("items", {}), root).get("enum")
        if options:
            n = max(lo, min(hi, 1 + int(hashlib.md5(seed.encode()).hexdigest()[:2], 16) % 2))
            start = int(hashlib.md5(seed.encode()).hexdigest()[2:6], 16)
            return [options[(start + k) % len(options)] for k in range(min(n, len(options)))]
        return [generate(schema.get("items", {}), root, f"{seed}/{k}", ids) for k in range(max(lo, 1))]
    if kind == "integer":
        return 1
    if kind == "number":
        return 0.8
    if kind == "boolean":
        return True
    return "scripted rationale"


class Limit:
    """A provider's rate limit: a bucket of one second's worth, refilled at ``per_minute / 60`` per second."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def headers(self, name: str) -> dict[str, str]:
        reset = (self.capacity - self.level) / self.rate
        return {f"x-ratelimit-limit-{name}": str(int(self.per_minute)),
                f"x-ratelimit-remaining-{name}": str(max(0, int(self.level))),
                f"x-ratelimit-reset-{name}": f"{int(reset * 1000)}ms" if reset < 1 else f"{reset:.1f}s"}


class FakeLLM:
    """State of one server: rules, log and settings."""

    def __init__(self, latency: float, keep_log: bool = True) -> None:
        self.latency = latency
        self.keep_log = keep_log  # off for million-request benchmarks
        self.rules: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.limits: dict[str, Limit] = {}  # "requests" / "tokens" -> enforced limit
        self.limit_headers = True
        self.counts = {"accepted": 0, "rejected": 0}
        self.reject_modes: list[str] = []  # e.g. ["json_schema"], refused as llama.cpp's server does
        self.context: int | None = None  # served context (tokens ~ characters / 4); larger prompts get 400
        self.tell_context = False  # show max_model_len in /v1/models (as vLLM does)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_started: dict[str, float] = {}
        self.batch_conf: dict[str, Any] = {}  # delay (s), expire_after (requests done before expiry), fail_every

    def _rule_for(self, text: str, model: str | None = None) -> dict[str, Any] | None:
        for rule in self.rules:
            if rule.get("model") not in (None, model):  # a rule for one model only
                continue
            if rule.get("match", "") in text and rule.get("times", -1) != 0:
                if rule.get("times", -1) > 0:
                    rule["times"] -= 1
                return rule
        return None

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages", [])
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        first_user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        entry = {"user": first_user[:400], "tail": first_user[-400:], "n_messages": len(messages), "t": time.time(),
                 "model": body.get("model"), "auth": request.headers.get("Authorization", "")[:7],
                 "bytes": request.content_length, "seed": body.get("seed"),
                 "temperature": body.get("temperature"),
                 "peer": (request.transport.get_extra_info("peername") or (None, None))[1]
                 if request.transport else None}
        if self.keep_log:
            self.log.append(entry)
        rule = self._rule_for(first_user if len(messages) <= 2 else first_user + user, body.get("model"))
        refused = self._refuse(body)
        if refused is not None:
            entry["status"] = refused.status
            return refused
        limited, limit_headers = self._admit(body)
        if limited is not None:
            entry["status"] = 429
            return limited
        if self.latency:
            await asyncio.sleep(self.latency)
        if rule and rule.get("delay"):
            await asyncio.sleep(rule["delay"])
        if rule and rule.get("drop"):
            entry["status"] = "dropped"
            request.transport.close()
            raise ConnectionResetError("dropped by rule")
        if rule and "raw" in rule:  # a server that is not a chat API (an HTML page, "{}")
            entry["status"] = rule.get("raw_status", 200)
            return web.Response(text=rule["raw"], status=entry["status"],
                                content_type=rule.get("content_type", "text/html"))
        if rule and rule.get("status"):
            entry["status"] = rule["status"]
            return web.json_response({"error": {"message": "scripted failure", "type": "scripted"}},
                                     status=rule["status"], headers=rule.get("headers", {}))
        entry["status"] = 200
        return web.json_response(self._completion(body, rule), headers=limit_headers or None)

    def _completion(self, body: dict[str, Any], rule: dict[str, Any] | None) -> dict[str, Any]:
        """A chat completion answering ``body`` (valid under its schema unless a rule says otherwise)."""
        messages = body.get("messages", [])
        first_user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        schema, tool = _schema_of(body)
        ids = [i for i in ITEM_ID.findall(first_user) if i not in (rule or {}).get("omit_ids", [])]
        seed = hashlib.md5(f"{first_user}|{body.get('seed')}".encode()).hexdigest()
        said = {"": evidence_lines(first_user)} if not ids else {
            i: evidence_lines(block) for i, block in zip(ids, re.split(r"^id: \S+$", first_user, flags=re.M)[1:],
                                                       strict=False)}
        answer = generate(schema, schema, seed, ids, said) if schema else {"text": "hello"}
        if rule and rule.get("answer"):
            answer.update(rule["answer"])
        content = rule["content"] if rule and "content" in rule else json.dumps(answer)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": tool, "arguments": content}}]}
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if tool else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4 + 1,
                      "total_tokens": prompt_tokens + len(content) // 4 + 1},
        }

    def _admit(self, body: dict[str, Any]) -> tuple[web.Response | None, dict[str, str]]:
        """Enforce the rate limits: (None or the 429 answer, the rate-limit headers to send)."""
        if not self.limits:
            return None, {}
        tokens = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4 + int(
            body.get("max_tokens") or 300)
        cost = {"requests": 1.0, "tokens": float(tokens)}
        for limit in self.limits.values():
            limit.refill()
        ok = all(limit.level >= min(cost[name], limit.capacity) for name, limit in self.limits.items())
        if ok:
            for name, limit in self.limits.items():
                limit.level -= cost[name]
        headers: dict[str, str] = {}
        if self.limit_headers:
            for name, limit in self.limits.items():
                headers.update(limit.headers(name))
        if ok:
            self.counts["accepted"] += 1
            return None, headers
        self.counts["rejected"] += 1
        return web.json_response({"error": {"message": "Rate limit reached", "type": "requests",
                                             "code": "rate_limit_exceeded"}}, status=429, headers=headers), headers

    def _refuse(self, body: dict[str, Any]) -> web.Response | None:
        """A server that does not support a structured-output mode, or whose context is too small."""
        fmt = (body.get("response_format") or {}).get("type")
        mode = "json_schema" if fmt == "json_schema" else "tools" if body.get("tools") else "json"
        if mode in self.reject_modes:
            return web.json_response({"error": {"message": "response_format type must be text or json_object",
                                                 "type": "server_error"}}, status=500)
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4
        if self.context and prompt + int(body.get("max_tokens") or 0) > self.context:
            return web.json_response({"error": {"message": f"Requested tokens ({prompt}) exceed context window of "
                                                           f"{self.context}", "type": "invalid_request_error"}},
                                     status=400)
        return None

    # ---- files and batches (the OpenAI Batch API) ---------------------------------------------
    def _absent(self) -> web.Response | None:
        if self.batch_conf.get("absent"):
            return web.json_response({"detail": "Not Found"}, status=404)
        return None

    async def upload(self, request: web.Request) -> web.Response:
        if self._absent():
            return self._absent()
        form = await request.post()
        upload = form["file"]
        data = upload.file.read()
        fid = f"file-{len(self.files) + 1:04d}"
        self.files[fid] = data
        self.counts["files_uploaded"] = self.counts.get("files_uploaded", 0) + 1
        hold = self.batch_conf.pop("hold_upload", 0)  # once: the file exists, its id is not answered yet
        if hold:
            await asyncio.sleep(hold)
        return web.json_response({"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                  "filename": upload.filename, "purpose": form.get("purpose", "batch")})

    async def file_content(self, request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": f"no file {fid}"}}, status=404)
        return web.Response(body=self.files[fid], content_type="application/octet-stream")

    async def create_batch(self, request: web.Request) -> web.Response:
        data = await request.json()
        if data.get("input_file_id") not in self.files:
            return web.json_response({"error": {"message": "unknown input_file_id"}}, status=400)
        bid = f"batch_{len(self.batches) + 1:04d}"
        lines = [json.loads(x) for x in self.files[data["input_file_id"]].splitlines() if x.strip()]
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": data.get("endpoint"), "errors": None,
                             "input_file_id": data["input_file_id"], "completion_window": data.get("completion_window"),
                             "status": "validating", "output_file_id": None, "error_file_id": None,
                             "created_at": int(time.time()), "request_counts": {"total": len(lines), "completed": 0,
                                                                                "failed": 0}}
        self.batch_started[bid] = time.monotonic()
        self.counts["batch_requests"] = self.counts.get("batch_requests", 0) + len(lines)
        running = sum(b["status"] in ("validating", "in_progress") for b in self.batches.values())
        self.counts["most_batches_running"] = max(self.counts.get("most_batches_running", 0), running)
        hold = self.batch_conf.pop("hold_create", 0)  # once: the batch exists, its id is not answered yet
        if hold:
            await asyncio.sleep(hold)
        return web.json_response(self.batches[bid])

    def _advance(self, bid: str) -> dict[str, Any]:
        """Move a batch along: in_progress at once, finished after ``batch.delay`` seconds."""
        batch = self.batches[bid]
        if batch["status"] in ("completed", "expired", "cancelled", "failed"):
            return batch
        if batch["status"] == "cancelling":
            return self._finish(batch, "cancelled", limit=0)
        batch["status"] = "in_progress"
        if time.monotonic() - self.batch_started[bid] >= self.batch_conf.get("delay", 0.5):
            expire = self.batch_conf.get("expire_after")
            self._finish(batch, "expired" if expire is not None else "completed", limit=expire)
        return batch

    def _finish(self, batch: dict[str, Any], status: str, limit: int | None) -> dict[str, Any]:
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].splitlines() if x.strip()]
        out, err = [], []
        fail_every = self.batch_conf.get("fail_every")
        for n, line in enumerate(lines):
            if limit is not None and n >= limit:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                err.append({"id": f"req_{n}", "custom_id": line["custom_id"], "response": None,
                            "error": {"code": code, "message": "This request could not be executed before the "
                                                               "completion window expired."}})
                continue
            body = line["body"]
            first_user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
            rule = self._rule_for(first_user, body.get("model"))
            if (fail_every and n % fail_every == fail_every - 1) or (rule and rule.get("status")):
                err.append({"id": f"req_{n}", "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 500, "request_id": f"r{n}", "body": {"error": {"message": "scripted failure"}}}})
                continue
            out.append({"id": f"req_{n}", "custom_id": line["custom_id"], "error": None, "response": {
                "status_code": 200, "request_id": f"r{n}", "body": self._completion(body, rule)}})
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = f"file-{len(self.files) + 1:04d}"
                self.files[fid] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[name] = fid
        batch["status"] = status
        batch["request_counts"].update(completed=len(out), failed=len(err))
        return batch

    async def get_batch(self, request: web.Request) -> web.Response:
        bid = request.match_info["bid"]
        if bid not in self.batches:
            return web.json_response({"error": {"message": f"no batch {bid}"}}, status=404)
        self.counts["batch_polls"] = self.counts.get("batch_polls", 0) + 1
        return web.json_response(self._advance(bid))

    async def cancel_batch(self, request: web.Request) -> web.Response:
        bid = request.match_info["bid"]
        batch = self.batches[bid]
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "cancelling"
        return web.json_response(batch)

    async def list_batches(self, request: web.Request) -> web.Response:
        if self._absent():
            return self._absent()
        return web.json_response({"object": "list", "data": list(self.batches.values()), "has_more": False})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts)

    async def set_rules(self, request: web.Request) -> web.Response:
        self.rules = list(await request.json())
        return web.json_response({"rules": len(self.rules)})

    async def get_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def reset(self, request: web.Request) -> web.Response:
        self.rules, self.log = [], []
        self.counts = {"accepted": 0, "rejected": 0}
        data = await request.json() if request.can_read_body else {}
        if "latency" in data:
            self.latency = float(data["latency"])
        self.limits = {name: Limit(float(data[key])) for name, key in (("requests", "rpm"), ("tokens", "tpm"))
                       if data.get(key)}
        self.limit_headers = bool(data.get("limit_headers", True))
        self.reject_modes = list(data.get("reject_modes", []))
        self.context = data.get("context")
        self.tell_context = bool(data.get("tell_context", False))
        self.batch_conf = dict(data.get("batch", {}))
        if not data.get("keep_batches"):
            self.files, self.batches, self.batch_started = {}, {}, {}
        return web.json_response({"ok": True})

    async def models(self, request: web.Request) -> web.Response:
        entry = {"id": "fake-model", "object": "model"}
        if self.tell_context and self.context:
            entry["max_model_len"] = self.context
        return web.json_response({"object": "list", "data": [entry]})


def _schema_of(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"], None
    if fmt.get("type") == "json_object" and "schema" in fmt:
        return fmt["schema"], None
    tools = body.get("tools") or []
    if tools:
        fn = tools[0]["function"]
        return fn["parameters"], fn["name"]
    return None, None


def make_app(latency: float = 0.0, keep_log: bool = True) -> web.Application:
    """The aiohttp application."""
    fake = FakeLLM(latency, keep_log)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", fake.completions)
    app.router.add_get("/v1/models", fake.models)
    app.router.add_post("/_control/rules", fake.set_rules)
    app.router.add_get("/_control/log", fake.get_log)
    app.router.add_post("/_control/reset", fake.reset)
    app.router.add_get("/_control/stats", fake.stats)
    app.router.add_post("/v1/files", fake.upload)
    app.router.add_get("/v1/files/{fid}/content", fake.file_content)
    app.router.add_post("/v1/batches", fake.create_batch)
    app.router.add_get("/v1/batches", fake.list_batches)
    app.router.add_get("/v1/batches/{bid}", fake.get_batch)
    app.router.add_post("/v1/batches/{bid}/cancel", fake.cancel_batch)
    return app


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class FakeServer:
    """Handle on a fake LLM subprocess: base URL, scripted rules, request log."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port = port
        self.proc = proc
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"

    def reset(self, latency: float = 0.0, **limits: Any) -> None:
        """Clear rules and log; ``rpm``/``tpm`` enforce rate limits, ``limit_headers=False`` hides them."""
        _http("POST", f"{self.root}/_control/reset", {"latency": latency, **limits})

    def stats(self) -> dict[str, int]:
        """Requests accepted and rejected (429) by the rate limits since the last reset."""
        return _http("GET", f"{self.root}/_control/stats")

    def rules(self, rules: list[dict[str, Any]]) -> None:
        _http("POST", f"{self.root}/_control/rules", rules)

    def log(self) -> list[dict[str, Any]]:
        return _http("GET", f"{self.root}/_control/log")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_fake(latency_ms: float = 0.0, *, keep_log: bool = True) -> FakeServer:
    """Start the server as a subprocess on a free port; return once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--port", str(port), "--latency-ms", str(latency_ms),
         *([] if keep_log else ["--no-log"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = FakeServer(port, proc)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            _http("GET", f"{server.url}/models")
            return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake LLM server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-log", action="store_true", help="keep no request log (long benchmarks)")
    args = parser.parse_args()
    web.run_app(make_app(args.latency_ms / 1000.0, keep_log=not args.no_log), host="127.0.0.1", port=args.port,
                print=None, access_log=None, backlog=2048)


if __name__ == "__main__":
    main()
