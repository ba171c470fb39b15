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
from tests.models.test_adapters import build_lora
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
