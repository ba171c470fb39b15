"""How fast the web app's Corpus view reads a large atlas (attnscope.batch.reading), and how much memory.

Writes a synthetic atlas to the on-disk format (random metrics; no model runs) of --prompts prompts with
smollm2-135m's shape (30 layers x 9 heads) in shards of --shard-size, its summary by the batch writer's own
``summarise``, then times, median of --repeats after one untimed warm-up on a fresh Atlas each round:
opening the index (every shard's checksum is checked lazily, on first read), the grid (complete: from
summary.parquet; partial: one pass over every heads shard), one head's distribution and unusual prompts
(one pass over one metric column), and one prompt. "peak MB" is the growth of the process's peak RSS over
the whole run of that row (Linux ru_maxrss, so a row's figure includes the rows before it).

    .venv/bin/python benchmarks/corpus_reading.py --prompts 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from attnscope.batch import layout
from attnscope.batch.reading import Atlas
from attnscope.batch.summary import summarise


def write(folder: Path, prompts: int, layers: int, heads: int, shard_size: int) -> dict:
    rng = np.random.default_rng(0)
    (folder / layout.PROMPTS_DIR).mkdir(parents=True)
    (folder / layout.HEADS_DIR).mkdir(parents=True)
    shards = []
    for number, first in enumerate(range(0, prompts, shard_size)):
        last = min(prompts, first + shard_size) - 1
        name, n = layout.shard_id(number), last - first + 1
        files = layout.shard_files(name)
        index = np.arange(first, last + 1)
        texts = [f"prompt {i}: the capital of France is 巴黎" for i in index]
        table = pa.table({
            "prompt_index": index, "prompt_id": [f"p{i}" for i in index], "text": texts,
            "n_tokens": np.full(n, 12, np.int32), "predicted": [" Paris"] * n, "top_tokens": [[" Paris"]] * n,
            "top_probs": [[0.5]] * n, "run_id": [None] * n, "tokens": [["the"] * 12] * n,
        }, schema=layout.prompts_schema([]))  # fmt: skip
        pq.write_table(table, folder / files["prompts"])
        rows = n * layers * heads
        columns = {
            "prompt_index": np.repeat(index, layers * heads),
            "layer": np.tile(np.repeat(np.arange(layers, dtype=np.int16), heads), n),
            "head": np.tile(np.arange(heads, dtype=np.int16), n * layers),
        } | {m: rng.random(rows, dtype=np.float32) for m in layout.HEAD_METRICS}
        pq.write_table(pa.table(columns, schema=layout.heads_schema()), folder / files["heads"])
        digest = {k: hashlib.sha256((folder / p).read_bytes()).hexdigest() for k, p in files.items()}
        shards.append({"id": name, "first": first, "last": last, "rows": {"prompts": n, "heads": rows},
                       "files": files, "sha256": digest})  # fmt: skip
    index = {
        "format": layout.FORMAT, "schema_version": layout.SCHEMA_VERSION,
        "model": {"spec": "synthetic", "name": "synthetic", "fingerprint": "0", "num_layers": layers,
                  "num_heads": heads},
        "methods": [], "metrics": list(layout.HEAD_METRICS), "corpus": {"prompts": prompts}, "shards": shards,
        "complete": False,
    }  # fmt: skip
    return index


def timed(action, repeats: int) -> float:
    action()  # warm-up (the page cache holds the files afterwards, as on a server that has answered once)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=layout.DEFAULT_SHARD_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    layers, heads = 30, 9
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "atlas"
        index = write(folder, args.prompts, layers, heads, args.shard_size)
        size = sum(f.stat().st_size for f in folder.rglob("*.parquet")) / 2**20
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        shape = f"{args.prompts} prompts, {layers} layers x {heads} heads, {len(index['shards'])} shards"
        print(f"synthetic atlas: {shape}, {size:.0f} MiB of Parquet; median of {args.repeats} after 1 warm-up")
        print(f"{'state':<9} {'answer':<34} {'seconds':>8} {'peak MB':>8}")
        for state in ("partial", "complete"):
            if state == "complete":
                table, bins = summarise(folder, index)
                pq.write_table(table, folder / layout.SUMMARY)
                index |= {"complete": True, "bins": bins}
            (folder / layout.INDEX).write_text(json.dumps(index), "utf-8")
            checks = {
                "open index": lambda: Atlas.open(folder),
                "grid (all heads, all metrics)": lambda: Atlas.open(folder).grid(),
                "head 12/4 entropy + 10 unusual": lambda: Atlas.open(folder).head(12, 4, "entropy", 10),
                f"prompt {args.prompts // 2}": lambda: Atlas.open(folder).prompt(args.prompts // 2),
            }
            for name, action in checks.items():
                seconds = timed(action, args.repeats)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
                print(f"{state:<9} {name:<34} {seconds:>8.3f} {peak:>8.0f}")


if __name__ == "__main__":
    main()
