"""Corpus head atlas: the same pure per-prompt functions mapped over a corpus, locally or as Ray tasks.

``layout`` names the on-disk format (atlas.json + Parquet shards); ``corpus`` reads and checks the
prompts; ``analyse`` is the per-prompt function both engines run; ``shards`` writes shards and the
index durably; ``engines`` drives a run locally or on Ray; ``summary`` builds the per-head distributions.
"""
