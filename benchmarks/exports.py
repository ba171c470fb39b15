"""Exports of long inputs: seconds and bytes of each view's figure (and the heatmap's CSV).

One process: load the model, capture ``" ".join(f"word{i % 97}" for i in range(words))`` once with
the default backend (``qk`` for long inputs), then time ``render(view, trace, format)`` once per view
(no warm-up: an export is a one-off). Prints a markdown table with the machine and the model.

Usage:
  python benchmarks/exports.py --model smollm2-135m --words 720 --views heatmap:png heatmap:csv tokens:png
  python benchmarks/exports.py --words 2170 --views heatmap:png grid:png model:png metrics:png
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--words", type=int, default=720, help="words of the input (about 2 tokens each)")
    parser.add_argument("--views", nargs="+", default=["heatmap:png", "tokens:png", "grid:png", "model:png"])
    args = parser.parse_args()
    from attnscope import capture, load_model
    from attnscope.render.exports.frame import ExportOptions
    from attnscope.render.exports.registry import render

    model = load_model(args.model)
    text = " ".join(f"word{i % 97}" for i in range(args.words))
    started = time.perf_counter()
    trace = capture(model, text)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.model} {model.info.dtype}, "
          f"{len(trace.tokens)} tokens, {trace.backend} capture {time.perf_counter() - started:.1f} s\n")  # fmt: skip
    print("| view | format | seconds | bytes |\n|---|---|---|---|")
    for item in args.views:
        view, _, form = item.partition(":")
        started = time.perf_counter()
        data = render(view, trace, form or "png", ExportOptions())
        print(f"| {view} | {form or 'png'} | {time.perf_counter() - started:.1f} | {len(data):,} |", flush=True)


if __name__ == "__main__":
    main()
