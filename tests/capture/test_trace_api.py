"""Trace.attention selectors: heads, rows, negative indexes, aggregation and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.capture import capture
from attnscope.errors import InputError, OutOfRangeError
from tests.conftest import tiny


@pytest.fixture(scope="module")
def trace():
    return capture(tiny("llama"), "Attention selectors, checked one by one.", backend="qk")


def test_head_selectors(trace):
    heads = trace.attention(1)  # (heads, query, key)
    assert heads.shape[0] == trace.num_heads() == 4
    np.testing.assert_allclose(trace.attention(1, head="mean"), heads.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(trace.attention(1, head="max"), heads.max(axis=0), atol=0)
    np.testing.assert_array_equal(trace.attention(1, head=2), heads[2])
    np.testing.assert_array_equal(trace.attention(1, head=-1), heads[3])
    np.testing.assert_array_equal(trace.attention(1, head=[3, 0]), heads[[3, 0]])


def test_row_selectors_and_negative_layers(trace):
    whole = trace.attention(-1, head=1)
    last = trace.num_layers() - 1
    np.testing.assert_array_equal(whole, trace.attention(last, head=1))
    # rows are recomputed per request: equal up to float32 summation order
    np.testing.assert_allclose(trace.attention(-1, head=1, rows=-1), whole[-1:], atol=1e-6)
    np.testing.assert_allclose(trace.attention(-1, head=1, rows=[0, 5]), whole[[0, 5]], atol=1e-6)
    np.testing.assert_allclose(trace.attention(-1, head=1, rows=slice(2, 6)), whole[2:6], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 3}, "layer 3 out of range"),
        ({"layer": -4}, "layer -4 out of range"),
        ({"layer": 0, "head": 4}, "head 4 out of range"),
        ({"layer": 0, "head": "median"}, "head must be an index.*got 'median'"),
        ({"layer": 0, "rows": [999]}, "query 999 out of range"),
        ({"layer": 0, "stack": "cross"}, "no attention stack 'cross'"),
    ],
)
def test_out_of_range_is_a_clear_error(trace, kwargs, message):
    with pytest.raises(InputError, match=message):  # OutOfRangeError is an InputError
        trace.attention(**kwargs)


def test_capturing_a_subset_of_layers():
    model = tiny("qwen2")
    part = capture(model, "only some layers", backend="qk", layers=[-1])
    whole = capture(model, "only some layers", backend="qk")
    assert part.captured_layers() == [2]
    np.testing.assert_allclose(part.attention(-1), whole.attention(-1), atol=1e-6)
    with pytest.raises(OutOfRangeError, match="was not captured"):
        part.attention(0)


def test_auto_backend_switches_to_qk_above_the_threshold(monkeypatch):
    from attnscope.capture import engine

    model = tiny("llama")
    assert engine.AUTO_QK_MIN_TOKENS == 512
    monkeypatch.setattr(engine, "AUTO_QK_MIN_TOKENS", 8)
    short, long = capture(model, "abc"), capture(model, "abcdefghijkl")
    assert (len(short.tokens), short.backend) == (4, "full")
    assert (len(long.tokens), long.backend) == (13, "qk")
    assert long.provenance["backend"] == "qk"


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "text is empty"), (b"\xff\xfe bad", "not valid UTF-8"), ("x" * 300, "reads at most 256")],
)
def test_bad_text_is_a_clear_error(text, message):
    with pytest.raises(InputError, match=message):
        capture(tiny("llama"), text)


def test_chat_messages_keep_role_spans():
    model = tiny("qwen2")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "北京 or Paris?"}]
    trace = capture(model, messages=messages)
    assert [p.name for p in trace.parts] == ["system", "user"]
    for part, message in zip(trace.parts, messages, strict=True):
        assert trace.text[part.start : part.end] == message["content"]
    special = [t for t in trace.tokens if t.special]
    assert special and all(trace.text[t.start : t.end] == t.text for t in special)
