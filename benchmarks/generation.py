"""Generation cost: plain ``model.generate`` vs ``attnscope.generate`` (recorded), same settings.

Each (model, prompt length) runs in a fresh subprocess: load the model, build a prompt of exactly N
tokens, run every method ``--warmup`` times untimed, then ``--repeats`` timed rounds in which the
methods alternate (a drift of the machine's speed hits them alike). Greedy decoding, so every
method generates the same tokens. Reported: median wall time, its ratio to ``plain`` from the same
rounds, and the largest peak-RSS growth of one call over the loaded model.

Methods:
  plain        model.generate(ids, max_new_tokens=M, do_sample=False) with SDPA and the KV cache
  record       attnscope.generate(model, text, max_new_tokens=M): q/k rows kept per step, per-step
               probabilities and top-10, the last token's row and prediction
  record+rows  the same, then every step's attention row of every layer (mean of heads): the
               steps x positions attention matrix of each layer, as numpy

Physical floor: ``plain`` — the recording adds no forward pass (one extra decode step for the last
token, 1/M of the decode work).

Usage: python benchmarks/generation.py [--models qwen2.5-coder-0.5b] [--lengths 512] [--new 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capture import run_child, text_of_tokens, timed_rounds

METHODS = ("plain", "record", "record+rows")


def child(spec: str, methods: list[str], n_tokens: int, new: int, warmup: int, repeats: int, threads: int) -> dict:
    import torch

    import attnscope
    from attnscope.analysis.aggregate import aggregate_attention

    torch.set_num_threads(threads)
    model = attnscope.load_model(spec)
    text = text_of_tokens(model.tokenizer, n_tokens)
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    produced: dict[str, int] = {}

    def once(method: str) -> None:
        if method == "plain":
            with torch.inference_mode():
                out = model.model.generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False
                )
            produced[method] = int(out.shape[1] - ids.shape[1])
            return
        trace = attnscope.generate(model, text, max_new_tokens=new)
        produced[method] = len(trace.steps)
        if method == "record+rows":
            rows = [step.position - 1 for step in trace.steps]
            for layer in range(trace.num_layers()):
                aggregate_attention(trace, layers=[layer], head="mean", rows=rows)

    rows = timed_rounds(methods, once, warmup, repeats)
    return {"tokens": int(ids.shape[1]), "produced": produced, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[512])
    parser.add_argument("--new", type=int, default=256, help="new tokens per generation (default 256)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=3, metavar=("SPEC", "METHODS", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec, methods, n = args.child
        result = child(spec, methods.split(","), int(n), args.new, args.warmup, args.repeats, args.threads)
        print(json.dumps(result))
        return

    import torch
    import transformers

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} threads), "
        f"transformers {transformers.__version__}; float32, CPU, greedy, {args.new} new tokens; "
        f"warm-up {args.warmup}, repeats {args.repeats} (median, methods alternating)\n"
    )
    print("| model | prompt tokens | new tokens | method | median s | x plain | runs s | peak extra MB |")
    print("|---|---:|---:|---|---:|---:|---|---:|")
    for spec in args.models:
        for n in args.lengths:
            command = [
                sys.executable,
                __file__,
                "--child",
                spec,
                ",".join(args.methods),
                str(n),
                "--new",
                str(args.new),
                "--warmup",
                str(args.warmup),
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
            ]
            result = run_child(command)
            if isinstance(result, str):
                print(f"| {spec} | {n} | | {result} | | | | |", flush=True)
                continue
            baseline = result["rows"].get("plain", {}).get("median_s")
            for method, row in result["rows"].items():
                ratio = f"{row['median_s'] / baseline:.3f}" if baseline else "-"
                runs = " / ".join(f"{t:.2f}" for t in row["all_s"])
                print(
                    f"| {spec} | {result['tokens']} | {result['produced'][method]} | {method} | "
                    f"{row['median_s']:.2f} | {ratio} | {runs} | {row['peak_extra_mb']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
