"""``build_atlas``: a corpus head atlas, computed by the local engine (one model in this process) or
by Ray (one model per actor, :mod:`attnscope.batch.ray_engine`); both run
:func:`attnscope.batch.analyse.analyse_shard`, the driver alone writes the index and stores runs.

Resuming: the index names whole shards only; a rerun with the same corpus, model and options skips
them and computes the rest, so no row is ever written twice, and stored runs have ids derived from
the atlas and the prompt (:func:`attnscope.batch.analyse.run_id_for`), so no prompt is stored twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.batch import layout
from attnscope.batch.analyse import AtlasOptions, ShardOutcome, analyse_shard, check_lengths, model_facts
from attnscope.batch.corpus import Corpus, Prompt
from attnscope.batch.shards import open_atlas, record_shard, shard_plan, write_index, write_parquet
from attnscope.errors import InputError
from attnscope.progress import Progress

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

PII_POLICIES = ("mask", "off")
MAX_TOP_K = 100
MAX_SHARD_SIZE = 100_000


def check_options(options: AtlasOptions, engine: str, workers: int, shard_size: int) -> None:
    """Refuse unusable options before anything is loaded or written."""
    from attnscope.methods import catalogue

    for method in options.methods:
        spec = catalogue.get(method)  # unknown names: InputError listing the methods
        if not spec.scores_tokens:
            names = ", ".join(catalogue.attribution_names())
            raise InputError(f"--methods: {method} gives no token scores; these do: {names}")
    if len(set(options.methods)) != len(options.methods):
        raise InputError("--methods names a method twice")
    if not 1 <= options.top_k <= MAX_TOP_K:
        raise InputError(f"--top-k must be between 1 and {MAX_TOP_K}")
    if not 0 < options.threshold < 1:
        raise InputError("--threshold must be between 0 and 1")
    if options.pii_policy not in PII_POLICIES:
        raise InputError(
            f"--pii-policy {options.pii_policy}: an atlas takes mask or off (hash is salted per process, so shards "
            "would not agree; drop would leave holes in the corpus)"
        )
    if engine not in layout.ENGINES:
        raise InputError(f"unknown engine {engine!r}; engines: {', '.join(layout.ENGINES)}")
    if not 1 <= workers <= 1024:
        raise InputError("--workers must be between 1 and 1024")
    if engine == "local" and workers != 1:
        raise InputError("--workers is for --engine ray (the local engine runs one model in this process)")
    if options.threads is not None and not 1 <= options.threads <= 1024:
        raise InputError("--threads must be between 1 and 1024")
    if not 1 <= shard_size <= MAX_SHARD_SIZE:
        raise InputError(f"--shard-size must be between 1 and {MAX_SHARD_SIZE:,}")


def atlas_key(corpus: Corpus, facts: dict[str, Any], options: AtlasOptions, shard_size: int) -> str:
    """The atlas's identity: corpus bytes, model, options and sharding (stored run ids derive from it)."""
    identity = [corpus.sha256, facts["model"], options.identity(), shard_size]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


class Eta:
    """prompts/s and the time left, from the prompts done in this session (resumed ones excluded)."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.first = total, done, done
        self.started = time.perf_counter()

    def stage(self) -> str:
        fresh = self.done - self.first
        elapsed = time.perf_counter() - self.started
        if fresh <= 0 or elapsed <= 0:
            return "atlas"
        rate = fresh / elapsed
        left = (self.total - self.done) / rate
        return f"atlas {rate:.3g} prompts/s, ETA {_duration(left)}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def build_atlas(
    corpus: Corpus,
    model_spec: str,
    out: str | Path,
    options: AtlasOptions | None = None,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    shard_size: int = layout.DEFAULT_SHARD_SIZE,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    overwrite: bool = False,
    origin: str = "library",
    model: LoadedModel | None = None,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build (or continue) the atlas of ``corpus`` in ``out``; returns its index (``atlas.json``).

    ``model``: an already loaded model for the local engine (else ``model_spec`` is loaded).
    ``address``: a Ray cluster to join (``auto``, ``host:6379`` or ``ray://host:10001``); without
    it the Ray engine starts a private cluster bound to 127.0.0.1. ``progress(done, total, stage)``
    counts prompts; ``say`` gets one line per finished shard."""
    from attnscope.models.provenance import new_record, utc_now

    options = options or AtlasOptions()
    check_options(options, engine, workers, shard_size)
    folder = Path(out).absolute()
    started_at = utc_now()
    if options.threads is None:  # one thread per model in both engines: the same numbers, bit for bit, and
        options = replace(options, threads=1)  # on a shared machine far faster than threads fighting for cores
    session = (
        _ray_session(model_spec, device, dtype, trust_remote_code, workers, address, options.threads or 1)
        if engine == "ray"
        else None
    )
    try:
        if session is not None:
            facts = session.facts(corpus.prompts, options.methods)
        else:
            if model is None:
                from attnscope.models import load_model

                model = load_model(model_spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
            check_lengths(model, corpus.prompts, options.methods)
            facts = model_facts(model)
        options = replace(options, key=atlas_key(corpus, facts, options, shard_size))
        header = {
            "format": layout.FORMAT,
            "schema_version": layout.SCHEMA_VERSION,
            "model": facts["model"],
            "methods": list(options.methods),
            "metrics": list(layout.HEAD_METRICS),
            "top_k": options.top_k,
            "engine": engine,
            "corpus": {"path": corpus.path, "sha256": corpus.sha256, "prompts": len(corpus.prompts)},
            "shard_size": shard_size,
            "options": options.identity(),
            "key": options.key,
            "created": started_at,
            "updated": started_at,
            "provenance": new_record(
                facts["provenance"],
                started_at=started_at,
                result_kind="atlas",
                method="atlas",
                method_options={
                    **options.identity(),
                    "engine": engine,
                    "workers": workers,
                    "threads": options.threads,
                },
                top_k=options.top_k,
                masking_policy=options.pii_policy,
                device=facts["device"],
            ),
        }
        index = open_atlas(folder, header, overwrite=overwrite)
        done_ids = {shard["id"] for shard in index["shards"]}
        plan = [
            step for step in shard_plan(len(corpus.prompts), shard_size) if layout.shard_id(step[0]) not in done_ids
        ]
        done = sum(shard["last"] - shard["first"] + 1 for shard in index["shards"])
        eta = Eta(len(corpus.prompts), done)
        if progress is not None:
            progress(done, eta.total, eta.stage())
        jobs = [(number, corpus.prompts[first : last + 1]) for number, first, last in plan]
        store = _open_store() if options.store and jobs else None
        try:
            if session is not None:
                outcomes = session.run(jobs, options, folder)
            else:
                assert model is not None
                outcomes = _local(model, jobs, options, folder, eta, progress)
            for outcome in outcomes:
                if store is not None:
                    _store_runs(store, outcome.runs, options.pii_policy, origin)
                record_shard(folder, index, outcome.entry, utc_now())
                eta.done = sum(s["last"] - s["first"] + 1 for s in index["shards"])
                if progress is not None:
                    progress(eta.done, eta.total, eta.stage())
                if say is not None:
                    say(f"{outcome.entry['id']}: prompts {outcome.entry['first']}-{outcome.entry['last']} "
                        f"written ({eta.done}/{eta.total}; {eta.stage()})")  # fmt: skip
        finally:
            if store is not None:
                store.close()
    finally:
        if session is not None:
            session.close()
    return finish(folder, index)


def finish(folder: Path, index: dict[str, Any]) -> dict[str, Any]:
    """With every shard written: the per-head summary, its bins, and ``complete`` in the index."""
    from attnscope.batch.summary import summarise
    from attnscope.models.provenance import utc_now

    covered = sum(shard["last"] - shard["first"] + 1 for shard in index["shards"])
    if covered != index["corpus"]["prompts"]:
        return index
    table, bins = summarise(folder, index)
    index["summary"] = {
        "file": layout.SUMMARY,
        "rows": table.num_rows,
        "sha256": write_parquet(table, folder / layout.SUMMARY),
    }
    index["bins"] = bins
    index["complete"] = True
    index["updated"] = utc_now()
    write_index(folder, index)
    return index


def _local(
    model: LoadedModel,
    jobs: list[tuple[int, list[Prompt]]],
    options: AtlasOptions,
    folder: Path,
    eta: Eta,
    progress: Progress | None,
) -> Iterator[ShardOutcome]:
    """The local engine: the shards one after another on the model in this process."""
    for number, prompts in jobs:
        base = eta.done

        def step(count: int, base: int = base) -> None:
            eta.done = base + count
            if progress is not None:
                progress(eta.done, eta.total, eta.stage())

        yield analyse_shard(model, prompts, options, folder, number, progress=step)


def _ray_session(
    spec: str, device: str, dtype: str, trust_remote_code: bool, workers: int, address: str | None, threads: int
) -> Any:
    from attnscope.batch.ray_engine import RaySession

    return RaySession(
        spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code, workers=workers, address=address,
        threads=threads,
    )  # fmt: skip


def _open_store() -> Any:
    from attnscope.store.runs import RunsStore

    return RunsStore()


def _store_runs(store: Any, runs: list[dict[str, Any]], pii_policy: str, origin: str) -> None:
    """Each prompt's analysis as a run (masked by the store), unless a run with its id is stored already."""
    from attnscope.errors import NotFoundError

    for run in runs:
        try:
            store.get(run["run_id"])
            continue  # stored by an earlier, interrupted run of this atlas
        except NotFoundError:
            pass
        body = run["body"]
        store.put(
            kind="analysis", text=run["text"], model=body.get("model") or {}, result=body, origin=origin,
            run_id=run["run_id"], pii_policy=pii_policy,
        )  # fmt: skip
