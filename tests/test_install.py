"""Installed, not only editable: the wheel works from a fresh virtual environment."""

import os
import subprocess
import sys
import sysconfig
import uuid

import pandas as pd
import pytest
from conftest import ROOT

pytestmark = [pytest.mark.timeout(900), pytest.mark.argilla, pytest.mark.slow]


def test_the_wheel_labels_scores_and_pushes_outside_the_checkout(tmp_path, llm, argilla_server):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("slice_annotator-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)], check=True)
    # dependencies come from the test environment; the package itself only from the wheel
    env = {**os.environ, **argilla_server, "PYTHONPATH": sysconfig.get_paths()["purelib"],
           "ANNOTATOR_CACHE_DIR": str(tmp_path / "cache")}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args):
        res = subprocess.run([str(venv / "bin" / "annotator"), *map(str, args)], cwd=work, env=env,
                             capture_output=True, text=True, timeout=300)
        return res

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import annotator; print(annotator.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert str(venv) in where.stdout, where.stdout + where.stderr
    res = run("label", ROOT / "examples" / "gsm8k-10.jsonl", "-o", "labels.parquet", "--base-url", llm.url,
              "--model", "m")
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(pd.read_parquet(work / "labels.parquet")) == 10
    res = run("eval-labels", "labels.parquet", "labels.parquet")
    assert res.returncode == 0 and "background" in res.stdout
    res = run("taxonomy", "show")
    assert res.returncode == 0 and "competition_math" in res.stdout
    res = run("review", "push", "labels.parquet", "--dataset", f"wheel-{uuid.uuid4().hex[:6]}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (work / "review" / "guidelines-eval.md").is_file()
    assert not list(venv.rglob("guidelines-eval.md"))  # nothing written into site-packages
