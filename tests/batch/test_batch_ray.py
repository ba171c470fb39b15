"""The Ray engine on a local cluster bound to 127.0.0.1 only (usage statistics off, num_cpus=2): its
shards hold the local engine's numbers byte for byte, written by the actors; no Ray process listens
on any address but loopback."""

from __future__ import annotations

import ipaddress
import json
import os

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from attnscope.batch import layout
from attnscope.batch.analyse import AtlasOptions
from attnscope.batch.corpus import read_corpus
from attnscope.batch.engines import build_atlas
from tests.batch.test_batch_local import PROMPTS, write_corpus
from tests.conftest import tiny

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def loopback_ray():
    from attnscope.batch.ray_engine import LOOPBACK_ENV, loopback_init_kwargs

    if ray.is_initialized():
        ray.shutdown()
    saved = {name: os.environ.get(name) for name in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)  # inherited by the GCS, the raylet and the workers
    # Ray read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import; this fixture's module imported Ray before it was set
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(**loopback_init_kwargs(2))
    yield ray
    ray.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def listening_addresses() -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening socket of this process and its descendants
    (the GCS server, the raylet and the workers are all started under the driver)."""
    found = []
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    found.append((connection.laddr.ip, connection.laddr.port, process.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_loopback(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    mapped = getattr(parsed, "ipv4_mapped", None)
    return (mapped or parsed).is_loopback


def column_bytes(table) -> dict[str, list[bytes]]:
    """Each column's Arrow buffers (validity, offsets, values), chunk by chunk: the stored numbers, not file bytes."""
    return {
        name: [b"" if buffer is None else buffer.to_pybytes() for chunk in column.chunks for buffer in chunk.buffers()]
        for name, column in zip(table.column_names, table.columns, strict=True)
    }


def test_ray_engine_equals_the_local_engine_byte_for_byte(tmp_path, loopback_ray):
    corpus = read_corpus(write_corpus(tmp_path, PROMPTS))
    # one torch thread in both engines (the default of both): float32 sums split by thread differ in
    # their last bits, so equal numbers need equal thread counts (see attnscope.batch.analyse._threads)
    options = AtlasOptions(methods=("attention", "grad-norm"), top_k=4, threads=1)
    local = build_atlas(corpus, "tiny:llama", tmp_path / "local", options, shard_size=2, model=tiny("llama"))
    seen: list[list[tuple[str, int, str]]] = []

    def progress(done: int, total: int, stage: str) -> None:
        seen.append(listening_addresses())  # while the actors are alive

    on_ray = build_atlas(
        corpus, "tiny:llama", tmp_path / "ray", options, shard_size=2, engine="ray", workers=2, progress=progress
    )
    assert on_ray["engine"] == "ray" and on_ray["complete"] and local["complete"]
    assert [s["rows"] for s in on_ray["shards"]] == [s["rows"] for s in local["shards"]]
    for mine, theirs in zip(local["shards"], on_ray["shards"], strict=True):
        for part in ("prompts", "heads"):
            a = pq.read_table(tmp_path / "local" / mine["files"][part])
            b = pq.read_table(tmp_path / "ray" / theirs["files"][part])
            assert a.schema.equals(b.schema)
            assert column_bytes(a.combine_chunks()) == column_bytes(b.combine_chunks()), (mine["id"], part)
    summary_a = pq.read_table(tmp_path / "local" / layout.SUMMARY)
    summary_b = pq.read_table(tmp_path / "ray" / layout.SUMMARY)
    assert column_bytes(summary_a.combine_chunks()) == column_bytes(summary_b.combine_chunks())
    assert local["bins"] == on_ray["bins"]
    # the numbers are real: a head metric differs between prompts, scores are finite
    heads = pq.read_table(tmp_path / "ray" / "heads" / "shard-00000.parquet")
    assert np.unique(heads["entropy"].to_numpy()).size > 1
    # nothing Ray started listens beyond loopback, the workers included (seen while they ran)
    addresses = [entry for snapshot in seen for entry in snapshot]
    names = {name for _, _, name in addresses}
    assert {"gcs_server", "raylet"} <= names and any("AtlasWorker" in name for name in names), names
    outside = sorted({entry for entry in addresses if not is_loopback(entry[0])})
    assert not outside, f"listening beyond loopback: {outside}"


def test_ray_workers_write_the_shards_and_a_rerun_is_a_no_op(tmp_path, loopback_ray):
    corpus = read_corpus(write_corpus(tmp_path, PROMPTS[:3]))
    out = tmp_path / "ray"
    index = build_atlas(corpus, "tiny:llama", out, AtlasOptions(top_k=2), shard_size=1, engine="ray", workers=2)
    assert [s["id"] for s in index["shards"]] == ["shard-00000", "shard-00001", "shard-00002"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet") if p.parent.name in ("prompts", "heads")}
    again = build_atlas(corpus, "tiny:llama", out, AtlasOptions(top_k=2), shard_size=1, engine="ray", workers=2)
    assert again["shards"] == index["shards"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing recomputed
    assert json.loads((out / layout.INDEX).read_text(encoding="utf-8"))["complete"]


def test_a_model_the_actors_cannot_load_is_one_line(tmp_path, loopback_ray):
    """An unknown model fails in every actor's constructor: the driver says why in one line (not
    Ray's "actor died" with a traceback) and writes nothing."""
    from attnscope.errors import InputError

    corpus = read_corpus(write_corpus(tmp_path, PROMPTS[:1]))
    with pytest.raises(InputError) as refused:
        build_atlas(corpus, "nope:not-a-model", tmp_path / "A", AtlasOptions(), engine="ray", workers=1)
    assert str(refused.value).startswith("unknown model 'nope:not-a-model'"), str(refused.value)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "A").exists()
