"""Size of the standalone HTML file (``attnscope.render.standalone``) against its budget.

For each (model, length): capture a text of exactly that many tokens (``capture.text_of_tokens``),
build the file with the default budget (5,000,000 bytes) and print what it holds (the tier), its
size, the share of the budget and the build time. With ``--all-tiers``, one more row per tier gives
the size of the file holding that tier whatever the budget (every head's whole map is not built over
50 million cells), so the budget's choice can be seen.

Usage:
  python benchmarks/standalone.py                                     # qwen2.5-coder-0.5b at 100, 300, 1000 tokens
  python benchmarks/standalone.py --models smollm2-135m --lengths 1000 --all-tiers
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capture import text_of_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[100, 300, 1000])
    parser.add_argument("--all-tiers", action="store_true", help="also build every tier with no budget")
    args = parser.parse_args()

    import attnscope
    from attnscope.capture import capture
    from attnscope.render import standalone

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; budget "
          f"{standalone.DEFAULT_BUDGET:,} bytes")  # fmt: skip
    print()
    print("| model | tokens | layers × heads | content | bytes | MB | % of budget | build s |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for spec in args.models:
        model = attnscope.load_model(spec)
        for n in args.lengths:
            trace = capture(model, text_of_tokens(model.tokenizer, n), backend="qk")
            shape = f"{trace.num_layers()} × {trace.num_heads()}"
            begin = time.perf_counter()
            data = standalone.standalone_html(trace)
            seconds = time.perf_counter() - begin
            content = data.split(b'"content":"', 1)[1].split(b'"', 1)[0].decode()
            print(f"| {spec} | {len(trace.tokens)} | {shape} | {content} | {len(data):,} | {len(data) / 1e6:.2f} | "
                  f"{100 * len(data) / standalone.DEFAULT_BUDGET:.0f} | {seconds:.1f} |")  # fmt: skip
            if args.all_tiers:
                for tier in standalone.TIERS:
                    cells = trace.num_layers() * trace.num_heads() * len(trace.tokens) ** 2
                    if tier == "heads" and cells > 50_000_000:
                        print(f"| {spec} | {len(trace.tokens)} | {shape} | ({tier}, no budget) | "
                              f"not built: {cells:,} cells | | | |")  # fmt: skip
                        continue
                    sized = standalone.tier_size(trace, tier)
                    print(f"| {spec} | {len(trace.tokens)} | {shape} | ({tier}, no budget) | {sized:,} | "
                          f"{sized / 1e6:.2f} | {100 * sized / standalone.DEFAULT_BUDGET:.0f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
