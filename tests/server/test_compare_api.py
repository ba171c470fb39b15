"""``POST /api/compare/models``: the CLI's ``--json`` answer, the second-model slot, refusals."""

from __future__ import annotations

import gc
import json
import shutil
import weakref

import numpy as np
import pytest

import attnscope
from attnscope.errors import ModelNotFoundError
from attnscope.methods.compare_models import compare_two_models
from attnscope.models.adapters import with_adapter
from attnscope.render.json import model_comparison_json
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.models.test_adapters import build_lora, with_alpha
from tests.server.conftest import assert_same
from tests.test_cli import run


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    return build_lora(tmp_path_factory.mktemp("api-lora") / "adapter")


def test_two_families_answer_equals_the_cli(client):
    response = client.post("/api/compare/models", json={"text": CHINESE, "model": "tiny:gpt2"})
    assert response.status_code == 200, response.text
    completed = run("compare", CHINESE, "-m", "tiny:qwen2", "-m", "tiny:gpt2", "--json", "-q")
    assert completed.returncode == 0, completed.stderr.decode()
    assert_same(response.json(), json.loads(completed.stdout))
    body = response.json()
    assert body["model"]["spec"] == "tiny:qwen2" and body["model_b"]["spec"] == "tiny:gpt2"


def test_adapter_over_the_loaded_model_equals_the_library(client, host, lora):
    response = client.post(
        "/api/compare/models", json={"text": ENGLISH, "adapter": str(lora), "layers": [0, -1], "method": "grad-norm"}
    )
    assert response.status_code == 200, response.text
    adapted = with_adapter(tiny("qwen2"), lora)
    expected = model_comparison_json(
        compare_two_models(tiny("qwen2"), adapted, ENGLISH, layers=[0, -1], method="grad-norm")
    )
    body = response.json()
    assert_same(body, expected)
    assert body["layer_match"]["pairs"] == [[0, 0], [2, 2]] and body["attribution"]["method"] == "grad-norm"
    assert body["model_b"]["spec"].startswith("tiny:qwen2+adapter:") and not body["same_model"]


def test_the_slot_keeps_one_second_model(client):
    from attnscope.server.routes import compare_models

    before = client.post("/api/compare/models", json={"text": ENGLISH, "model": "tiny:llama", "method": "none"})
    assert before.status_code == 200
    again = client.post("/api/compare/models", json={"text": ENGLISH, "model": "tiny:llama", "method": "none"})
    assert_same(again.json(), before.json())
    other = client.post("/api/compare/models", json={"text": ENGLISH, "model": "tiny:gpt2", "method": "none"})
    assert other.json()["model_b"]["spec"] == "tiny:gpt2"

    loads: list[str] = []

    def counting(spec: str):
        loads.append(spec)
        return attnscope.load_model(spec)

    slot = compare_models.SecondModel(counting)
    first = tiny("qwen2")
    b = slot.get(first, "tiny:llama", None)
    assert slot.get(first, "tiny:llama", None) is b and loads == ["tiny:llama"]  # kept, not loaded again
    released = weakref.ref(b)
    del b
    assert slot.get(first, "tiny:gpt2", None).spec == "tiny:gpt2" and loads == ["tiny:llama", "tiny:gpt2"]
    gc.collect()
    assert released() is None  # the previous B is gone once another is asked for
    with pytest.raises(ModelNotFoundError):
        slot.get(first, "tiny:nope", None)
    assert slot.model is None and slot.get(first, None, None) is first  # a failed load leaves the slot empty
    itself = client.post("/api/compare/models", json={"text": ENGLISH, "model": "tiny:qwen2", "method": "none"})
    assert itself.json()["same_model"] is True and itself.json()["difference"]["max_abs"] == 0.0


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        ({}, 422, "name model B"),
        ({"model": "tiny:nope"}, 404, "unknown tiny family"),
        ({"model": "no-such-model"}, 404, "unknown model"),
        ({"adapter": "/no/such/adapter"}, 404, "does not exist"),
        ({"model": "tiny:gpt2", "method": "parts"}, 422, "cannot score tokens"),
        ({"model": "tiny:gpt2", "method": "nope"}, 422, "nope"),
        ({"model": "tiny:gpt2", "granularity": "token"}, 422, "granularity"),
        ({"model": "tiny:gpt2", "layers": [7]}, 400, "out of range"),
        ({"model": "tiny:gpt2", "top_k": 0}, 422, "top_k"),
        ({"model": "tiny:t5"}, 400, "only causal and masked"),
        ({"model": "tiny:gpt2", "texts": ["a", "b"]}, 422, "texts"),
        ({"model": "tiny:gpt2", "layers": [0, 0]}, 422, "layer twice"),
        ({"model": "tiny:gpt2", "layers": [0, -3], "method": "none"}, 400, "names a layer of A twice"),
        ({"model": "tiny:gpt2", "layers": []}, 422, "at least 1"),
        ({"model": "tiny:bert"}, 400, "model B (tiny:bert) is a masked model"),
    ],
)
def test_bad_requests_are_refused_in_one_line(client, extra, status, words):
    response = client.post("/api/compare/models", json={"text": ENGLISH, **extra})
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["detail"] and "\n" not in body["detail"] and body["code"]


def test_a_pickle_only_adapter_is_refused(client, lora, tmp_path):
    shutil.copy(lora / "adapter_config.json", tmp_path)
    (tmp_path / "adapter_model.bin").write_bytes(b"never unpickled")
    response = client.post("/api/compare/models", json={"text": ENGLISH, "adapter": str(tmp_path)})
    assert response.status_code == 400 and "only a pickle adapter_model.bin" in response.json()["detail"]


def test_two_texts_answer_the_whole_word_maps(client):
    """``POST /api/compare`` with two texts: ``difference.units``, the library's numbers."""
    from attnscope.analysis.compare import unit_difference
    from attnscope.capture import capture

    texts = ["the cat sat", "the dog sat"]
    response = client.post("/api/compare", json={"texts": texts, "layer": 1})
    assert response.status_code == 200, response.text
    units = response.json()["difference"]["units"]
    model = tiny("qwen2")
    expected = unit_difference(capture(model, texts[0]), capture(model, texts[1]), layer=1)
    assert [u["text"] for u in units["units"]] == [u.text for u in expected.units_a] == ["the", "sat"]
    assert units["only_a"] == ["cat"] and units["only_b"] == ["dog"]
    np.testing.assert_allclose(units["difference"], expected.difference, atol=1e-6)


def peft_top(folder, text: str, k: int = 5) -> tuple[list[int], np.ndarray]:
    """Top-k next-token ids and probabilities of ``PeftModel`` (un-merged) over ``tiny:qwen2``, run directly."""
    import torch
    from peft import PeftModel

    from attnscope.models.tiny import build_tiny

    base, tokenizer, _ = build_tiny("qwen2", attn_implementation="eager")
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    with torch.no_grad():
        logits = model(input_ids=tokenizer(text, return_tensors="pt")["input_ids"]).logits[0, -1]
    probs = torch.softmax(logits.double(), -1).numpy()
    order = np.argsort(-probs)[:k]
    return [int(i) for i in order], probs[order]


def test_each_adapter_answers_its_own_numbers(client, lora, tmp_path):
    """Two adapters with the same weights and another lora_alpha, then one re-saved at the same path:
    every answer is its own adapter's (against peft run directly), never the slot's or cache's previous B."""
    other = with_alpha(lora, tmp_path / "alpha-64", 64)

    def check(folder):
        response = client.post("/api/compare/models", json={"text": ENGLISH, "adapter": str(folder), "method": "none"})
        assert response.status_code == 200, response.text
        body = response.json()
        ids, probs = peft_top(folder, ENGLISH)
        shown = body["models"][1]["predictions"]
        assert [p["id"] for p in shown] == ids
        np.testing.assert_allclose([p["prob"] for p in shown], probs, atol=1e-5)
        assert body["model_b"]["name"].endswith(f"adapter {folder.name}")
        return body

    first, second = check(lora), check(other)
    assert first["model_b"]["fingerprint"] != second["model_b"]["fingerprint"]
    config = json.loads((other / "adapter_config.json").read_text(encoding="utf-8"))
    (other / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 2}), encoding="utf-8")
    resaved = check(other)  # the same path, another adapter: loaded afresh
    assert resaved["model_b"]["fingerprint"] not in (first["model_b"]["fingerprint"], second["model_b"]["fingerprint"])


def test_a_method_model_b_cannot_run_is_refused_before_any_capture(client, host):
    response = client.post("/api/compare/models", json={"text": CHINESE, "model": "tiny:bert"})
    assert response.status_code == 400 and "use method attention, rollout, flow or none" in response.json()["detail"]
    assert not host._keys  # neither model captured the text
    ok = client.post("/api/compare/models", json={"text": CHINESE, "model": "tiny:bert", "method": "attention"})
    assert ok.status_code == 200, ok.text


def test_maps_beyond_the_cell_limit_are_refused(client, monkeypatch):
    """The limit is 4,000,000 cells, out of reach of the tiny models' 256 positions: lowered here to
    exercise the refusal (the limit's arithmetic itself: tests/analysis/test_model_compare.py)."""
    from attnscope.analysis import model_compare

    monkeypatch.setattr(model_compare, "MAX_MAP_CELLS", 100)
    fits = client.post("/api/compare/models", json={"text": ENGLISH, "model": "tiny:gpt2", "method": "none"})
    assert fits.status_code == 200, fits.text  # 5 common words: 3 layers × 25 cells
    twice = {"text": ENGLISH + " " + ENGLISH, "model": "tiny:gpt2", "method": "none"}  # 10 words: 100 a layer
    response = client.post("/api/compare/models", json=twice)
    detail = response.json()["detail"]
    assert response.status_code == 400 and "\n" not in detail, detail
    assert "3 layers of 10 × 10 units are 300 map cells (at most 100); choose at most 1 layer with layers" in detail
    one = client.post("/api/compare/models", json={**twice, "layers": [-1]})
    assert one.status_code == 200 and len(one.json()["units"]) == 10, one.text
