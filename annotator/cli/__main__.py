"""``python -m annotator.cli``: the ``annotator`` command."""

from annotator.cli import main

main()
