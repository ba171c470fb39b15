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
    model = tiny(family, device=device)
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
