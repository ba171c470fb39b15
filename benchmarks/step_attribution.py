"""Per-step attribution of a generation: attnscope against plain generate and against inseq.

Each (prompt length, method) runs in a fresh subprocess (peak RSS measured there, over the loaded
model), after one untimed warm-up generation; greedy decoding, so every method explains the same
tokens. ``--timeout`` stops a method that runs too long (reported as "> timeout").

Methods:
  plain                  model.generate(max_new_tokens=NEW)                         (the baseline)
  attnscope:generate     attnscope.generate: the q/k stash, per-step probabilities and top-10
  attnscope:attention    + every step's row of every layer and head (the attention matrix)
  attnscope:grad-norm    + step_attribution(grad-norm): one forward, batched VJPs (≈ inseq saliency)
  attnscope:grad-x-input + step_attribution(grad-x-input)
  inseq:attention        inseq.load_model(model, "attention").attribute(prompt, generation_args)
  inseq:saliency         ... "saliency"
  inseq:input_x_gradient ... "input_x_gradient"
  floor                  NEW × one forward pass over prompt + answer (timed once, no graph): the least
                         any exact per-step gradient can cost — each step's ∂f_s/∂e needs its own
                         backward pass, and a backward to the inputs costs at least one forward

inseq is imported from PYTHONPATH when present; its pins (CUDA 11 wheels on Linux) do not install
beside this project's, so install it apart without dependencies:
  pip install --target /tmp/inseq-pkgs --no-deps inseq==0.7.1 captum jaxtyping "typeguard<=2.13.3" \
      treescope wadler_lindig
  PYTHONPATH=/tmp/inseq-pkgs python benchmarks/step_attribution.py

Usage: python benchmarks/step_attribution.py [--lengths 509 2045] [--new 32] [--methods ...] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capture import current_rss_mb, peak_rss_mb, reset_peak_rss, text_of_tokens

METHODS = (
    "plain",
    "attnscope:generate",
    "attnscope:attention",
    "attnscope:grad-norm",
    "attnscope:grad-x-input",
    "inseq:attention",
    "inseq:saliency",
    "inseq:input_x_gradient",
    "floor",
)


def child(spec: str, method: str, n_tokens: int, new: int, threads: int) -> dict:
    import torch

    import attnscope

    torch.set_num_threads(threads)
    model = attnscope.load_model(spec)
    text = text_of_tokens(model.tokenizer, n_tokens)
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]

    def plain() -> None:
        with torch.inference_mode():
            model.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False)

    plain()  # warm-up (also faults the weights in)
    if method.startswith("inseq:"):
        import inseq

        if method == "inseq:attention":  # inseq reads output_attentions: eager attention
            model.model.set_attn_implementation("eager")
        explainer = inseq.load_model(model.model, method.split(":")[1], tokenizer=model.tokenizer)
    reset_peak_rss()
    base = current_rss_mb()
    begin = time.perf_counter()
    if method == "plain":
        plain()
    elif method == "floor":
        whole = torch.randint(100, 20_000, (1, ids.shape[1] + new - 1))  # prompt + answer, the last token not fed
        with torch.inference_mode():
            model.model(whole)  # warm-up at this length
            begin = time.perf_counter()
            model.model(whole)
            return {"tokens": int(ids.shape[1]), "seconds": new * (time.perf_counter() - begin), "peak_extra_mb": 0.0}
    elif method.startswith("attnscope:"):
        trace = attnscope.generate(model, text, max_new_tokens=new)
        name = method.split(":")[1]
        if name == "attention":
            rows = [step.position - 1 for step in trace.steps]
            for layer in range(trace.num_layers()):
                trace.attention(layer, None, rows=rows)  # (heads, steps, tokens)
        elif name != "generate":
            from attnscope.methods.steps import step_attribution

            step_attribution(model, trace, name)
    else:
        explainer.attribute(text, generation_args={"max_new_tokens": new, "do_sample": False}, show_progress=False)
    seconds = time.perf_counter() - begin
    return {"tokens": int(ids.shape[1]), "seconds": seconds, "peak_extra_mb": peak_rss_mb() - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", nargs="+", type=int, default=[509, 2045])
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n = args.child
        print(json.dumps(child(args.model, method, int(n), args.new, args.threads)))
        return

    import torch
    import transformers

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} threads), "
        f"transformers {transformers.__version__}; {args.model}, float32, CPU, greedy, {args.new} new tokens; "
        "one warm-up generation, then one timed run per method in its own process\n"
    )
    print("| prompt tokens | method | seconds | × plain | peak extra MB |")
    print("|---:|---|---:|---:|---:|")
    for n in args.lengths:
        baseline = None
        for method in args.methods:
            command = [
                sys.executable,
                __file__,
                "--child",
                method,
                str(n),
                "--model",
                args.model,
                "--new",
                str(args.new),
                "--threads",
                str(args.threads),
            ]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"| {n} | {method} | > {args.timeout} | > {args.timeout / baseline:.0f} |  |"
                    if baseline
                    else f"| {n} | {method} | > {args.timeout} |  |  |",
                    flush=True,
                )
                continue
            if done.returncode != 0:
                print(f"| {n} | {method} | failed: {done.stderr.strip().splitlines()[-1:]} | | |", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if method == "plain":
                baseline = result["seconds"]
            ratio = f"{result['seconds'] / baseline:.2f}" if baseline else "-"
            print(
                f"| {result['tokens']} | {method} | {result['seconds']:.2f} | {ratio} | "
                f"{result['peak_extra_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
