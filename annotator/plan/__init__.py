"""Planning the data: the closing-the-loop step's output (``annotator map``).

``mapping`` turns a report's ``data`` findings into corpus categories (the taxonomy's mapping
rules), weights them, and writes ``mixture.json`` and ``manifest.parquet`` over the labeled
shards (audited labels only, unless told otherwise).

May import from ``annotator.diagnose``, ``annotator.review``, ``annotator.labeling``,
``annotator.llm`` and the shared modules.
"""
