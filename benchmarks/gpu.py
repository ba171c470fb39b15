"""The engine on its device: capture vs a plain SDPA forward, memory, cold overview, rows and tiles.

Models are built from their configs with random weights (no download): ``qwen2-0.5b`` (Qwen2-0.5B:
24 layers, 14 query / 2 KV heads of 64) and ``llama3-8b`` (Llama-3-8B: 32 layers, 32 / 8 heads of
128). Inputs are texts of exactly N tokens of the tiny byte-level tokenizer (ids < 300: random
weights make every id alike). For every length, with ``--warmup`` untimed rounds, then
``--repeats`` rounds alternating the two:

- ``plain``: ``model(input_ids, logits_to_keep=1)`` with SDPA — the baseline, nothing recorded,
  the ids given;
- ``plain+tokenize``: the same from the text (the tokenizer's call, then the forward), which is what
  a capture starts from too;
- ``capture``: ``attnscope.capture(backend="qk")`` (queries/keys stashed in place, last-position
  top-k) — the target is ≤ 1.05× plain on a GPU;

the CUDA caching allocator stays warm between rounds (as in a process that captures again and again;
emptying it before every round made each capture pay ~2 cudaMalloc calls per layer for the stash,
which the plain forward, reusing its activations' memory, does not); ``cold capture`` is one capture
right after ``torch.cuda.empty_cache()``, printed beside;

then, on the last capture: peak device memory of each (target: capture ≤ plain + stash), host
peak RSS growth, the cold overview of the last layer (the top tile of its mean map: every row's
log-sum-exp and every weight once, from a cold cache) beside its floor — one batched torch pass of
QKᵀ + softmax over all heads of that layer, in row chunks, measured in the same run (target
≤ 2×) —, and p50/p95 of 50 random rows (all heads, one layer; target p95 ≤ 5 ms) and of 50 random
256 × 256 tiles under the diagonal (warm log-sum-exp; target p95 ≤ 10 ms).

On CUDA ``--long 131072`` also captures one 128k-token input and reports its memory.
Runs on the CPU at small sizes (the defaults there) to check the script before a GPU session.

Usage:
  python benchmarks/gpu.py                                  # CPU: qwen2-0.5b fp32 at 256 and 1024 tokens
  PYTHONPATH=src python benchmarks/gpu.py --configs llama3-8b qwen2-0.5b --lengths 4096 8192 16384 32768 \
      --long 131072 --json results.json                     # a GPU machine (bf16 by default)
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from typing import Any

from capture import peak_rss_mb, reset_peak_rss, text_of_tokens

CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2-0.5b": {
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    },
    "llama3-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
    },
}


def build(name: str, device: str, dtype: str) -> Any:
    """A LoadedModel of ``name``'s config with random weights (seed 0) on ``device`` in ``dtype``."""
    import torch
    import transformers

    from attnscope.models.info import read_architecture
    from attnscope.models.loaded import LoadedModel
    from attnscope.models.tiny import build_tokenizer

    fields = dict(CONFIGS[name])
    config = transformers.AutoConfig.for_model(fields.pop("model_type"), **fields, max_position_embeddings=262144)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=getattr(torch, dtype), attn_implementation="sdpa"
        )
    model.eval()
    tokenizer = build_tokenizer("llama")
    tokenizer.model_max_length = 1 << 30  # the tiny tokenizer's 256 is not this model's limit
    return LoadedModel(
        spec=f"random:{name}",
        name=f"random {name} (seed 0)",
        kind="causal",
        model=model,
        tokenizer=tokenizer,
        arch=read_architecture(model.config, "causal"),
        provenance={"model_spec": f"random:{name}", "dtype": dtype, "device": device},
        device=device,
        dtype=dtype,
        has_lm_head=True,
    )


class Clock:
    """Wall time of a call, waiting for the device's queued work before and after."""

    def __init__(self, device: str) -> None:
        import torch

        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def __call__(self, function: Any) -> tuple[float, Any]:
        self.sync()
        start = time.perf_counter()
        value = function()
        self.sync()
        return time.perf_counter() - start, value


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": 1e3 * statistics.median(ordered), "p95_ms": 1e3 * ordered[int(0.95 * (len(ordered) - 1))]}


def floor_pass(trace: Any, layer: int) -> None:
    """One batched QKᵀ + softmax over every head of ``layer``, in row chunks, nothing kept: the
    floor of a cold overview (which needs the same work twice: the normalisers, then the weights)."""
    import torch

    record = trace.source.records[("decoder", layer)]
    heads, n, _ = record.query.shape
    rep = heads // record.key.shape[0]
    key = record.key.to(torch.float32)
    step = max(1, (64 * 1024 * 1024) // (heads * n))
    keys = torch.arange(n, device=record.device)
    for begin in range(0, n, step):
        query = record.query[:, begin : begin + step].to(torch.float32)
        scores = torch.matmul(query.reshape(key.shape[0], rep * query.shape[1], -1), key.transpose(1, 2))
        scores = scores.reshape(heads, query.shape[1], n) * record.scaling
        rows = torch.arange(begin, begin + query.shape[1], device=record.device)
        scores.masked_fill_(keys[None, None, :] > rows[None, :, None], float("-inf"))
        torch.softmax(scores, dim=-1)


def measure(model: Any, n_tokens: int, warmup: int, repeats: int, seed: int) -> dict[str, Any]:
    import random

    import torch

    from attnscope.capture import capture
    from attnscope.capture.tiles import TILE, TilePyramid

    device = model.device
    clock = Clock(device)
    text = text_of_tokens(model.tokenizer, n_tokens)
    ids = torch.tensor([model.tokenizer(text)["input_ids"]], device=device)
    cuda = device.startswith("cuda")

    def plain() -> None:
        with torch.inference_mode():
            model.model(input_ids=ids, logits_to_keep=1, use_cache=False)

    def plain_text() -> None:  # what a plain transformers user runs from the same text
        with torch.inference_mode():
            given = torch.tensor([model.tokenizer(text)["input_ids"]], device=device)
            model.model(input_ids=given, logits_to_keep=1, use_cache=False)

    def captured() -> Any:
        return capture(model, text, backend="qk")

    for _ in range(warmup):
        plain()
        captured()
    cold_s = None
    if cuda:  # the first capture of a process: the stash's memory comes from cudaMalloc, not the pool
        gc.collect()
        torch.cuda.empty_cache()
        cold_s, _ = clock(captured)
    times: dict[str, list[float]] = {"plain": [], "plain_text": [], "capture": []}
    memory: dict[str, float] = {}
    trace = None
    for _ in range(repeats):
        for name, function in (("plain", plain), ("plain_text", plain_text), ("capture", captured)):
            trace = None
            gc.collect()  # the allocator's pool stays warm, as in a process that captures again and again
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() if cuda else 0
            reset_peak_rss()
            rss = peak_rss_mb()
            seconds, value = clock(function)
            times[name].append(seconds)
            memory[f"{name}_host_peak_growth_mb"] = peak_rss_mb() - rss
            if cuda:
                memory[f"{name}_device_peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
            if name == "capture":
                trace = value
    assert trace is not None
    layer = model.arch.layers - 1
    stash_mb = trace.source.stash_bytes / 2**20
    floor, _ = clock(lambda: floor_pass(trace, layer))
    pyramid = TilePyramid(trace, layer, "mean")
    overview, _ = clock(lambda: pyramid.get(pyramid.levels - 1, 0, 0))
    rng = random.Random(seed)
    n = len(trace.tokens)
    rows = [clock(lambda: trace.attention(layer, None, rows=[rng.randrange(n)]))[0] for _ in range(50)]
    tiles = []
    for _ in range(50):  # a fresh tile each time (a new pyramid: no tile cache), the normalisers warm
        ty = rng.randrange(pyramid.grid(0)[0])
        fresh = TilePyramid(trace, layer, "mean")
        tiles.append(clock(lambda fresh=fresh, ty=ty: fresh.get(0, ty, rng.randrange(ty + 1)))[0])
    plain_s, capture_s = statistics.median(times["plain"]), statistics.median(times["capture"])
    plain_text_s = statistics.median(times["plain_text"])
    return {
        "tokens": n,
        "plain_s": plain_s,
        "capture_s": capture_s,
        "ratio": capture_s / plain_s,
        "plain_text_s": plain_text_s,
        "cold_capture_s": cold_s,
        "ratio_text": capture_s / plain_text_s,
        "stash_mb": stash_mb,
        **memory,
        "overview_s": overview,
        "floor_s": floor,
        "overview_vs_floor": overview / floor,
        "row": quantiles(rows),
        "tile": quantiles(tiles),
        "tile_size": TILE,
        "times": times,
    }


def long_capture(model: Any, n_tokens: int) -> dict[str, Any]:
    """One capture of ``n_tokens`` (e.g. 128k on a GPU): time, device and host memory, a row read."""
    import torch

    from attnscope.capture import capture

    text = text_of_tokens(model.tokenizer, n_tokens)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    reset_peak_rss()
    rss = peak_rss_mb()
    clock = Clock(model.device)
    seconds, trace = clock(lambda: capture(model, text, backend="qk"))
    row_s, _ = clock(lambda: trace.attention(-1, "mean", rows=[-1]))
    return {
        "tokens": len(trace.tokens),
        "capture_s": seconds,
        "device_peak_mb": (torch.cuda.max_memory_allocated() - base) / 2**20,
        "stash_mb": trace.source.stash_bytes / 2**20,
        "host_peak_growth_mb": peak_rss_mb() - rss,
        "last_row_s": row_s,
    }


def main() -> None:
    import torch
    import transformers

    from attnscope.models.devices import resolve_device, resolve_dtype

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=None)
    parser.add_argument("--lengths", nargs="+", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", type=int, default=None, help="CUDA: one capture of this many tokens as well")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    cuda = device.startswith("cuda")
    configs = args.configs or (["llama3-8b", "qwen2-0.5b"] if cuda else ["qwen2-0.5b"])
    lengths = args.lengths or ([4096, 8192, 16384, 32768] if cuda else [256, 1024])
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    header = {
        "device": device,
        "device_name": name,
        "dtype": dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "repeats": args.repeats,
    }
    print(json.dumps(header))
    results: dict[str, Any] = {"header": header, "runs": {}}
    for config in configs:
        model = build(config, device, dtype)
        rows = results["runs"][config] = []
        print(f"\n{config}, {dtype} on {name}")
        print(
            "tokens | plain s | plain+tokenize s | capture s | ratio (vs +tokenize) | cold capture s | stash MiB | "
            "dev peak plain/capture MiB | host +MiB capture | "
            "overview s (floor s, ×) | row p50/p95 ms | tile p50/p95 ms"
        )
        for length in lengths:
            result = measure(model, length, args.warmup, args.repeats, seed=length)
            rows.append(result)
            device_peaks = (
                f"{result['plain_device_peak_mb']:.0f} / {result['capture_device_peak_mb']:.0f}" if cuda else "—"
            )
            print(
                f"{result['tokens']} | {result['plain_s']:.3f} | {result['plain_text_s']:.3f} | "
                f"{result['capture_s']:.3f} | "
                f"{result['ratio']:.3f} ({result['ratio_text']:.3f}) | "
                f"{'—' if result['cold_capture_s'] is None else format(result['cold_capture_s'], '.3f')} | "
                f"{result['stash_mb']:.0f} | {device_peaks} | {result['capture_host_peak_growth_mb']:.0f} | "
                f"{result['overview_s']:.3f} ({result['floor_s']:.3f}, {result['overview_vs_floor']:.2f}) | "
                f"{result['row']['p50_ms']:.1f} / {result['row']['p95_ms']:.1f} | "
                f"{result['tile']['p50_ms']:.1f} / {result['tile']['p95_ms']:.1f}",
                flush=True,
            )
        if args.long and cuda and config == configs[0]:
            results["long"] = long_capture(model, args.long)
            print("long:", json.dumps(results["long"]), flush=True)
        del model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
