"""``attnscope batch`` throughput: prompts/s of the local engine and of 1 and 2 Ray workers on this machine.

    .venv/bin/python benchmarks/batch.py                                  # tiny:llama and smollm2-135m
    .venv/bin/python benchmarks/batch.py --models smollm2-135m --prompts 32 --repeats 3

The corpus is made here, the same every time: ``--prompts`` sentences of 20-40 words, English and
Chinese alternating (listed by ``corpus_rows``). Every configuration builds the whole atlas
(predictions top-5, head metrics of every layer x head, the ``attention`` method's token scores) into
a fresh folder. "setup s" is the time before the first prompt (the local engine: loading the model;
Ray: starting the actors, each loading its model, on a cluster started once beforehand);
"prompts/s" is the corpus size over the time from the first prompt to the finished index and
summary, the median of ``--repeats`` runs after ``--warmup`` untimed runs (and, per model, one untimed
local run first: the process's first forwards). The Ray cluster is private
and bound to 127.0.0.1 (as the tests start it), with as many CPUs as the machine has.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ENGLISH = "The committee met on a rainy Tuesday to discuss the budget of the new library and the garden"
CHINESE = "我爱中国，他的首都在于北京。今天下午我们在图书馆讨论了新的预算和花园的计划"


def corpus_rows(count: int) -> list[dict[str, str]]:
    """The benchmark corpus: English and Chinese sentences of varying length."""
    rows = []
    for n in range(count):
        words = ENGLISH.split()
        if n % 2:
            rows.append({"text": CHINESE[: 20 + (n * 7) % 20], "id": f"zh{n}"})
        else:
            rows.append({"text": " ".join((words * 3)[: 20 + (n * 5) % 20]) + ".", "id": f"en{n}"})
    return rows


def one_run(corpus, spec: str, engine: str, workers: int, threads: int | None, model) -> tuple[float, float]:
    """(setup seconds, analysis seconds) of one atlas build."""
    from attnscope.batch.analyse import AtlasOptions
    from attnscope.batch.engines import build_atlas

    first: list[float] = []

    def progress(done: int, total: int, stage: str) -> None:
        if not first:
            first.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as folder:
        started = time.perf_counter()
        build_atlas(
            corpus,
            spec,
            Path(folder) / "ATLAS",
            AtlasOptions(methods=("attention",), top_k=5, threads=threads),
            engine=engine,
            workers=workers,
            shard_size=max(1, len(corpus.prompts) // (2 * workers)),
            model=model if engine == "local" else None,
            progress=progress,
        )
        ended = time.perf_counter()
    return first[0] - started, ended - first[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny:llama", "smollm2-135m"])
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args()

    import torch

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from attnscope.batch.corpus import read_corpus
    from attnscope.batch.ray_engine import start_ray
    from attnscope.models import load_model

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus_rows(args.prompts)), "utf-8")
        corpus = read_corpus(path)
    start_ray(cpus, None)  # one private loopback cluster for every Ray row
    configs = [("local", 1, cpus), ("local", 1, 1), ("ray", 1, 1), ("ray", 2, 1)]
    rows = []
    for spec in args.models:
        model = load_model(spec, device="cpu", dtype="float32")
        n_tokens = [len(model.tokenizer(p.text)["input_ids"]) for p in corpus.prompts]
        one_run(corpus, spec, "local", 1, 1, model)  # this process's first forwards (kernels, caches): untimed
        for engine, workers, threads in configs:
            if workers > cpus:
                continue
            for _ in range(args.warmup):
                one_run(corpus, spec, engine, workers, threads, model)
            timings = [one_run(corpus, spec, engine, workers, threads, model) for _ in range(args.repeats)]
            setup = statistics.median(t[0] for t in timings)
            analysis = statistics.median(t[1] for t in timings)
            shown_threads = threads if threads is not None else torch.get_num_threads()
            rows.append((spec, engine, workers, shown_threads, setup, len(corpus.prompts) / analysis))
            print(
                f"  {spec} {engine} x{workers} ({shown_threads} thread): {rows[-1][-1]:.3g} prompts/s", file=sys.stderr
            )
        print(f"{spec}: tokens per prompt {min(n_tokens)}-{max(n_tokens)} (mean {statistics.mean(n_tokens):.1f})")
    print(
        f"\n{platform.machine()}, {cpus} CPUs, torch {torch.__version__} CPU, float32, device cpu; corpus "
        f"{args.prompts} prompts; warm-up {args.warmup}, repeats {args.repeats} (median)\n"
    )
    print("| model | engine | workers | torch threads each | setup s | prompts/s |")
    print("|---|---|---:|---:|---:|---:|")
    for spec, engine, workers, threads, setup, rate in rows:
        print(f"| {spec} | {engine} | {workers} | {threads} | {setup:.3g} | {rate:.3g} |")


if __name__ == "__main__":
    main()
