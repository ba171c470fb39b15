"""Capture cost: plain SDPA forward vs attnscope's ``qk`` and ``full`` capture.

Each (model, length) runs in a fresh subprocess: load the model, build an input of exactly N tokens,
run every method ``--warmup`` times untimed, then ``--repeats`` timed rounds in which the methods
alternate (so a drift of the machine's speed hits them alike). Reported: the median wall time, its
ratio to ``plain`` from the same rounds, and the largest peak-RSS growth of one call over the loaded
model (peak reset before each call through /proc/self/clear_refs, freed heap trimmed first).

Methods:
  plain     model(input_ids, logits_to_keep=1) with SDPA — the baseline, nothing recorded
  qk        capture(backend="qk", predict="last")   — queries/keys recorded, last-position top-k
  qk+preds  capture(backend="qk", predict="all")    — plus top-k at every position (N x vocab logits, chunked)
  full      capture(backend="full", predict="last") — eager output_attentions, every map kept

Usage: python benchmarks/capture.py [--models smollm2-135m qwen2.5-coder-0.5b] [--lengths 128 512 2048]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

METHODS = ("plain", "qk", "qk+preds", "full")
WORDS = [
    "the",
    "history",
    "of",
    "the",
    "city",
    "begins",
    "with",
    "a",
    "small",
    "settlement",
    "on",
    "the",
    "river",
    "where",
    "traders",
    "met",
    "each",
    "spring",
    "to",
    "exchange",
    "salt",
    "grain",
    "and",
    "cloth",
    "before",
    "the",
    "long",
    "journey",
    "north",
    "across",
    "the",
    "mountains",
]


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> None:
    """Forget the peak RSS so far (Linux: writing 5 to clear_refs resets VmHWM), e.g. of model loading."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def text_of_tokens(tokenizer, n_tokens: int) -> str:
    """A text that tokenizes to exactly ``n_tokens`` (cut at a token boundary)."""
    words = (WORDS * (n_tokens // len(WORDS) + 2))[: n_tokens + 8]
    text = " ".join(words)
    encoding = tokenizer(text, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    special = sum(1 for start, end in offsets if start == end == 0)
    return text[: offsets[n_tokens - 1 - special][1]] if special < n_tokens else text


def child(spec: str, methods: list[str], n_tokens: int, warmup: int, repeats: int, threads: int) -> dict:
    """Time every method on one model and length, interleaved round by round (so drift of the
    machine's speed hits all methods alike), and measure each call's peak RSS growth."""
    import torch

    import attnscope
    from attnscope.capture import capture

    torch.set_num_threads(threads)
    model = attnscope.load_model(spec)
    text = text_of_tokens(model.tokenizer, n_tokens)
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]

    def once(method: str) -> None:
        if method == "plain":
            with torch.inference_mode():
                model.model(input_ids=ids, logits_to_keep=1, use_cache=False)
        elif method == "qk":
            capture(model, text, backend="qk", predict="last")
        elif method == "qk+preds":
            capture(model, text, backend="qk", predict="all")
        else:
            capture(model, text, backend="full", predict="last")

    return {"tokens": int(ids.shape[1]), "rows": timed_rounds(methods, once, warmup, repeats)}


def timed_rounds(methods: list[str], once: Any, warmup: int, repeats: int) -> dict[str, dict[str, Any]]:
    """``once(method)`` for every method, ``warmup`` untimed rounds (they also fault the memory-mapped
    weights in) then ``repeats`` timed rounds in which the methods alternate; per method the median
    and every time, and the largest peak-RSS growth of one call over what was resident before it."""
    for _ in range(warmup):
        for method in methods:
            once(method)
    times: dict[str, list[float]] = {m: [] for m in methods}
    peaks: dict[str, float] = dict.fromkeys(methods, 0.0)
    for _ in range(repeats):
        for method in methods:
            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back: the baseline is the loaded model
            reset_peak_rss()
            base_rss = current_rss_mb()
            begin = time.perf_counter()
            once(method)
            times[method].append(time.perf_counter() - begin)
            peaks[method] = max(peaks[method], peak_rss_mb() - base_rss)
    return {m: {"median_s": statistics.median(times[m]), "all_s": times[m], "peak_extra_mb": peaks[m]} for m in methods}


def run_child(command: list[str]) -> dict[str, Any] | str:
    """The JSON a benchmark's child process printed last, or the last line of its error."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 512, 2048])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=3, metavar=("SPEC", "METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec, methods, n = args.child
        print(json.dumps(child(spec, methods.split(","), int(n), args.warmup, args.repeats, args.threads)))
        return

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
        f"python {platform.python_version()}; dtype float32; warm-up {args.warmup}, repeats {args.repeats} "
        "(median)\n"
    )
    print("| model | tokens | method | median s | x plain | peak extra MB |")
    print("|---|---:|---|---:|---:|---:|")
    for spec in args.models:
        for n in args.lengths:
            command = [
                sys.executable,
                __file__,
                "--child",
                spec,
                ",".join(args.methods),
                str(n),
                "--warmup",
                str(args.warmup),
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
            ]
            result = run_child(command)
            if isinstance(result, str):
                print(f"| {spec} | {n} | {result} | | | |", flush=True)
                continue
            baseline = result["rows"].get("plain", {}).get("median_s")
            for method, row in result["rows"].items():
                ratio = f"{row['median_s'] / baseline:.2f}" if baseline else "-"
                print(
                    f"| {spec} | {result['tokens']} | {method} | {row['median_s']:.3f} | {ratio} | "
                    f"{row['peak_extra_mb']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
