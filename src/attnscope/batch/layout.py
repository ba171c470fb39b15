"""The on-disk layout of a corpus head atlas: names, columns and schemas the writer and every reader share.

An atlas folder holds::

    atlas.json                      the index, rewritten atomically after every shard
    prompts/shard-NNNNN.parquet     one row per prompt (PROMPT_COLUMNS, plus score_<method> per method)
    heads/shard-NNNNN.parquet       one row per prompt x layer x head (HEAD_KEY_COLUMNS + one column per metric)
    summary.parquet                 per (layer, head, metric) distribution, written when the atlas is complete

This module imports nothing heavy at import time (pyarrow only inside the schema functions), so the
server and the web view's reader can import it cheaply.
"""

from __future__ import annotations

import re
from typing import Any

FORMAT = "attnscope-atlas"
SCHEMA_VERSION = 1

INDEX = "atlas.json"
PROMPTS_DIR = "prompts"
HEADS_DIR = "heads"
SUMMARY = "summary.parquet"

DEFAULT_SHARD_SIZE = 64
DEFAULT_TOP_K = 5
HISTOGRAM_BINS = 32  # equal-width bins per metric between the corpus minimum and maximum (edges in atlas.json "bins")

# the per-prompt head metrics, as attnscope.analysis.heads.METRICS (a test checks that they agree)
HEAD_METRICS = ("entropy", "sparsity", "locality", "sink", "previous_token", "focus_consistency")

ENGINES = ("local", "ray")

# prompts/shard-NNNNN.parquet: column -> arrow type name (score_<method> columns come after "run_id")
PROMPT_COLUMNS = {
    "prompt_index": "int64",
    "prompt_id": "string",
    "text": "string",  # masked per the privacy policy (governance.masking)
    "n_tokens": "int32",
    "predicted": "string",
    "top_tokens": "list<string>",
    "top_probs": "list<float32>",
    "run_id": "string",  # null unless the run was stored (--store)
    "tokens": "list<string>",
}
SCORE_PREFIX = "score_"  # score_<method>: list<float32>, one score per token

# heads/shard-NNNNN.parquet: key columns, then one float32 column per name in HEAD_METRICS
HEAD_KEY_COLUMNS = {"prompt_index": "int64", "layer": "int16", "head": "int16"}

# summary.parquet: one row per (layer, head, metric)
SUMMARY_STATS = ("count", "mean", "std", "min", "p05", "p25", "p50", "p75", "p95", "max")
SUMMARY_QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95}

_SHARD_NAME = re.compile(r"^shard-\d{5}$")


def shard_id(number: int) -> str:
    """``shard-00000`` for shard ``number`` (0-based, in corpus order)."""
    return f"shard-{number:05d}"


def is_shard_id(name: str) -> bool:
    """Whether ``name`` is a well-formed shard id (readers refuse others before building a path)."""
    return bool(_SHARD_NAME.match(name))


def shard_files(shard: str) -> dict[str, str]:
    """``{"prompts": "prompts/<shard>.parquet", "heads": "heads/<shard>.parquet"}`` (relative to the atlas)."""
    return {"prompts": f"{PROMPTS_DIR}/{shard}.parquet", "heads": f"{HEADS_DIR}/{shard}.parquet"}


def score_column(method: str) -> str:
    """The prompts-shard column holding ``method``'s token scores."""
    return SCORE_PREFIX + method


def prompts_schema(methods: list[str] | tuple[str, ...]) -> Any:
    """The pyarrow schema of a prompts shard for the chosen ``methods``."""
    import pyarrow as pa

    fields = [
        pa.field("prompt_index", pa.int64(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("predicted", pa.string()),
        pa.field("top_tokens", pa.list_(pa.string())),
        pa.field("top_probs", pa.list_(pa.float32())),
        pa.field("run_id", pa.string()),
    ]
    fields += [pa.field(score_column(method), pa.list_(pa.float32())) for method in methods]
    fields.append(pa.field("tokens", pa.list_(pa.string()), nullable=False))
    return pa.schema(fields)


def heads_schema() -> Any:
    """The pyarrow schema of a heads shard."""
    import pyarrow as pa

    fields = [
        pa.field("prompt_index", pa.int64(), nullable=False),
        pa.field("layer", pa.int16(), nullable=False),
        pa.field("head", pa.int16(), nullable=False),
    ]
    fields += [pa.field(metric, pa.float32()) for metric in HEAD_METRICS]
    return pa.schema(fields)


def summary_schema() -> Any:
    """The pyarrow schema of summary.parquet (statistics in float64; count and histogram in int64)."""
    import pyarrow as pa

    fields = [
        pa.field("layer", pa.int16(), nullable=False),
        pa.field("head", pa.int16(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
    fields += [pa.field(stat, pa.float64()) for stat in SUMMARY_STATS if stat != "count"]
    fields.append(pa.field("histogram", pa.list_(pa.int64()), nullable=False))
    return pa.schema(fields)
