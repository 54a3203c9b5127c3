"""Settings: command-line values, then environment, then ``annotator.toml``, then defaults.

Environment: ``ANNOTATOR_BASE_URL`` (falls back to ``OPENAI_BASE_URL``), ``ANNOTATOR_MODEL``,
``ANNOTATOR_CONFIG`` (path of the TOML file). The API key is read only from an environment
variable (``OPENAI_API_KEY``, or the one named by ``api_key_env``); a key written in the TOML
file is refused. With no endpoint configured, labeling uses the embedded local model.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from annotator.errors import ConfigError

CONFIG_NAME = "annotator.toml"


class Settings(BaseModel):
    """Every setting ``annotator label`` accepts from a config file or the command line."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    mode: Literal["auto", "json_schema", "tools", "json", "md_json"] = "auto"
    kind: Literal["eval", "corpus"] = "eval"
    taxonomy: str | None = None
    concurrency: int = Field(default=16, ge=1, le=4096)
    votes: int = Field(default=1, ge=1, le=25)
    items_per_request: int = Field(default=1, ge=1, le=64)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout: float = Field(default=120.0, gt=0)
    transport_retries: int = Field(default=6, ge=0, le=20)
    reasks: int = Field(default=2, ge=0, le=10)
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    pace: bool = True
    models: list[str] = Field(default_factory=list)  # two or more: each labels every item (consensus)
    batch_api: bool = False
    batch_size: int = Field(default=50000, ge=1, le=50000)
    batch_poll: float = Field(default=10.0, gt=0)
    max_chars: int = Field(default=12000, ge=200)
    detail: Literal["full", "short"] = "full"
    rationale: bool = True
    confidence: bool = True
    cache_dir: str | None = None
    no_cache: bool = False
    prices_file: str | None = None
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    fewshot: int = Field(default=0, ge=0, le=16)
    fewshot_pool: str | None = None
    candidates: int = Field(default=0, ge=0, le=32)
    cues: bool = True  # rank --candidates with schemas/label-cues.yaml beside the neighbours
    evidence: bool = True
    answer_field: str | None = None
    subset_field: str | None = None
    subset_majority: bool | None = None  # None: on for the embedded model, off otherwise
    model_path: str | None = None
    local_threads: int | None = None
    local_ctx: int = 4096

    @model_validator(mode="before")
    @classmethod
    def _several_models(cls, data: Any) -> Any:
        """``model`` may name several models (``--model A --model B``): the first is ``model``, all are ``models``."""
        if isinstance(data, dict) and isinstance(data.get("model"), list | tuple):
            names = [str(m) for m in data["model"]]
            data = {**data, "model": names[0] if names else None, "models": names if len(names) > 1 else []}
        return data

    @property
    def local(self) -> bool:
        """True when no endpoint is configured (the embedded model labels)."""
        return not self.base_url


def load_settings(cli: dict[str, Any], config_path: str | Path | None = None) -> Settings:
    """Merge the layers into validated settings.

    Args:
        cli: values given on the command line (None = not given).
        config_path: explicit TOML file; else ``$ANNOTATOR_CONFIG``; else ``./annotator.toml``.

    Raises:
        ConfigError: an unreadable or invalid TOML file (named), or an invalid value.
    """
    merged: dict[str, Any] = {}
    file = _config_file(config_path)
    if file is not None:
        merged.update(_read_toml(file))
    env = {
        "base_url": os.environ.get("ANNOTATOR_BASE_URL") or os.environ.get("OPENAI_BASE_URL"),
        "model": os.environ.get("ANNOTATOR_MODEL"),
    }
    merged.update({k: v for k, v in env.items() if v})
    merged.update({k: v for k, v in cli.items() if v is not None and v != ()})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        where = f" (from {file})" if file else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings{where}: {problems}") from None


def _config_file(explicit: str | Path | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    env = os.environ.get("ANNOTATOR_CONFIG")
    if env:
        return _config_file(env)
    local = Path.cwd() / CONFIG_NAME
    return local if local.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    if "api_key" in data:
        raise ConfigError(f"{path}: api_key must not be written in a file; set api_key_env to the "
                          "name of an environment variable instead")
    data = dict(data.get("label", {}), **{k: v for k, v in data.items() if k != "label"})
    return data


# What the embedded 135M model does best with (measured by benchmarks/label_quality.py; see
# the README): one retrieved labeled example plus answers restricted to the labels of the 8
# nearest labeled neighbours (zero-shot it is below the majority baseline), no free-text
# rationale or self-rated confidence (it rambles in them and they cost time), short label
# descriptions, one request at a time (llama.cpp serves one anyway), texts clipped to 1,500
# characters (prompt evaluation runs at ~150 tokens/s on 2 cores; the gist is enough).
LOCAL_DEFAULTS: dict[str, Any] = {
    "rationale": False, "confidence": False, "detail": "short", "fewshot": 1, "candidates": 8,
    "concurrency": 1, "max_tokens": 160, "max_chars": 1500,
}


def effective(settings: Settings) -> Settings:
    """Settings with the embedded-model defaults filled in where nothing was set explicitly."""
    if not settings.local:
        return settings
    update = {k: v for k, v in LOCAL_DEFAULTS.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=update)


def api_key(settings: Settings) -> str | None:
    """The API key from the environment variable the settings name (None if unset)."""
    return os.environ.get(settings.api_key_env) or None


# Locate the data directories (``schemas/``, ``prompts/``) shipped with the package.
#
# A wheel carries them under ``annotator/_data/``; an editable install or a source checkout
# reads them from the repository root.

_PACKAGE = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Return the directory ``name`` (``schemas`` or ``prompts``) of this installation."""
    bundled = _PACKAGE / "_data" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


def guidelines_dir() -> Path:
    """Where ``review push`` writes reviewer guidelines by default: ``./review`` in the working directory.

    Never the package's own checkout or installation, wherever the command is run from.
    """
    return Path.cwd() / "review"
