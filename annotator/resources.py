"""Locate the data directories (``schemas/``, ``prompts/``) shipped with the package.

A wheel carries them under ``annotator/_data/``; an editable install or a source checkout
reads them from the repository root.
"""

from __future__ import annotations

from pathlib import Path

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
