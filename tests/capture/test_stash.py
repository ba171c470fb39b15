"""The stash policy: where captured queries and keys live, and that reads give the same numbers wherever."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.capture import capture
from attnscope.errors import InputError
from tests.conftest import ENGLISH, tiny


@pytest.mark.parametrize("family", ["llama", "gemma3", "t5"])
def test_every_policy_reads_the_same_attention(family, device):
    model = tiny(family, device=device, dtype="float32")  # the policies, not the dtype (test_dtypes: bf16)
    reference = capture(model, ENGLISH, backend="full")
    for policy, budget in (("device", None), ("host", None), ("auto", None), ("auto", 0)):
        trace = capture(model, ENGLISH, backend="qk", stash=policy, stash_budget=budget)
        stash = trace.provenance["stash"]
        assert stash["policy"] == policy
        records = trace.source.records.values()
        offloaded = device == "cuda" and (policy == "host" or budget == 0)
        for record in records:  # in place (the model's device) unless offloaded to pinned host memory
            assert record.query.device.type == ("cpu" if offloaded else device)
            assert record.query.dtype == model.model.dtype
            if offloaded:
                assert record.query.is_pinned()
        assert stash["host_bytes" if offloaded else "device_bytes"] == trace.source.stash_bytes
        for stack in trace.stacks():
            np.testing.assert_allclose(
                trace.attention(-1, stack=stack), reference.attention(-1, stack=stack), atol=1e-4, rtol=0
            )


def test_recording_copies_nothing_on_the_device():
    """The stash holds the very tensors the attention layers received (no float32 host copy)."""
    model = tiny("qwen2", device="cpu")
    seen: list[torch.Tensor] = []
    from attnscope.capture import qk

    original = qk.QKRecorder.record

    def spy(self, module, query, key, mask, kwargs):
        seen.append(query)
        return original(self, module, query, key, mask, kwargs)

    qk.QKRecorder.record = spy
    try:
        trace = capture(model, ENGLISH, backend="qk")
    finally:
        qk.QKRecorder.record = original
    first = trace.source.records[("decoder", 0)].query
    assert first.data_ptr() == seen[0][0].data_ptr()  # a view of the model's own query tensor


@pytest.mark.parametrize(("policy", "budget"), [("pinned", None), ("auto", -1), ("", None)])
def test_bad_policies_are_refused(policy, budget):
    with pytest.raises(InputError, match="stash"):
        capture(tiny("llama", device="cpu"), ENGLISH, backend="qk", stash=policy, stash_budget=budget)


def test_reads_work_in_and_out_of_inference_mode_in_any_order():
    """The log-sum-exp cache made by a first read under inference_mode stays writable afterwards."""
    from attnscope.capture.tiles import TilePyramid, block

    model = tiny("llama", device="cpu")
    trace = capture(model, ENGLISH + " and more words after it", backend="qk")
    reference = capture(model, ENGLISH + " and more words after it", backend="full")
    with torch.inference_mode():
        first = trace.attention(0, "mean", rows=[5])
    second = trace.attention(0, "mean", rows=[6])
    part = block(trace, 0, 2, slice(3, 9), slice(0, 4))
    with torch.no_grad():
        tile = TilePyramid(trace, 0, "max").get(0, 0, 0)
    np.testing.assert_allclose(first, reference.attention(0, "mean", rows=[5]), atol=1e-5)
    np.testing.assert_allclose(second, reference.attention(0, "mean", rows=[6]), atol=1e-5)
    np.testing.assert_allclose(part, reference.attention(0, 2)[3:9, 0:4], atol=1e-5)
    np.testing.assert_allclose(tile, reference.attention(0, "max"), atol=1e-5)


def test_views_into_fused_projections_are_not_kept_whole():
    """GPT-2's query and key are views into one fused QKV output that also holds the values: the
    stash keeps compact copies, so what it reports is what it holds."""
    model = tiny("gpt2", device="cpu")
    trace = capture(model, ENGLISH, backend="qk")
    for record in trace.source.records.values():
        for tensor in (record.query, record.key):
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    assert trace.provenance["stash"]["device_bytes"] == trace.source.stash_bytes
