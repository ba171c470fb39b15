"""Runtime of every attribution method, at a few input lengths, with a plain forward as the baseline.

One process per run: load the model, build a text of exactly N tokens (cycling a fixed English
passage), run each method ``--warmup`` times untimed, then ``--repeats`` timed calls (median
reported), all at token granularity on the prediction after the last token. ``plain forward`` is
``model(input_ids)`` under ``torch.inference_mode`` — the unit every method's cost is measured in
("× forward"). Flow is skipped above its token limit. Integrated gradients use 32 steps; occlusion
removes each token in turn (N + 1 forwards, batched by 8).

Usage: python benchmarks/methods.py [--model smollm2-135m] [--lengths 32 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

PASSAGE = (
    "the history of the city begins with a small settlement on the river where traders met each spring to "
    "exchange salt grain and cloth before the long journey north across the mountains and the sea "
)


def text_of_tokens(tokenizer, n: int) -> str:
    words = PASSAGE.split()
    text, i = "", 0
    while True:
        candidate = (text + " " + words[i % len(words)]).strip()
        if len(tokenizer(candidate)["input_ids"]) > n:
            return text
        text, i = candidate, i + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=None)
    args = parser.parse_args()

    import torch
    import transformers

    from attnscope import load_model
    from attnscope.capture import capture
    from attnscope.methods import catalogue
    from attnscope.methods.run import attribute

    model = load_model(args.model)
    methods = args.methods or catalogue.attribution_names()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, model {args.model}, float32, "
        f"warm-up {args.warmup}, median of {args.repeats}"
    )
    print("| model | tokens | method | median s | × forward |")
    print("|---|---:|---|---:|---:|")
    for n in args.lengths:
        text = text_of_tokens(model.tokenizer, n)
        tokens = len(model.tokenizer(text)["input_ids"])
        ids = torch.tensor([model.tokenizer(text)["input_ids"]])

        def forward(ids: torch.Tensor = ids) -> None:
            with torch.inference_mode():
                model.model(input_ids=ids)

        def timed(function) -> float:
            for _ in range(args.warmup):
                function()
            samples = []
            for _ in range(args.repeats):
                begin = time.perf_counter()
                function()
                samples.append(time.perf_counter() - begin)
            return statistics.median(samples)

        baseline = timed(forward)
        print(f"| {args.model} | {tokens} | plain forward | {baseline:.3f} | 1.0 |", flush=True)
        runs: list[tuple[str, str, dict]] = []
        for method in methods:
            if method == "integrated-gradients":  # the old fixed default beside the automatic step count
                runs += [(f"{method} (32 steps)", method, {"steps": 32}), (f"{method} (auto)", method, {})]
            else:
                runs.append((method, method, {}))
        for label, method, options in runs:
            limit = catalogue.get(method).max_tokens
            if limit is not None and tokens > limit:
                print(f"| {args.model} | {tokens} | {label} | over the {limit}-token limit | — |")
                continue
            chosen: list[object] = []

            def run(method: str = method, text: str = text, options: dict = options, chosen: list = chosen) -> None:
                needs_trace = "trace" in catalogue.get(method).needs
                trace = capture(model, text, predict="last") if needs_trace else None
                result = attribute(model, text, method, trace=trace, **options)
                chosen.append(result.details.get("steps"))

            seconds = timed(run)
            note = f" ({chosen[-1]} steps)" if method == "integrated-gradients" and not options else ""
            print(f"| {args.model} | {tokens} | {label}{note} | {seconds:.3f} | {seconds / baseline:.1f} |", flush=True)


if __name__ == "__main__":
    main()
