"""Attribution methods against independent computations written here with plain torch/transformers."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch

from attnscope.analysis.aggregate import aggregate_attention, resolve_layers, scale
from attnscope.analysis.faithfulness import rank_agreement
from attnscope.analysis.flow import attention_flow
from attnscope.attribution.scorers import CallableScorer
from attnscope.capture import capture
from attnscope.capture.tokens import tokenize
from attnscope.errors import InputError, OutOfRangeError, UnsupportedError
from attnscope.methods import catalogue
from attnscope.methods.agreement import compare_methods
from attnscope.methods.run import attribute
from attnscope.render.json import attribution_json
from tests.conftest import ENGLISH, packaged, tiny


def eager_attentions(model, text: str) -> list[np.ndarray]:
    """(heads, query, key) per layer from plain transformers with output_attentions=True."""
    hf = model.model
    ids = torch.tensor([[t.id for t in tokenize(model.tokenizer, text)]])
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = hf(input_ids=ids, output_attentions=True)
    finally:
        hf.set_attn_implementation(previous)
    return [a[0].double().numpy() for a in out.attentions]


def log_prob_after(model, ids: list[int], continuation: list[int]) -> float:
    """Sum of log p(continuation | ids) by a plain forward over the concatenation."""
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([ids + continuation])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[len(ids) - 1 + i, token] for i, token in enumerate(continuation)))


# --- aggregation --------------------------------------------------------------------------------
def test_layer_range_mean_and_special_exclusion_match_eager_maps():
    model = tiny("llama")
    text = "aggregate the layers"
    trace = capture(model, text, backend="qk")
    eager = eager_attentions(model, text)
    got = aggregate_attention(trace, layers=(0, 1), head="mean", rows=[-1])[0]
    expected = np.mean([eager[0].mean(axis=0)[-1], eager[1].mean(axis=0)[-1]], axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    chosen = aggregate_attention(trace, layers="1-2", head=[0, 2], rows=[-1])[0]
    np.testing.assert_allclose(
        chosen, np.mean([eager[layer][[0, 2], -1].mean(axis=0) for layer in (1, 2)], 0), atol=1e-5
    )
    clean = aggregate_attention(trace, layers=-1, head=1, rows=[-1], exclude_special=True)[0]
    raw = eager[-1][1, -1].copy()
    raw[0] = 0  # <bos> is special
    np.testing.assert_allclose(clean, raw / raw.sum(), atol=1e-5)
    assert resolve_layers(trace, "all") == [0, 1, 2] and resolve_layers(trace, "0:1") == [0, 1]
    with pytest.raises(OutOfRangeError):
        aggregate_attention(trace, layers=7)
    with pytest.raises(InputError):
        resolve_layers(trace, "middle")
    np.testing.assert_allclose(scale(np.array([2.0, 4.0, 3.0]), "minmax"), [0, 1, 0.5])
    np.testing.assert_allclose(scale(np.array([2.0, 4.0]), "raw"), [2, 4])


# --- attention flow --------------------------------------------------------------------------------
def test_flow_equals_networkx_max_flow_on_the_eager_layer_graph():
    model = tiny("gpt2")
    text = "flow test words"
    trace = capture(model, text, backend="qk")
    eager = eager_attentions(model, text)
    n = eager[0].shape[-1]
    graph = nx.DiGraph()
    for layer, maps in enumerate(eager):
        mixed = 0.5 * np.eye(n) + 0.5 * maps.mean(axis=0)
        mixed /= mixed.sum(axis=1, keepdims=True)
        for q, k in itertools.product(range(n), range(n)):
            if mixed[q, k] > 0:
                graph.add_edge((layer, k), (layer + 1, q), capacity=float(mixed[q, k]))
    query = n - 1
    expected = [nx.maximum_flow_value(graph, (0, j), (len(eager), query)) for j in range(n)]
    got = attention_flow(trace, query=-1)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert got.max() <= 1 + 1e-6  # the query's last-layer node takes in at most 1
    middle = attention_flow(trace, query=2)
    assert (middle[3:] == 0).all()  # causal: later tokens cannot reach position 2
    with pytest.raises(InputError, match="limited to 4 tokens"):
        attention_flow(trace, max_tokens=4)


# --- gradients --------------------------------------------------------------------------------------
def test_gradient_methods_match_a_hand_written_backward():
    model = tiny("qwen2")
    hf = model.model
    text = "gradient check"
    ids = [t.id for t in tokenize(model.tokenizer, text)]
    embeds = hf.get_input_embeddings()(torch.tensor([ids])).detach().clone().requires_grad_(True)
    logits = hf(inputs_embeds=embeds).logits[0, -1]
    best = int(logits.argmax())
    torch.log_softmax(logits.double(), dim=-1)[best].backward()
    gradient = embeds.grad[0].double()
    norm = attribute(model, text, "grad-norm")
    assert norm.target["ids"] == [best]
    np.testing.assert_allclose(norm.token_scores, gradient.norm(dim=-1).numpy(), rtol=1e-4, atol=1e-6)
    gxi = attribute(model, text, "grad-x-input")
    np.testing.assert_allclose(
        gxi.token_scores, (gradient * embeds[0].double()).sum(-1).detach().numpy(), rtol=1e-4, atol=1e-6
    )
    assert gxi.details["f"] == pytest.approx(float(torch.log_softmax(logits.detach().double(), -1)[best]), abs=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_integrated_gradients_completeness(family):
    model = tiny(family)
    text = "integrated gradients add up"
    coarse = attribute(model, text, "integrated-gradients", steps=8)
    fine = attribute(model, text, "integrated-gradients", steps=256)
    tokens = tokenize(model.tokenizer, text)
    ids = [t.id for t in tokens]
    f_input = log_prob_after(model, ids, fine.target["ids"])
    assert fine.details["f_input"] == pytest.approx(f_input, abs=1e-4)
    for result in (coarse, fine):
        gap = result.token_scores.sum() - (result.details["f_input"] - result.details["f_baseline"])
        assert gap == pytest.approx(result.details["delta"], abs=1e-6)  # the reported delta is the real gap
    assert abs(fine.details["delta"]) < 0.05 * abs(fine.details["f_input"] - fine.details["f_baseline"])
    assert abs(fine.details["delta"]) < abs(coarse.details["delta"])
    assert fine.token_scores[0] == 0  # special <bos> / first position is kept in the baseline


def test_continuation_and_loss_objectives():
    model = tiny("llama")
    text = "one two three"
    tokens = tokenize(model.tokenizer, text)
    ids = [t.id for t in tokens]
    result = attribute(model, text, "grad-x-input", target=" four")
    continuation = [t.id for t in tokenize(model.tokenizer, " four", add_special_tokens=False)]
    assert result.target["ids"] == continuation and result.target["objective"] == "continuation"
    assert result.details["f"] == pytest.approx(log_prob_after(model, ids, continuation), abs=1e-4)
    loss = attribute(model, text, "grad-norm", objective="loss")
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([ids])).logits[0].double()
    expected = torch.log_softmax(logits[:-1], -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean()
    assert loss.details["f"] == pytest.approx(float(expected), abs=1e-4)
    early = attribute(model, text, "grad-norm", query=3)
    assert (early.token_scores[4:] == 0).all() and early.token_scores[:4].sum() > 0
    with pytest.raises(UnsupportedError, match="causal"):
        attribute(tiny("bert"), "masked model", "grad-norm")
    with pytest.raises(InputError, match="loss"):
        attribute(model, text, "occlusion", objective="loss")


# --- occlusion -------------------------------------------------------------------------------------
def test_occlusion_equals_rerunning_the_model_by_hand():
    model = packaged("smollm2-135m")
    result = attribute(model, ENGLISH, "occlusion", granularity="word")
    assert result.target["text"] == " Paris"
    texts = [u.text for u in result.units]
    assert texts == ["The", "capital", "of", "France", "is"]
    paris = result.target["ids"]

    def by_hand(prompt: str) -> float:
        ids = [t.id for t in tokenize(model.tokenizer, prompt + " Paris")]
        return log_prob_after(model, ids[: len(ids) - len(paris)], paris)

    base = by_hand(ENGLISH)
    tokens = tokenize(model.tokenizer, ENGLISH)
    for unit, score in zip(result.units, result.scores, strict=True):
        # removing a unit removes the characters of its tokens (" capital" with its space)
        covering = [t for t in tokens if t.start is not None and t.start < unit.end and unit.start < t.end]
        occluded = ENGLISH[: covering[0].start] + ENGLISH[covering[-1].end :]
        assert score == pytest.approx(base - by_hand(occluded), abs=2e-3), unit.text
    per_token = attribute(model, ENGLISH, "occlusion", granularity="token")
    for unit, score in zip(result.units, result.scores, strict=True):  # one-token words: the same score
        if len(unit.tokens) == 1:
            assert per_token.scores[unit.tokens[0]] == pytest.approx(score, abs=1e-6), unit.text
    france = texts.index("France")
    # with each word removed with its token's space, "is" matters most (9.78), then "capital" and "France"
    assert result.scores[texts.index("is")] == max(result.scores)
    assert result.scores[france] > result.scores[texts.index("of")] and result.scores[france] > result.scores[0]
    kl = result.details["kl"]
    assert len(kl) == len(texts) and min(kl) >= -1e-6 and kl[france] > 0.5


def test_occlusion_mask_mode_and_callable_scorer_agree_with_the_model():
    model = tiny("llama")
    text = "mask each token"
    masked = attribute(model, text, "occlusion", mode="mask")
    tokens = tokenize(model.tokenizer, text)
    ids = [t.id for t in tokens]
    target = masked.target["ids"]
    mask_id = model.tokenizer.unk_token_id if model.tokenizer.mask_token_id is None else model.tokenizer.mask_token_id
    assert mask_id is not None
    base = log_prob_after(model, ids, target)
    for position in (1, 3):
        changed = list(ids)
        changed[position] = mask_id
        assert masked.scores[position] == pytest.approx(base - log_prob_after(model, changed, target), abs=1e-4)
    assert np.isnan(masked.scores[0])  # inserted <bos>: nothing to occlude

    def black_box(prompt: str, continuation: str) -> float:
        joined = tokenize(model.tokenizer, prompt + continuation)
        first = next(i for i, t in enumerate(joined) if t.end is not None and t.end > len(prompt))
        return log_prob_after(model, [t.id for t in joined[:first]], [t.id for t in joined[first:]])

    in_process = attribute(model, "one two three", "occlusion", granularity="word", target=" four")
    outside = attribute(
        model, "one two three", "occlusion", granularity="word", target=" four", scorer=CallableScorer(black_box)
    )
    np.testing.assert_allclose(in_process.scores, outside.scores, atol=1e-4)
    assert "kl" in in_process.details and "kl" not in outside.details


def test_long_occlusion_reuses_the_prefix_cache_with_the_same_numbers():
    from attnscope.attribution.scorers.model import SHARE_PREFIX_MIN_TOKENS, ModelScorer

    model = tiny("llama")
    text = "one two three four five six seven " * 5
    tokens = tokenize(model.tokenizer, text)
    assert len(tokens) >= SHARE_PREFIX_MIN_TOKENS
    prompts = [text, text[:10] + text[14:], text[:100] + text[108:], text[:-6]]
    scorer = ModelScorer(model)
    assert scorer._can_share_prefix()
    shared = scorer.score(prompts, " eight")  # long: the prefix-sharing path
    joined = [tokenize(model.tokenizer, p + " eight") for p in prompts]
    starts = [
        next(i for i, t in enumerate(j) if t.end is not None and t.end > len(p))
        for j, p in zip(joined, prompts, strict=True)
    ]
    plain = scorer.score_ids([[t.id for t in j] for j in joined], starts)  # batched full forwards
    for a, b in zip(shared, plain, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        np.testing.assert_allclose(a.next_logprobs, b.next_logprobs, atol=1e-4)
    assert not ModelScorer(tiny("mistral"))._can_share_prefix()  # sliding window: no shared cache


# --- agreement and the JSON contract ----------------------------------------------------------------
def test_rank_agreement_matches_hand_counted_ranks():
    a = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    b = np.array([1.0, 2.0, 5.0, 4.0, 3.0])
    ranks = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731  (no ties)
    rho = np.corrcoef(ranks(a), ranks(b))[0, 1]
    pairs = list(itertools.combinations(range(5), 2))
    concordant = sum(np.sign(a[i] - a[j]) == np.sign(b[i] - b[j]) for i, j in pairs)
    tau = (2 * concordant - len(pairs)) / len(pairs)
    agreement = rank_agreement({"a": a, "b": b, "c": np.array([1.0, np.nan, 1.0, 1.0, 1.0])})
    assert agreement.spearman[0, 1] == pytest.approx(rho) and agreement.kendall[0, 1] == pytest.approx(tau)
    assert agreement.spearman[0, 0] == pytest.approx(1.0)
    assert np.isnan(agreement.spearman[0, 2]) and agreement.n_units[0, 2] == 4  # constant: undefined
    assert agreement.to_json()["spearman"][0][2] is None


def test_every_method_keeps_the_json_contract():
    model = tiny("llama")
    for method in catalogue.attribution_names():
        body = attribution_json(attribute(model, "我爱中国，他的首都在于", method, granularity="word"))
        assert set(body) >= {"method", "target", "granularity", "units", "scores"}
        assert body["method"] == method and body["granularity"] == "word"
        assert len(body["units"]) == len(body["scores"])
        assert [u["text"] for u in body["units"] if u["start"] is not None] == [
            "我",
            "爱",
            "中国",
            "，",
            "他",
            "的",
            "首都",
            "在于",
        ]
        assert set(body["target"]) == {"text", "ids"}
    with pytest.raises(InputError, match="unknown method"):
        attribute(model, "x", "saliency")
    with pytest.raises(InputError, match="out of range"):
        attribute(model, "x y", "grad-norm", query=50)


# --- integrated gradients choose their steps ------------------------------------------------------
TWENTY_TOKENS = "The old lighthouse keeper climbed the stairs every night to light the lamp for the ships at"


@pytest.mark.slow
def test_integrated_gradients_add_steps_until_complete():
    model = packaged("smollm2-135m")
    fixed = attribute(model, TWENTY_TOKENS, "integrated-gradients", steps=32)
    span = abs(fixed.details["f_input"] - fixed.details["f_baseline"])
    # the fault: 32 steps leave a gap over 5 % of |f(x) - f(b)| (measured: 0.70 of 12.1) — now said, not hidden
    assert abs(fixed.details["delta"]) > 0.05 * span
    assert fixed.details["converged"] is False and "have not converged" in fixed.details["warning"]
    auto = attribute(model, TWENTY_TOKENS, "integrated-gradients")
    assert auto.details["steps_tried"] == [32, 96] and auto.details["steps"] == 96
    assert auto.details["converged"] is True and "warning" not in auto.details
    assert abs(auto.details["delta"]) <= 0.05 * span
    # independent check of completeness: f(x) - f(b) from plain forwards of the model
    ids = [t.id for t in tokenize(model.tokenizer, TWENTY_TOKENS)]
    assert auto.details["f_input"] == pytest.approx(log_prob_after(model, ids, auto.target["ids"]), abs=1e-3)
    # 96 steps reached by tripling 32 (reusing them) equal 96 steps computed directly
    direct = attribute(model, TWENTY_TOKENS, "integrated-gradients", steps=96)
    np.testing.assert_allclose(auto.token_scores, direct.token_scores, atol=1e-4)


def test_attribute_reuses_the_trace_for_any_query(monkeypatch):
    from attnscope.capture import engine

    model = tiny("llama")
    text = "reuse one capture for every query"
    trace = capture(model, text, predict="last")
    calls = []
    real = engine.capture
    monkeypatch.setattr(engine, "capture", lambda *a, **k: calls.append(1) or real(*a, **k))
    for query in (2, 5, -1):
        result = attribute(model, text, "attention", trace=trace, query=query)
        position = query % len(trace.tokens)
        expected = eager_attentions(model, text)  # independent: plain transformers, every layer averaged
        np.testing.assert_allclose(
            result.token_scores, np.mean([layer.mean(axis=0)[position] for layer in expected], axis=0), atol=1e-5
        )
        ids = [t.id for t in trace.tokens[: position + 1]]
        with torch.no_grad():
            best = int(model.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        assert result.target["ids"] == [best]
    assert calls == []  # no capture beyond the one given


def test_occluding_the_whole_prompt_scores_after_the_document_start():
    model = tiny("gpt2")  # no BOS: removing the only word leaves no prompt at all
    assert model.tokenizer("x")["input_ids"][0] != model.tokenizer.bos_token_id  # the tokenizer adds no BOS
    for text, granularity in (("Hello", "word"), ("The cat sat.", "sentence")):
        result = attribute(model, text, "occlusion", granularity=granularity)
        target = result.target["ids"]
        ids = [t.id for t in tokenize(model.tokenizer, text)]
        bos, eos = model.tokenizer.bos_token_id, model.tokenizer.eos_token_id
        start = bos if bos is not None else eos  # the document start (real GPT-2: <|endoftext|>, both)
        expected = log_prob_after(model, ids, target) - log_prob_after(model, [start], target)
        assert result.scores == pytest.approx([expected], abs=1e-4)
    comparison = compare_methods(model, "The cat sat.", granularity="sentence", methods=["attention", "occlusion"])
    assert set(comparison.results) == {"attention", "occlusion"}


def test_attention_methods_explain_any_query_of_a_masked_model():
    model = tiny("bert")
    text = "the cat sat on the mat"
    result = attribute(model, text, "attention", query=2)
    expected = eager_attentions(model, text)
    np.testing.assert_allclose(
        result.token_scores, np.mean([layer.mean(axis=0)[2] for layer in expected], axis=0), atol=1e-5
    )
    assert result.target["objective"] in ("attention", "masked-token")
