"""kill -9 in the middle of a run, then rerun: nothing lost, nothing duplicated, no repeat payments."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
from conftest import ROOT, start_fake, write_jsonl


def test_kill_9_mid_run_then_resume(tmp_path):
    server = start_fake(latency_ms=100)
    try:
        n = 60
        path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"k{i}", "text": f"sample k{i}: question {i}"}
                                                   for i in range(n)])
        args = [sys.executable, "-m", "annotator.cli", "label", str(path), "-o", str(tmp_path / "out.parquet"),
                "--id-field", "id", "--base-url", server.url, "--model", "fake-model", "--concurrency", "4",
                "--mode", "json_schema"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while len(server.log()) < 20 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert not (tmp_path / "out.parquet").exists()  # killed before the atomic write
        def ids(entries):
            return [e["user"].split("sample ")[1].split(":")[0] for e in entries]

        time.sleep(0.3)  # let requests in flight at the kill finish on the server side
        before = server.log()
        answered = set(ids(e for e in before if e.get("status") == 200))
        assert 16 <= len(answered) < n

        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        again = ids(server.log()[len(before):])
        assert len(again) == len(set(again)), "the rerun asked an item twice"
        # only answers still in flight at the kill (at most --concurrency) may be paid again
        assert len(set(again) & answered) <= 4
        assert set(again) | answered == {f"k{i}" for i in range(n)}
        df = pd.read_parquet(tmp_path / "out.parquet")
        assert len(df) == n and df.id.is_unique and (df.status == "ok").all()
        assert "cached" in done.stdout and int(done.stdout.split("cached ")[1].split()[0]) >= len(answered) - 4
    finally:
        server.proc.kill()
