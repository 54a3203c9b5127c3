"""Command line: thin click wrappers, one library call per command.

``main`` (the ``annotator`` entry point) holds ``label``, ``review`` and the error handling every
command shares; ``loop`` the closing-the-loop commands (``slices report``, ``map``,
``batches status|cancel``); ``corpus`` the corpus side (``shards ...``, ``distill``). The
sub-modules import only ``main``; this package assembles them, so nothing imports upward.
"""

from annotator.cli.corpus import distill_cmd, shards_group
from annotator.cli.loop import batches_group, map_cmd, slices_group
from annotator.cli.main import errors_to_messages, main

for _command in (slices_group, batches_group, map_cmd, shards_group, distill_cmd):
    main.add_command(_command)

__all__ = ["errors_to_messages", "main"]
