"""The corpus side: sample shards for the LLM teacher, distill its labels, classify every shard.

``shards`` reads JSONL / JSONL.gz / JSONL.zst / Parquet shards in constant memory; ``sample``
draws the teacher sample; ``distill`` and ``model`` train and hold the fast classifier;
``steps`` holds the datatrove steps; ``label`` runs them over every shard on a local, Ray or
Slurm executor; ``audit`` draws the trust gate's sample. Needs the ``scale`` extra (datatrove,
scikit-learn, zstandard, ray).

May import from ``annotator.review``, ``annotator.labeling``, ``annotator.llm`` and the shared
modules.
"""
