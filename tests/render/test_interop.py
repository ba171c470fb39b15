"""bertviz and CircuitsVis on attnscope's exports: the real libraries render them, and the values they
embed equal an eager ``transformers`` forward (``output_attentions=True``) of the same tiny model
(built independently from its config and seed) within 1e-5."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from attnscope.capture import capture
from attnscope.errors import InputError, TooLongError
from attnscope.models.tiny import build_tiny
from attnscope.render import interop
from tests.conftest import CHINESE, ENGLISH, tiny

bertviz = pytest.importorskip("bertviz")
circuitsvis = pytest.importorskip("circuitsvis")


def eager(family: str, ids: list[int], decoder_ids: list[int] | None = None):
    """The model's attentions from transformers' eager attention: the independent reference."""
    model, _, _ = build_tiny(family, attn_implementation="eager")
    with torch.no_grad():
        if decoder_ids is None:
            return model(torch.tensor([ids]), output_attentions=True)
        return model(
            input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([decoder_ids]), output_attentions=True
        )


def stacked(attentions, layers=None, heads=None) -> np.ndarray:  # (layers, heads, query, key)
    maps = torch.stack([a[0] for a in attentions]).numpy()
    maps = maps if layers is None else maps[layers]
    return maps if heads is None else maps[:, heads]


def bertviz_params(html: str) -> dict:
    """The parameters bertviz wrote into its script (``const params = {...};``)."""
    start = html.index("const params = ") + len("const params = ")
    return json.JSONDecoder().raw_decode(html, start)[0]


def circuitsvis_props(html: str, element: str) -> dict:
    """The props CircuitsVis renders ``element`` with (the JSON after its name in the inline script)."""
    at = re.search(rf"CircuitsVis\.{element},\s*", html)
    assert at is not None, f"no {element} in the HTML"
    return json.JSONDecoder().raw_decode(html, at.end())[0]


@pytest.mark.parametrize(("family", "text"), [("gpt2", ENGLISH), ("llama", CHINESE)])
def test_bertviz_head_view_embeds_the_eager_attention(family, text):
    trace = capture(tiny(family), text)
    attention, tokens = interop.to_bertviz(trace)
    assert len(attention) == trace.num_layers() and attention[0].dtype == torch.float32
    assert tokens == interop.token_labels(trace.tokens) and len(tokens) == len(trace.tokens)
    html = bertviz.head_view(attention, tokens, html_action="return").data
    params = bertviz_params(html)
    shown = np.array(params["attention"][0]["attn"])
    reference = stacked(eager(family, trace.token_ids).attentions)
    assert shown.shape == reference.shape
    np.testing.assert_allclose(shown, reference, atol=1e-5, rtol=0)
    assert params["attention"][0]["left_text"] == [t.replace("Ġ", " ") for t in tokens]


def test_bertviz_model_view_of_chosen_layers_and_heads():
    trace = capture(tiny("gpt2"), ENGLISH)
    kwargs = interop.bertviz_kwargs(trace, layers=[0, 2], heads=[1, 3])
    assert kwargs["include_layers"] == [0, 2]
    html = bertviz.model_view(**kwargs, html_action="return").data
    shown = np.array(bertviz_params(html)["attention"][0]["attn"])
    reference = stacked(eager("gpt2", trace.token_ids).attentions, layers=[0, 2], heads=[1, 3])
    np.testing.assert_allclose(shown, reference, atol=1e-5, rtol=0)


def test_bertviz_of_an_encoder_and_a_qk_trace():
    bert = capture(tiny("bert"), ENGLISH)
    attention, tokens = interop.to_bertviz(bert)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    shown = np.array(
        bertviz_params(bertviz.head_view(attention, tokens, html_action="return").data)["attention"][0]["attn"]
    )
    np.testing.assert_allclose(shown, stacked(eager("bert", bert.token_ids).attentions), atol=1e-5, rtol=0)
    qk = capture(tiny("llama"), ENGLISH, backend="qk")  # rows recomputed from the stash, layer by layer
    attention, _ = interop.to_bertviz(qk, heads="0,2")
    got = torch.cat([attention[layer] for layer in range(len(attention))]).numpy()
    np.testing.assert_allclose(got, stacked(eager("llama", qk.token_ids).attentions, heads=[0, 2]), atol=1e-5, rtol=0)


def test_bertviz_of_an_encoder_decoder_has_its_three_stacks():
    model = tiny("t5")
    trace = capture(model, ENGLISH, target="Paris")
    kwargs = interop.bertviz_kwargs(trace)
    html = bertviz.head_view(**kwargs, html_action="return").data
    shown = {d["name"]: np.array(d["attn"]) for d in bertviz_params(html)["attention"]}
    reference = eager("t5", trace.token_ids, [t.id for t in trace.target_tokens])
    for name, maps in (("Encoder", reference.encoder_attentions), ("Decoder", reference.decoder_attentions),
                       ("Cross", reference.cross_attentions)):  # fmt: skip
        np.testing.assert_allclose(shown[name], stacked(maps), atol=1e-5, rtol=0)
    assert kwargs["decoder_tokens"] == interop.token_labels(trace.target_tokens)


def test_circuitsvis_renders_our_values():
    trace = capture(tiny("gpt2"), CHINESE)
    tokens, weights = interop.to_circuitsvis(trace, -1)
    reference = stacked(eager("gpt2", trace.token_ids).attentions)[-1]
    np.testing.assert_allclose(weights, reference, atol=1e-5, rtol=0)
    # split characters: the first byte piece carries the character, the others are labelled "…"
    assert tokens[:3] == ["我", interop.CONTINUATION, interop.CONTINUATION]
    patterns = circuitsvis.attention.attention_patterns(tokens, weights)
    props = circuitsvis_props(patterns.local_src, "AttentionPatterns")
    np.testing.assert_allclose(np.array(props["attention"]), reference, atol=1e-5, rtol=0)
    assert props["tokens"] == tokens
    page = interop.circuitsvis_html(trace, 1, heads=[0, 3])
    props = circuitsvis_props(page, "AttentionHeads")
    reference = stacked(eager("gpt2", trace.token_ids).attentions)[1, [0, 3]]
    np.testing.assert_allclose(np.array(props["attention"]), reference, atol=1e-5, rtol=0)
    assert props["attentionHeadNames"] == ["L1H0", "L1H3"] and props["maskUpperTri"] is True
    assert "unpkg.com" not in page and "<script src=" not in page  # offline: the bundle is inline
    assert '"model_spec": "tiny:gpt2"' in page.split("-->")[0]  # the provenance comment


def test_written_files_mask_personal_data_and_keep_provenance(tmp_path):
    text = "Call me at 415-555-0132 tomorrow"
    trace = capture(tiny("gpt2"), text)
    html = interop.bertviz_html(trace)
    params = bertviz_params(html)
    labels = params["attention"][0]["left_text"]
    assert "415" not in "".join(labels) and any("PHONE" in label for label in labels)
    assert "cdnjs.cloudflare.com" in html  # bertviz loads its scripts from a CDN (the README says so)
    out = interop.save_tensors(trace, tmp_path / "bv.safetensors", layers=[1])
    loaded = interop.load_tensors(out)
    assert "415" not in "".join(loaded["tokens"]) and loaded["include_layers"] == [1]
    reference = stacked(eager("gpt2", trace.token_ids).attentions)
    np.testing.assert_allclose(loaded["attention"][1][0].numpy(), reference[1], atol=1e-5, rtol=0)
    unmasked = bertviz_params(interop.bertviz_html(trace, pii_policy="off"))["attention"][0]["left_text"]
    assert "415" in "".join(unmasked)


def test_sizes_and_selections_that_cannot_work_are_refused():
    trace = capture(tiny("gpt2"), ENGLISH)  # 3 layers × 4 heads × 23² = 6,348 values
    with pytest.raises(TooLongError, match=r"6,348 attention values .* choose fewer layers or heads"):
        interop.bertviz_html(trace, max_values=5000)
    assert "const params" in interop.bertviz_html(trace, layers=[0, 1], max_values=5000)  # 4,232 values fit
    small = trace
    with pytest.raises(InputError, match="out of range"):
        interop.to_bertviz(small, layers=[7])
    with pytest.raises(InputError, match="head"):
        interop.to_circuitsvis(small, 0, heads=[9])
    with pytest.raises(InputError, match="bertviz view must be head or model"):
        interop.bertviz_html(small, view="neuron")
    seq2seq = capture(tiny("t5"), ENGLISH, target="Paris")
    with pytest.raises(InputError, match="bertviz_kwargs"):
        interop.to_bertviz(seq2seq, stack="cross")
