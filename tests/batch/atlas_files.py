"""A corpus atlas folder written by hand with pyarrow, exactly to the on-disk format of
:mod:`attnscope.batch.layout`, from known arrays: the reader's tests compare what it answers with
numpy on these arrays. (The atlases ``attnscope batch`` writes are tested the same way in
test_reading.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.batch import layout

TEXTS = ["The capital of France is", "我爱中国，他的首都在于", "1, 2, 3, 4,", "Hello world", "Paris is a city in"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_atlas(
    folder: Path,
    *,
    prompts: int = 10,
    layers: int = 2,
    heads: int = 3,
    shard_size: int = 4,
    complete: bool = True,
    run_ids: list[str | None] | None = None,
    seed: int = 0,
    spec: str = "tiny:llama",
    fingerprint: str = "f" * 64,
) -> dict[str, Any]:
    """Write an atlas of ``prompts`` prompts into ``folder``; returns {"values": (prompts, layers, heads,
    metrics) float32 array, "index": the atlas.json written, "texts": the prompt texts}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    metrics = list(layout.HEAD_METRICS)
    values = rng.random((prompts, layers, heads, len(metrics))).astype(np.float32)  # (prompts, layers, heads, metrics)
    values[3 % prompts, 1 % layers, 2 % heads, 0] = 9.0  # one prompt where head (1, 2) is far off in entropy
    texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(prompts)]
    run_ids = run_ids or [None] * prompts
    (folder / layout.PROMPTS_DIR).mkdir(parents=True, exist_ok=True)
    (folder / layout.HEADS_DIR).mkdir(parents=True, exist_ok=True)
    shards = []
    for number, first in enumerate(range(0, prompts, shard_size)):
        last = min(prompts, first + shard_size) - 1
        name = layout.shard_id(number)
        files = layout.shard_files(name)
        indices = list(range(first, last + 1))
        prompt_table = pa.Table.from_pylist(
            [
                {
                    "prompt_index": i, "prompt_id": f"p{i}", "text": texts[i], "n_tokens": 5 + i,
                    "predicted": " Paris", "top_tokens": [" Paris", " the"], "top_probs": [0.5 + i / 100, 0.1],
                    "run_id": run_ids[i], "score_gradient": [0.1 * i, 0.2], "tokens": ["The", " capital"],
                }
                for i in indices
            ],
            schema=layout.prompts_schema(["gradient"]),
        )  # fmt: skip
        pq.write_table(prompt_table, folder / files["prompts"])
        rows: dict[str, list[Any]] = {"prompt_index": [], "layer": [], "head": []} | {m: [] for m in metrics}
        for i in indices:
            for layer in range(layers):
                for head in range(heads):
                    rows["prompt_index"].append(i)
                    rows["layer"].append(layer)
                    rows["head"].append(head)
                    for k, metric in enumerate(metrics):
                        rows[metric].append(float(values[i, layer, head, k]))
        pq.write_table(pa.Table.from_pydict(rows, schema=layout.heads_schema()), folder / files["heads"])
        shards.append({
            "id": name, "first": first, "last": last,
            "rows": {"prompts": len(indices), "heads": len(indices) * layers * heads}, "files": files,
            "sha256": {kind: sha256(folder / path) for kind, path in files.items()},
        })  # fmt: skip
    bins = {}
    if complete:
        summary = []
        for k, metric in enumerate(metrics):
            column = values[..., k].astype(np.float64)
            edges = np.linspace(column.min(), column.max(), layout.HISTOGRAM_BINS + 1)
            bins[metric] = edges.tolist()
            for layer in range(layers):
                for head in range(heads):
                    x = column[:, layer, head]
                    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
                    summary.append({
                        "layer": layer, "head": head, "metric": metric, "count": len(x), "mean": x.mean(),
                        "std": x.std(), "min": x.min(), "p05": q[0], "p25": q[1], "p50": q[2], "p75": q[3],
                        "p95": q[4], "max": x.max(),
                        "histogram": np.histogram(x, bins=edges)[0].tolist(),
                    })  # fmt: skip
        pq.write_table(pa.Table.from_pylist(summary, schema=layout.summary_schema()), folder / layout.SUMMARY)
    index = {
        "format": layout.FORMAT, "schema_version": layout.SCHEMA_VERSION,
        "model": {"spec": spec, "name": spec, "fingerprint": fingerprint, "num_layers": layers, "num_heads": heads},
        "methods": ["gradient"], "metrics": metrics, "top_k": 2, "engine": "local",
        "corpus": {"path": "/somewhere/prompts.jsonl", "sha256": "0" * 64, "prompts": prompts},
        "shard_size": shard_size,
        "shards": shards, "complete": complete, "created": "2026-11-27T00:00:00Z", "updated": "2026-11-27T00:00:00Z",
        "provenance": {"attnscope": "test"}, **({"bins": bins} if complete else {}),
    }  # fmt: skip
    (folder / layout.INDEX).write_text(json.dumps(index), encoding="utf-8")
    return {"values": values, "index": index, "texts": texts, "metrics": metrics}


CORPUS = [
    "The capital of France is", "我爱中国，他的首都在于", "1, 2, 3, 4,", "Hello world, my name is",
    "Paris is a city in", "The cat sat on the", "水是由氢和氧组成的", "Once upon a time",
]  # fmt: skip


def run_batch(folder: Path, *extra: str, model: str = "tiny:llama") -> Path:
    """An atlas of CORPUS written by the real ``attnscope batch`` (a subprocess) into ``folder``/atlas."""
    from tests.test_cli import run

    folder.mkdir(parents=True, exist_ok=True)
    prompts = folder / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"text": text, "id": f"q{i}"}, ensure_ascii=False) + "\n" for i, text in enumerate(CORPUS)),
        encoding="utf-8",
    )
    atlas = folder / "atlas"
    done = run("batch", str(prompts), "--model", model, "--out", str(atlas), "--shard-size", "3", "--quiet", *extra)
    assert done.returncode == 0, done.stderr.decode()
    return atlas
