"""Shared pieces of the command line: turning :mod:`annotator.errors` into messages and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from annotator.errors import AnnotatorError


def errors_to_messages(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: package errors -> one message and exit 2; Ctrl-C -> exit 130."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AnnotatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: answers received so far are cached; rerun to continue", err=True)
            sys.exit(130)

    return wrapper
