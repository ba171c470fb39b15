"""The per-prompt and per-shard functions of an atlas: both engines (local, Ray) run exactly these.

:func:`analyse_prompt` is one capture of the prompt on the model and, from that trace, the numbers
an atlas keeps: the tokens, the top-k next-token candidates after the last token, every head's
metrics (:func:`attnscope.analysis.heads.head_metrics`, the numbers of ``attnscope heads``) and each
chosen method's token scores (:func:`attnscope.methods.run.attribute`, the numbers of
``attnscope attribute``). What is written leaves the process masked by the personal-data policy
(:func:`attnscope.governance.masking.mask_answer` on the prompt's analysis answer). It depends on
nothing but the model, the prompt and the options, so a shard computed twice is the same shard.

:func:`analyse_shard` maps it over one shard's prompts and writes the shard's two Parquet files
(temporary name, fsync, rename); the index is the driver's (:mod:`attnscope.batch.shards`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.batch import layout
from attnscope.batch.corpus import Prompt

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel


@dataclass(frozen=True)
class AtlasOptions:
    """What an atlas computes per prompt; :meth:`identity` is the part a rerun must match (not
    ``key``, derived from it, nor ``threads``, which changes how fast, not what)."""

    methods: tuple[str, ...] = ()
    top_k: int = layout.DEFAULT_TOP_K
    threshold: float = 0.01  # head metrics' sparsity threshold, as `attnscope heads --threshold`
    pii_policy: str = "mask"  # mask or off (hash salts per process, drop loses rows: neither fits an atlas)
    backend: str = "auto"  # attention capture, as every command's --backend
    store: bool = False  # keep each prompt's analysis as a run (the driver stores it)
    key: str = ""  # the atlas's identity hash (stored run ids derive from it); set by the driver
    threads: int | None = None  # torch's intra-op threads while analysing (None: as they are; build_atlas: 1)

    def identity(self) -> dict[str, Any]:
        """The options that change what is written (``store``: whether every row has a run id)."""
        return {
            "methods": list(self.methods),
            "top_k": self.top_k,
            "threshold": self.threshold,
            "pii_policy": self.pii_policy,
            "backend": self.backend,
            "store": self.store,
        }


@dataclass
class PromptResult:
    row: dict[str, Any]  # the prompts-shard columns (masked text, tokens, predictions, scores)
    metrics: dict[str, np.ndarray]  # {metric: (layers, heads) float32}
    run: dict[str, Any] | None = None  # {"run_id", "text", "body"}: the analysis for the driver to store


@dataclass
class ShardOutcome:
    entry: dict[str, Any]  # the shard's entry in atlas.json
    runs: list[dict[str, Any]] = field(default_factory=list)  # analyses to store (with --store)
    seconds: float = 0.0


def check_lengths(model: LoadedModel, prompts: list[Prompt], methods: tuple[str, ...]) -> None:
    """Refuse, before any analysis, a prompt longer than the model's context or than a chosen method
    accepts (flow: 256 tokens), so a long prompt late in the corpus fails now, not after hours."""
    from attnscope.capture.tokens import tokenize
    from attnscope.errors import InputError
    from attnscope.methods import catalogue

    limits = [(m, catalogue.get(m).max_tokens) for m in methods if catalogue.get(m).max_tokens is not None]
    for prompt in prompts:
        n_tokens = len(tokenize(model.tokenizer, prompt.text))
        for method, limit in limits:
            if limit is not None and n_tokens > limit:
                raise InputError(
                    f"prompt {prompt.id!r} (index {prompt.index}) has {n_tokens} tokens; {method} is limited to {limit}"
                )
        model.check_length(n_tokens, f"prompt {prompt.id!r} (index {prompt.index})")


def model_facts(model: LoadedModel) -> dict[str, Any]:
    """What the driver needs to know of a model (from this process, or from a Ray actor)."""
    info = model.info()
    return {
        "model": {
            "spec": info.spec,
            "name": info.name,
            "fingerprint": info.fingerprint,
            "num_layers": info.layers,
            "num_heads": info.heads,
            "dtype": info.dtype,
        },
        "device": info.device,
        "provenance": dict(model.provenance),
    }


def run_id_for(key: str, prompt_index: int) -> str:
    """The stored run id of a prompt: derived from the atlas and the prompt, so a resumed or repeated
    run finds the run it stored before instead of storing the prompt twice."""
    return hashlib.sha256(f"attnscope-atlas:{key}:{prompt_index}".encode()).hexdigest()[:16]


def analyse_prompt(model: LoadedModel, prompt: Prompt, options: AtlasOptions) -> PromptResult:
    """One prompt's row, head metrics and (with ``store``) analysis answer; see the module docstring."""
    from attnscope.analysis.heads import METRICS, head_metrics
    from attnscope.capture import capture
    from attnscope.governance.masking import mask_answer
    from attnscope.methods import catalogue
    from attnscope.methods.run import attribute
    from attnscope.render.json import analysis_json

    trace = capture(model, prompt.text, top_k=options.top_k, predict="last", backend=options.backend)
    metrics = head_metrics(trace, threshold=options.threshold)  # {metric: (layers, heads)}
    body = analysis_json(trace, top_k=options.top_k)
    _, shown, _ = mask_answer("analysis", prompt.text, body, options.pii_policy)
    top = (shown.get("prediction") or {}).get("top") or []
    row: dict[str, Any] = {
        "prompt_index": prompt.index,
        "prompt_id": prompt.id,
        "text": shown["text"],
        "n_tokens": len(shown["tokens"]),
        "predicted": top[0]["token"] if top else None,
        "top_tokens": [candidate["token"] for candidate in top],
        "top_probs": [candidate["prob"] for candidate in top],
        "run_id": run_id_for(options.key, prompt.index) if options.store else None,
        "tokens": [token["text"] for token in shown["tokens"]],
    }
    for method in options.methods:
        spec = catalogue.get(method)
        target = prompt.target if spec.explains_target else None
        result = attribute(model, prompt.text, method, trace=trace, target=target, backend=options.backend)
        scores = result.token_scores if result.token_scores is not None else np.asarray(result.scores_by_token(), float)
        row[layout.score_column(method)] = np.asarray(scores, dtype=np.float32).tolist()  # (tokens,)
    run = {"run_id": row["run_id"], "text": prompt.text, "body": body} if options.store else None
    kept = {name: np.asarray(metrics[name], dtype=np.float32) for name in METRICS}  # (layers, heads)
    return PromptResult(row, kept, run)


def analyse_shard(
    model: LoadedModel,
    prompts: list[Prompt],
    options: AtlasOptions,
    folder: str | Path,
    number: int,
    progress: Callable[[int], None] | None = None,
) -> ShardOutcome:
    """Analyse ``prompts`` (one shard, in corpus order) and write shard ``number``'s files into ``folder``.

    ``progress(prompts_done)`` is called after each prompt (the local engine's progress bar)."""
    import time

    from attnscope.batch.shards import write_parquet

    started = time.perf_counter()
    results: list[PromptResult] = []
    with _threads(options.threads):
        for prompt in prompts:
            results.append(analyse_prompt(model, prompt, options))
            if progress is not None:
                progress(len(results))
    shard = layout.shard_id(number)
    files = layout.shard_files(shard)
    prompts_table = prompts_table_of([r.row for r in results], options.methods)
    heads_table = heads_table_of([r.row["prompt_index"] for r in results], [r.metrics for r in results])
    hashes = {
        "prompts": write_parquet(prompts_table, Path(folder) / files["prompts"]),
        "heads": write_parquet(heads_table, Path(folder) / files["heads"]),
    }
    entry = {
        "id": shard,
        "first": prompts[0].index,
        "last": prompts[-1].index,
        "rows": {"prompts": prompts_table.num_rows, "heads": heads_table.num_rows},
        "files": files,
        "sha256": hashes,
    }
    runs = [r.run for r in results if r.run is not None]
    return ShardOutcome(entry, runs, time.perf_counter() - started)


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the block. Reductions (matrix products, the
    backward pass) split their sums by thread, so the last bits of float32 results depend on it: two
    engines agree byte for byte at the same count (Ray's actors default to one, their CPU share)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prompts_table_of(rows: list[dict[str, Any]], methods: tuple[str, ...] | list[str]) -> Any:
    """The prompts shard as a pyarrow table of :func:`attnscope.batch.layout.prompts_schema`."""
    import pyarrow as pa

    schema = layout.prompts_schema(list(methods))
    return pa.table({name: [row[name] for row in rows] for name in schema.names}, schema=schema)


def heads_table_of(prompt_indices: list[int], metrics: list[dict[str, np.ndarray]]) -> Any:
    """The heads shard: one row per prompt x layer x head, in that order."""
    import pyarrow as pa

    schema = layout.heads_schema()
    if not metrics:
        return schema.empty_table()
    n_layers, n_heads = metrics[0][layout.HEAD_METRICS[0]].shape
    per_prompt = n_layers * n_heads
    columns: dict[str, np.ndarray] = {
        "prompt_index": np.repeat(np.asarray(prompt_indices, dtype=np.int64), per_prompt),
        "layer": np.tile(np.repeat(np.arange(n_layers, dtype=np.int16), n_heads), len(metrics)),
        "head": np.tile(np.arange(n_heads, dtype=np.int16), n_layers * len(metrics)),
    }
    for name in layout.HEAD_METRICS:  # (prompts * layers * heads,) in row order
        columns[name] = np.concatenate([m[name].reshape(-1) for m in metrics]).astype(np.float32)
    return pa.table(columns, schema=schema)
