"""Saving and loading traces: exact round trip; truncated, corrupt and foreign files are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from attnscope import Trace
from attnscope.capture import capture
from attnscope.errors import TraceFormatError
from tests.conftest import tiny


@pytest.mark.parametrize(("family", "backend"), [("gemma3", "qk"), ("gpt2", "full"), ("t5", "qk"), ("bert", "full")])
def test_round_trip_is_exact(tmp_path, family, backend):
    model = tiny(family)
    kwargs = {"target": "ok"} if family == "t5" else {}
    trace = capture(model, "Round trip: 往返 ✓", backend=backend, **kwargs)
    path = trace.save(tmp_path / "trace.safetensors")
    loaded = Trace.load(path)
    assert loaded.text == trace.text and loaded.tokens == trace.tokens
    assert loaded.target_tokens == trace.target_tokens
    assert loaded.model == trace.model
    assert loaded.provenance == json.loads(json.dumps(trace.provenance))
    assert loaded.backend == backend
    for stack in trace.stacks():
        for layer in range(trace.num_layers(stack)):
            np.testing.assert_array_equal(loaded.attention(layer, stack=stack), trace.attention(layer, stack=stack))
    np.testing.assert_array_equal(loaded.predictions.top_ids, trace.predictions.top_ids)
    np.testing.assert_array_equal(loaded.predictions.top_probs, trace.predictions.top_probs)
    assert loaded.top_predictions(-1) == trace.top_predictions(-1)


@pytest.fixture
def saved(tmp_path):
    return capture(tiny("llama"), "a saved trace", backend="qk").save(tmp_path / "t.safetensors")


def test_truncated_file_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceFormatError, match=r"not a readable trace file|corrupt"):
        Trace.load(saved)


def test_flipped_byte_is_refused(saved):
    data = bytearray(saved.read_bytes())
    data[-10] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError, match="checksum mismatch"):
        Trace.load(saved)


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, dtype=np.float32)}, str(other))
    with pytest.raises(TraceFormatError, match="not an attnscope trace"):
        Trace.load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(TraceFormatError, match="not a readable trace file"):
        Trace.load(text)
    with pytest.raises(TraceFormatError, match="no such trace file"):
        Trace.load(tmp_path / "missing.safetensors")


def test_edited_metadata_is_refused(saved):
    data = saved.read_bytes()
    assert data.count(b"a saved trace") >= 1
    saved.write_bytes(data.replace(b"a saved trace", b"a faked trace"))  # same length: only the metadata changes
    with pytest.raises(TraceFormatError, match="checksum mismatch"):
        Trace.load(saved)


def test_version_1_files_still_load(saved):
    from attnscope.capture import trace_file

    meta, arrays = trace_file._read(saved)
    old = {**meta, "version": 1, "checksum": trace_file._checksum(arrays, None)}  # arrays-only checksum
    safetensors_save(arrays, saved, old)
    assert Trace.load(saved).text == "a saved trace"


def safetensors_save(arrays, path, meta) -> None:
    import json as json_module

    save_file(arrays, str(path), metadata={"attnscope": json_module.dumps(meta, ensure_ascii=False)})


def test_saving_into_a_folder_or_under_a_file_is_a_clear_error(tmp_path):
    from attnscope.errors import InputError

    trace = capture(tiny("llama"), "where to save")
    with pytest.raises(InputError, match="it is a folder"):
        trace.save(tmp_path)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with pytest.raises(InputError, match=r"plain\.txt is a file, not a folder"):
        trace.save(plain / "t.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]  # nothing half-written left behind


def test_a_killed_save_leaves_a_temporary_that_the_next_save_deletes(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "t.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".t.safetensors.{int(dead.stdout)}-abc123.tmp"  # what a killed writer leaves
    leftover.write_bytes(b"half a trace")
    other = tmp_path / ".unrelated.12345-abc.tmp"
    other.write_bytes(b"not ours")
    capture(tiny("llama"), "saved again").save(target)
    assert not leftover.exists() and other.exists() and Trace.load(target).text == "saved again"
    assert target.stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
