"""Long inputs: latency of the views after capture, bytes per interaction, and whole-process cost.

Three parts, each printing a markdown table:

``latency``  one process per (model, length): capture with ``backend="qk"`` (``predict="last"``),
             then time, over ``--repeats`` random positions, p50/p95 of
             - ``row``: one query row, every head of one layer (what the token view asks for);
             - ``tile``: one 256x256 level-0 tile of the mean of heads, uncached, LSE cache warm;
             - ``overview``: the whole top-level tile (the map max-pooled to <= 256 px), cold (first
               time per (layer, head), including the per-row log-sum-exp pass) and warm;
             - ``lse``: the per-row log-sum-exp pass of one (layer, head) — the cost a cold tile pays once.
``bytes``    bytes the web app moves per interaction (measured on the real encoders) next to bertviz's
             ``head_view`` HTML for the same input where bertviz can be run (``--bertviz-path`` holds a
             pip ``--target`` install of bertviz and IPython; the benchmark environment only).
``process``  ``attnscope analyze TEXT --json`` versus a plain ``transformers`` forward over the same
             text (``AutoModelForCausalLM`` on the converted weights, SDPA, ``logits_to_keep=1``), both
             as whole processes: wall time and peak RSS (``ru_maxrss`` of the child), plus the memory
             eager ``output_attentions`` would need for its maps (layers x heads x N^2 x 4 bytes).

Usage:
  python benchmarks/long_inputs.py latency --models smollm2-135m qwen2.5-coder-0.5b --lengths 512 2048 8192
  python benchmarks/long_inputs.py bytes --lengths 128 256 2048 8192 [--bertviz-path /tmp/bertviz]
  python benchmarks/long_inputs.py process --models qwen2.5-coder-0.5b --lengths 8192
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capture import text_of_tokens


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency_child(spec: str, n: int, repeats: int) -> dict:
    import numpy as np

    import attnscope
    from attnscope.capture import capture
    from attnscope.capture.tiles import TileCache, TilePyramid

    model = attnscope.load_model(spec)
    text = text_of_tokens(model.tokenizer, n)
    begin = time.perf_counter()
    trace = capture(model, text, backend="qk", predict="last")
    capture_s = time.perf_counter() - begin
    tokens = len(trace.tokens)
    rng = np.random.default_rng(0)
    layers = trace.num_layers()
    results: dict[str, list[float]] = {"row": [], "tile": [], "overview cold": [], "overview warm": [], "lse": []}
    for _ in range(repeats):
        layer = int(rng.integers(layers))
        query = int(rng.integers(tokens))
        start = time.perf_counter()
        trace.attention(layer, None, rows=[query])
        results["row"].append(time.perf_counter() - start)
    for _ in range(repeats):  # cold per (layer, head): a fresh source cache each time
        layer, head = int(rng.integers(layers)), int(rng.integers(trace.num_heads()))
        trace.source._lse.clear()
        start = time.perf_counter()
        trace.source.row_lse("decoder", layer, head)
        results["lse"].append(time.perf_counter() - start)
    for _ in range(max(3, repeats // 10)):
        layer = int(rng.integers(layers))
        trace.source._lse.clear()
        pyramid = TilePyramid(trace, layer, "mean", cache=TileCache())
        start = time.perf_counter()
        pyramid.get(pyramid.levels - 1, 0, 0)
        results["overview cold"].append(time.perf_counter() - start)
        start = time.perf_counter()
        pyramid.get(pyramid.levels - 1, 0, 0)
        results["overview warm"].append(time.perf_counter() - start)
        rows, cols = pyramid.grid(0)
        for _ in range(max(1, repeats // 5)):
            ty = int(rng.integers(rows))
            tx = int(rng.integers(min(cols, ty + 1)))  # at or below the diagonal: a tile with content
            start = time.perf_counter()
            pyramid.get(0, ty, tx)
            results["tile"].append(time.perf_counter() - start)
    return {
        "tokens": tokens,
        "capture_s": capture_s,
        "rows": {k: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "n": len(v)} for k, v in results.items()},
    }


def run_latency(args: argparse.Namespace) -> None:
    print("| model | tokens | capture s | view | p50 ms | p95 ms | samples |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for spec in args.models:
        for n in args.lengths:
            command = [sys.executable, __file__, "latency-child", spec, str(n), str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"| {spec} | {n} | failed: {done.stderr.strip().splitlines()[-1:]} | | | | |", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            for view, row in result["rows"].items():
                print(
                    f"| {spec} | {result['tokens']} | {result['capture_s']:.1f} | {view} | {row['p50'] * 1e3:.1f} | "
                    f"{row['p95'] * 1e3:.1f} | {row['n']} |",
                    flush=True,
                )


def run_bytes(args: argparse.Namespace) -> None:
    import numpy as np

    import attnscope
    from attnscope.capture import capture
    from attnscope.capture.tiles import TILE, TilePyramid
    from attnscope.render.json import analysis_json
    from attnscope.server import binary

    model = attnscope.load_model(args.models[0])
    print(f"model {args.models[0]}: {model.arch.layers} layers x {model.arch.heads} heads")
    print(
        "| tokens | analysis JSON (first load) | one row, all heads (float16) | one tile (uint8) | "
        "screenful of tiles (<= 5 x 4) | bertviz head_view HTML |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    per_weight = 0.0
    for n in args.lengths:
        text = text_of_tokens(model.tokenizer, n)
        trace = capture(model, text, backend="qk", predict="last")
        tokens = len(trace.tokens)
        first = len(json.dumps(analysis_json(trace), ensure_ascii=False).encode())
        row = len(binary.encode(trace.attention(-1, None, rows=[-1])[:, 0], "float16"))
        pyramid = TilePyramid(trace, -1, "mean")
        tile = len(binary.encode(pyramid.get(0, pyramid.grid(0)[0] - 1, 0), "uint8"))
        screen = tile * min(20, max(1, -(-tokens // TILE)) ** 2)
        bertviz = bertviz_bytes(args, model, text) if tokens <= args.bertviz_max_tokens else None
        weights = model.arch.layers * model.arch.heads * tokens * tokens
        if bertviz is not None:
            per_weight = bertviz / weights  # bertviz writes every weight as JSON text
            shown = f"{bertviz / 1e6:,.1f} MB (measured; {per_weight:.1f} B per weight)"
        elif per_weight:
            shown = f"~{weights * per_weight / 1e6:,.0f} MB (extrapolated: L·H·N² x {per_weight:.1f} B)"
        else:
            shown = "not measured"
        print(
            f"| {tokens} | {first / 1e3:,.0f} KB | {row / 1e3:,.1f} KB | {tile / 1e3:,.1f} KB | "
            f"{screen / 1e6:,.2f} MB | {shown} |",
            flush=True,
        )
    del np


def bertviz_bytes(args: argparse.Namespace, model, text: str) -> int | None:
    if not args.bertviz_path:
        return None
    sys.path.insert(0, args.bertviz_path)
    try:
        import torch
        from bertviz import head_view
    except ImportError:
        return None
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    hf = model.model
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            attentions = hf(input_ids=ids, output_attentions=True).attentions
    finally:
        hf.set_attn_implementation(previous)
    tokens = model.tokenizer.convert_ids_to_tokens(ids[0])
    page = head_view(attentions, tokens, html_action="return")
    return len(page.data.encode())


PLAIN = """
import sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32)
ids = tokenizer(text, return_tensors="pt")["input_ids"]
with torch.inference_mode():
    logits = model(input_ids=ids, logits_to_keep=1, use_cache=False).logits
print(tokenizer.decode([int(logits[0, -1].argmax())]))
"""


def timed_process(command: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-500:])
    return seconds, max(peak, before) / 1024, done.stdout.strip()[-80:]


def run_process(args: argparse.Namespace) -> None:
    import attnscope
    from attnscope.models.cache import cache_dir

    print("| model | tokens | process | wall s | peak RSS MB | eager attention maps would need |")
    print("|---|---:|---|---:|---:|---:|")
    for spec in args.models:
        model = attnscope.load_model(spec)
        folders = sorted(p for p in (cache_dir() / "converted").iterdir() if (p / "config.json").exists())
        folder = next((str(p) for p in folders if model.weights_sha256[:16] in p.name), None)
        for n in args.lengths:
            text = text_of_tokens(model.tokenizer, n)
            tokens = len(model.tokenizer(text)["input_ids"])
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as handle:
                handle.write(text)
            eager_gb = model.arch.layers * model.arch.heads * tokens * tokens * 4 / 1e9
            rows = []
            if folder:  # each measured alone: ru_maxrss of children is a running maximum, so order matters
                rows.append(("plain transformers forward", [sys.executable, "-c", PLAIN, folder, handle.name]))
            cli = str(Path(sys.executable).with_name("attnscope"))  # this environment's, activated or not
            rows.append(("attnscope analyze --json", [cli, "analyze", "-", "-m", spec, "--json", "-q"]))
            for name, command in rows:
                stdin_command = command
                if command[1] == "analyze":
                    stdin_command = ["sh", "-c", f"{cli} analyze - -m {spec} --json -q < {handle.name}"]
                runner = [sys.executable, __file__, "process-child", json.dumps(stdin_command)]
                done = subprocess.run(runner, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"| {spec} | {tokens} | {name} | failed: {done.stderr.strip()[-200:]} | | |", flush=True)
                    continue
                seconds, peak_mb = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"| {spec} | {tokens} | {name} | {seconds:.1f} | {peak_mb:,.0f} | {eager_gb:,.1f} GB |", flush=True
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("latency", "bytes", "process", "latency-child", "process-child"))
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[512, 2048, 8192])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--bertviz-path", default=None)
    parser.add_argument("--bertviz-max-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.part == "latency-child":
        spec, n, repeats = args.rest
        print(json.dumps(latency_child(spec, int(n), int(repeats))))
        return
    if args.part == "process-child":  # one measured process per child, so ru_maxrss is its own
        seconds, peak, _ = timed_process(json.loads(args.rest[0]))
        print(json.dumps([seconds, peak]))
        return
    import torch

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}, float32\n"
    )
    {"latency": run_latency, "bytes": run_bytes, "process": run_process}[args.part](args)


if __name__ == "__main__":
    main()
