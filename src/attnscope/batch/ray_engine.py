"""The Ray engine: one :class:`AtlasWorker` actor per worker, each loading the model once and running
:func:`attnscope.batch.analyse.analyse_shard` on the shards it is handed; the actors write the shard
files, the driver (:func:`attnscope.batch.engines.build_atlas`) writes the index and stores runs.

Without ``address`` a private cluster is started on this machine, bound to the loopback interface
only (node address 127.0.0.1; Ray's "no cluster" mode so no service listens on another interface;
no dashboard; usage statistics off) with one CPU per worker, and shut down at the end. With
``address`` (``auto``, ``HOST:6379`` or ``ray://HOST:10001``) the actors run on that cluster and
must see the atlas folder at the same path (a shared file system).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnscope.batch.analyse import AtlasOptions, ShardOutcome, analyse_shard, check_lengths, model_facts
from attnscope.batch.corpus import Prompt
from attnscope.errors import AttnscopeError, InputError

# set before Ray is imported: Ray reads them at import time, and its processes inherit them
LOOPBACK_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage statistics sent anywhere
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # "no cluster": every Ray service binds 127.0.0.1 only
}


def loopback_init_kwargs(num_cpus: int) -> dict[str, Any]:
    """``ray.init`` arguments of a private, loopback-only cluster (tests use the same ones)."""
    return {
        "num_cpus": num_cpus,
        "_node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }


def start_ray(workers: int, address: str | None) -> bool:
    """Connect to ``address`` or start a private loopback cluster; True when this call started Ray
    (and so must shut it down)."""
    for name, value in LOOPBACK_ENV.items():
        if address is None:
            os.environ[name] = value
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'attnscope[ray]'") from None
    if ray.is_initialized():
        return False
    if address is not None:
        check_reachable(address)
    if address is None:  # Ray may have been imported before the variable was set: its constant, too
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        if address is None:
            ray.init(**loopback_init_kwargs(workers))
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = address or "a private cluster on 127.0.0.1"
        raise InputError(f"cannot start or reach Ray at {where}: {str(error).splitlines()[0]}") from None
    return True


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse at once a ``HOST:PORT`` or ``ray://HOST:PORT`` address nothing answers on (Ray itself
    retries for minutes); ``auto`` is left to Ray."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        if address != "auto" and not address.startswith("ray://") and ":" not in address:
            raise InputError(f"--address {address!r}: give auto, HOST:PORT or ray://HOST:PORT")
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise InputError(f"--address {address}: no Ray cluster answers there ({error.strerror or error})") from None


class AtlasWorker:
    """One model, loaded once per actor; analyses the shards it is given and writes their files."""

    def __init__(self, spec: str, device: str, dtype: str, trust_remote_code: bool) -> None:
        from attnscope.models import load_model

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.refusal: AttnscopeError | None = None  # kept, not raised: Ray turns an error in __init__ into an
        try:  # ActorDiedError whose message is a traceback; raised from a method it reaches the driver whole
            self.model = load_model(spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        except AttnscopeError as error:  # unknown model, failed load, bad checksum: one line at the driver
            self.refusal = error

    def facts(self, prompts: list[Prompt], methods: tuple[str, ...]) -> dict[str, Any]:
        if self.refusal is not None:
            raise self.refusal
        check_lengths(self.model, prompts, methods)
        return model_facts(self.model)

    def shard(self, number: int, prompts: list[Prompt], options: AtlasOptions, folder: str) -> ShardOutcome:
        if self.refusal is not None:
            raise self.refusal
        return analyse_shard(self.model, prompts, options, folder, number)


class RaySession:
    """The actors of one atlas run (the driver's side)."""

    def __init__(
        self,
        spec: str,
        *,
        device: str,
        dtype: str,
        trust_remote_code: bool,
        workers: int,
        address: str | None,
        threads: int = 1,
    ) -> None:
        self.started = start_ray(workers * threads, address)
        import ray

        actor: Any = ray.remote(num_cpus=threads)(AtlasWorker)  # one CPU per torch thread
        self.actors: list[Any] = [actor.remote(spec, device, dtype, trust_remote_code) for _ in range(workers)]

    def facts(self, prompts: list[Prompt], methods: tuple[str, ...]) -> dict[str, Any]:
        """The model's facts from the first actor (which also checks the prompts' lengths)."""
        return self._get(self.actors[0].facts.remote(prompts, methods))

    def run(self, jobs: list[tuple[int, list[Prompt]]], options: AtlasOptions, folder: Path) -> Iterator[ShardOutcome]:
        """Each shard to the next free actor; outcomes as they finish (any order)."""
        import ray

        waiting = list(jobs)
        running: dict[Any, Any] = {}  # object ref -> actor

        def give(actor: Any) -> None:
            if waiting:
                number, prompts = waiting.pop(0)
                running[actor.shard.remote(number, prompts, options, str(folder))] = actor

        for actor in self.actors:
            give(actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor = running.pop(ready[0])
            outcome = self._get(ready[0])
            give(actor)
            yield outcome

    def _get(self, ref: Any) -> Any:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if hasattr(error, "cause") else None
            if isinstance(cause, AttnscopeError):
                raise InputError(str(cause)) from None
            raise
        except ray.exceptions.RayActorError as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"a Ray worker could not start or died: {message}") from None

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        if self.started:
            ray.shutdown()
