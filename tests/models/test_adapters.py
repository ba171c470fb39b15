"""PEFT adapters: attnscope's merged model against ``peft.PeftModel`` run directly (un-merged)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from attnscope.capture import capture
from attnscope.errors import ModelLoadError, ModelNotFoundError
from attnscope.models.adapters import with_adapter
from attnscope.models.tiny import build_tiny
from tests.conftest import CHINESE, ENGLISH, tiny


def build_lora(folder: Path, family: str = "llama", targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A LoRA adapter (rank 4, random A and B so it changes the outputs) over ``tiny:<family>``,
    saved by peft as safetensors."""
    from peft import LoraConfig, get_peft_model

    base, _, _ = build_tiny(family, attn_implementation="eager")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), init_lora_weights=False)
    torch.manual_seed(3)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(folder, safe_serialization=True)
    assert (folder / "adapter_model.safetensors").is_file() and not (folder / "adapter_model.bin").exists()
    return folder


@pytest.fixture(scope="module")
def lora(tmp_path_factory) -> Path:
    return build_lora(tmp_path_factory.mktemp("lora") / "adapter")


def peft_direct(folder: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(layers, heads, query, key) attention and last-position probabilities of ``PeftModel`` (un-merged)."""
    from peft import PeftModel

    base, tokenizer, _ = build_tiny("llama", attn_implementation="eager")
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    return torch.stack(out.attentions)[:, 0].double().numpy(), torch.softmax(out.logits[0, -1].double(), -1).numpy()


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_adapter_outputs_match_peft_directly(lora, text):
    base = tiny("llama")
    before = {name: value.clone() for name, value in base.model.state_dict().items()}
    adapted = with_adapter(base, lora)
    trace = capture(adapted, text, backend="full", top_k=5)
    attention, probs = peft_direct(lora, text)
    for layer in range(attention.shape[0]):
        np.testing.assert_allclose(trace.attention(layer), attention[layer], atol=1e-5)
    top = trace.top_predictions(-1, 5)
    assert [c.id for c in top] == list(np.argsort(-probs)[:5])
    np.testing.assert_allclose([c.prob for c in top], np.sort(probs)[::-1][:5], atol=1e-5)
    # the adapter changed the outputs, and the base model (shared, cached) was not touched
    plain = capture(base, text, backend="full")
    assert np.abs(plain.attention(0) - trace.attention(0)).max() > 1e-3
    assert all(torch.equal(before[name], value) for name, value in base.model.state_dict().items())


def test_adapter_provenance_and_fingerprint(lora):
    base = tiny("llama")
    adapted = with_adapter(base, lora)
    config, weights = (lora / "adapter_config.json").read_bytes(), (lora / "adapter_model.safetensors").read_bytes()
    expected = hashlib.sha256(config + weights).hexdigest()  # the config's bytes, then the weights'
    assert adapted.provenance["adapter_sha256"] == expected and base.provenance["adapter_sha256"] is None
    assert adapted.fingerprint != base.fingerprint and adapted.spec != base.spec
    assert adapted.info().fingerprint == adapted.fingerprint
    assert adapted.provenance["weight_files"][-1]["sha256"] == hashlib.sha256(weights).hexdigest()
    again = with_adapter(base, lora)
    assert again.fingerprint == adapted.fingerprint  # the same adapter over the same model: same identity


def with_alpha(lora: Path, folder: Path, alpha: int) -> Path:
    """A copy of ``lora`` with the same weights and another ``lora_alpha`` (scale α/r) in its config."""
    shutil.copytree(lora, folder)
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    (folder / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": alpha}), encoding="utf-8")
    return folder


def test_adapters_differing_only_in_their_config_differ_in_identity(lora, tmp_path):
    """Same weights, another lora_alpha: another merged model, so another fingerprint and adapter_sha256,
    and each answers its own numbers (against ``PeftModel`` run directly on each folder)."""
    other = with_alpha(lora, tmp_path / "alpha-64", 64)
    assert (other / "adapter_model.safetensors").read_bytes() == (lora / "adapter_model.safetensors").read_bytes()
    base = tiny("llama")
    first, second = with_adapter(base, lora), with_adapter(base, other)
    assert first.fingerprint != second.fingerprint
    assert first.provenance["adapter_sha256"] != second.provenance["adapter_sha256"]
    for model, folder in ((first, lora), (second, other)):
        trace = capture(model, ENGLISH, backend="full", top_k=5)
        attention, probs = peft_direct(folder, ENGLISH)
        np.testing.assert_allclose(trace.attention(0), attention[0], atol=1e-5)
        np.testing.assert_allclose([c.prob for c in trace.top_predictions(-1, 5)], np.sort(probs)[::-1][:5], atol=1e-5)
    assert np.abs(capture(first, ENGLISH, backend="full").attention(0) - peft_direct(other, ENGLISH)[0][0]).max() > 1e-3


def test_bad_adapter_folders(lora, tmp_path):
    base = tiny("llama")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        with_adapter(base, tmp_path / "missing")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(lora / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match=r"only a pickle adapter_model\.bin"):
        with_adapter(base, pickled)
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"adapter_config\.json"):
        with_adapter(base, no_config)
    wrong = build_lora(tmp_path / "gpt2-adapter", "gpt2", ("c_attn",))  # GPT-2 module names over a Llama
    with pytest.raises(ModelLoadError, match="does not apply"):
        with_adapter(base, wrong)
    broken = tmp_path / "broken"
    shutil.copytree(lora, broken)
    (broken / "adapter_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        with_adapter(base, broken)
    assert json.loads((lora / "adapter_config.json").read_text())["r"] == 4
