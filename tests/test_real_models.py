"""End-to-end truth on the packaged real models, checked against plain ``transformers``.

The reference side loads the weights straight from the packaged files with transformers' own
GGUF/safetensors loaders and eager ``output_attentions=True`` — nothing of attnscope's loading,
conversion cache or capture is used to compute the expected numbers.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from attnscope.capture import capture
from attnscope.models.catalog import require_entry
from tests.conftest import CHINESE, ENGLISH, packaged


@cache
def reference_gguf(alias: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry = require_entry(alias)
    parts = entry.located_files()
    path = parts[0]
    if len(parts) > 1:  # join the parts by hand and check the published hash, independently of attnscope
        path = Path(tempfile.mkdtemp(prefix="reference-")) / "model.gguf"
        digest = hashlib.sha256()
        with path.open("wb") as out:
            for part in parts:
                data = part.read_bytes()
                digest.update(data)
                out.write(data)
        assert digest.hexdigest() == entry.sha256
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    )
    if len(parts) > 1:
        shutil.rmtree(path.parent)
    return model.eval(), tokenizer


def reference_forward(model, tokenizer, text):
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    attentions = np.stack([a[0].numpy() for a in out.attentions])  # (layers, heads, query, key)
    probs = torch.softmax(out.logits[0, -1].double(), dim=-1).numpy()
    return ids[0].tolist(), attentions, probs


@pytest.mark.parametrize("backend", ["full", "qk"])
def test_smollm2_matches_plain_transformers(backend):
    model = packaged("smollm2-135m")
    ref_model, ref_tokenizer = reference_gguf("smollm2-135m")
    ids, attentions, probs = reference_forward(ref_model, ref_tokenizer, ENGLISH)
    trace = capture(model, ENGLISH, backend=backend)
    assert trace.token_ids == ids
    assert trace.num_layers() == attentions.shape[0] == 30 and trace.num_heads() == 9
    for layer in range(attentions.shape[0]):
        np.testing.assert_allclose(trace.attention(layer), attentions[layer], atol=1e-4)
    top = trace.top_predictions(-1, 10)
    assert top[0].token == " Paris"
    expected_ids = np.argsort(-probs)[:10]
    assert [c.id for c in top[:3]] == list(expected_ids[:3])
    np.testing.assert_allclose([c.prob for c in top], probs[[c.id for c in top]], atol=1e-4)


def test_minilm_encoder_matches_plain_transformers():
    from transformers import AutoModel, AutoTokenizer

    model = packaged("minilm-l6")
    folder = require_entry("minilm-l6").located_files()[0]
    ref = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    ref_tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "The capital of France is Paris."
    ids = ref_tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        attentions = ref(input_ids=ids, output_attentions=True).attentions
    for backend in ("full", "qk"):
        trace = capture(model, text, backend=backend)
        assert trace.token_ids == ids[0].tolist() and trace.predictions is None
        assert trace.tokens[0].special and trace.tokens[-1].special
        for layer, expected in enumerate(attentions):
            np.testing.assert_allclose(trace.attention(layer, stack="encoder"), expected[0].numpy(), atol=1e-4)


def test_gemma3_sliding_window_qk_equals_full_on_a_long_input():
    """Gemma 3's sliding layers (window 512) only differ from full ones beyond 512 tokens."""
    model = packaged("gemma3-270m")
    text = " ".join(f"word{i % 97}" for i in range(420))  # ~ 1,000 tokens
    layers = [0, 5]  # layer 5 is a full-attention layer, layer 0 a sliding one
    full = capture(model, text, backend="full", layers=layers)
    qk = capture(model, text, backend="qk", layers=layers)
    n = len(full.tokens)
    assert n > 600 and model.arch.sliding_window == 512
    rows = [0, 100, 511, 512, 600, n - 1]
    for layer in layers:
        np.testing.assert_allclose(qk.attention(layer, rows=rows), full.attention(layer, rows=rows), atol=1e-4)
    sliding = qk.attention(0, head="max", rows=[n - 1])[0]
    assert (sliding[: n - 512] == 0).all() and (sliding[n - 512 :] > 0).all()
    assert (qk.attention(5, head="max", rows=[n - 1])[0][: n - 512] > 0).any()


@pytest.mark.slow
def test_qwen_answers_the_chinese_example_with_beijing():
    model = packaged("qwen2.5-coder-0.5b")
    ref_model, ref_tokenizer = reference_gguf("qwen2.5-coder-0.5b")
    ids, attentions, probs = reference_forward(ref_model, ref_tokenizer, CHINESE)
    trace = capture(model, CHINESE, backend="qk")
    assert trace.token_ids == ids
    assert "".join(t.text for t in trace.tokens) == CHINESE
    top = trace.top_predictions(-1)
    assert top[0].token == "北京"
    assert abs(top[0].prob - probs[top[0].id]) < 1e-4 and 0.4 < top[0].prob < 0.7
    for layer in (0, 11, 23):
        np.testing.assert_allclose(trace.attention(layer), attentions[layer], atol=1e-4)
