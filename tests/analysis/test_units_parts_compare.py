"""Units above tokens (words, sentences, paragraphs), prompt parts and trace comparisons."""

from __future__ import annotations

import jieba
import numpy as np
import pytest

from attnscope.analysis.compare import prompt_summary, trace_difference
from attnscope.analysis.parts import OTHER, part_attention
from attnscope.analysis.units import aggregate_map, aggregate_scores, make_units, text_spans
from attnscope.capture import capture
from attnscope.capture.tokens import Part
from attnscope.errors import InputError
from tests.conftest import MIXED_TEXTS, packaged, tiny

DOCUMENT = "First sentence here. Second one?\nThird line!\n\nNew paragraph 中文句子。还有一句！"


def test_sentences_and_paragraphs():
    sentences = [DOCUMENT[s:e] for s, e in text_spans(DOCUMENT, "sentence")]
    assert sentences == ["First sentence here.", "Second one?", "Third line!", "New paragraph 中文句子。", "还有一句！"]
    paragraphs = [DOCUMENT[s:e] for s, e in text_spans(DOCUMENT, "paragraph")]
    assert paragraphs == ["First sentence here. Second one?\nThird line!", "New paragraph 中文句子。还有一句！"]


def test_chinese_words_come_from_jieba():
    text = "我爱中国，他的首都在于北京。Hello, world"
    words = [text[s:e] for s, e in text_spans(text, "word")]
    expected = [w for w in jieba.lcut("我爱中国，他的首都在于北京。") if w.strip()] + ["Hello", ",", "world"]
    assert words == expected


@pytest.mark.parametrize("granularity", ["token", "word", "sentence", "paragraph"])
@pytest.mark.parametrize("text", [*MIXED_TEXTS, DOCUMENT])
def test_every_token_lands_in_exactly_one_unit(granularity, text):
    model = tiny("llama")
    trace = capture(model, text, backend="qk", predict="none")
    units = make_units(text, trace.tokens, granularity)
    assigned = sorted(i for unit in units for i in unit.tokens)
    assert assigned == list(range(len(trace.tokens)))
    for unit in units:
        if unit.start is not None:
            assert text[unit.start : unit.end] == unit.text
            assert granularity == "token" or unit.text.strip()
            visible = [trace.tokens[i] for i in unit.tokens if trace.tokens[i].start is not None]
            visible = [t for t in visible if text[t.start : t.end].strip()]  # whitespace joins the unit before
            assert all(t.start < unit.end and t.end > unit.start for t in visible)  # visible tokens overlap their unit
    scores = np.random.default_rng(0).random(len(trace.tokens))
    assert aggregate_scores(scores, units).sum() == pytest.approx(scores.sum())
    attention = trace.attention(-1, "mean")
    folded = aggregate_map(attention, units, units)
    np.testing.assert_allclose(folded.sum(axis=1), 1, atol=1e-5)  # rows: mean over queries keeps the sum


def test_aggregate_map_sums_keys_and_averages_queries():
    model = tiny("gpt2")
    text = "ab cd"
    trace = capture(model, text, predict="none")
    units = make_units(text, trace.tokens, "word")
    assert [u.text for u in units] == ["ab", "cd"]
    matrix = trace.attention(0, 0).astype(np.float64)
    first, second = list(units[0].tokens), list(units[1].tokens)
    expected = [[matrix[np.ix_(q, k)].sum(axis=1).mean() for k in (first, second)] for q in (first, second)]
    np.testing.assert_allclose(aggregate_map(matrix, units, units), expected)


def test_part_attention_sums_attention_over_each_turn():
    model = tiny("qwen2")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    trace = capture(model, messages=messages, backend="qk")
    names, mass = part_attention(trace)
    assert names == ["system", "user", OTHER]
    assert mass.shape == (trace.num_layers(), trace.num_heads(), 3)
    np.testing.assert_allclose(mass.sum(axis=-1), 1, atol=1e-5)
    user = trace.parts[1]
    keys = [
        i
        for i, t in enumerate(trace.tokens)
        if t.start is not None and t.start < user.end and user.start < max(t.end, t.start + 1)
    ]
    weights = trace.attention(1, 2, rows=[-1])[0]
    assert mass[1, 2, 1] == pytest.approx(weights[keys].sum(), abs=1e-6)
    names, region = part_attention(trace, query="user")
    rows = [i for i in keys if i < len(trace.tokens)]
    assert region[0, 0, 1] == pytest.approx(trace.attention(0, 0, rows=rows)[:, keys].sum(axis=1).mean(), abs=1e-6)
    with pytest.raises(InputError, match="no part named"):
        part_attention(trace, query="assistant")
    with pytest.raises(InputError, match="outside the text"):
        part_attention(trace, [Part("x", 5, 10_000)])


def test_trace_difference_aligns_shared_tokens():
    model = tiny("llama")
    a = capture(model, "the cat sat", backend="full")
    b = capture(model, "the dog sat", backend="full")
    same = trace_difference(a, a)
    assert np.abs(same.difference).max() == 0 and not same.only_a
    diff = trace_difference(a, b, layer=1, head=0)
    shared = [(i, j) for i, j in diff.pairs]
    assert all(a.tokens[i].text == b.tokens[j].text for i, j in shared)
    assert diff.only_a and diff.only_b  # "cat" vs "dog" pieces
    rows_a, rows_b = [i for i, _ in shared], [j for _, j in shared]
    expected = a.attention(1, 0)[np.ix_(rows_a, rows_a)] - b.attention(1, 0)[np.ix_(rows_b, rows_b)]
    np.testing.assert_allclose(diff.difference, expected, atol=1e-7)


def test_prompt_summary_on_a_real_model():
    trace = capture(packaged("smollm2-135m"), "The capital of France is", predict="last")
    summary = prompt_summary(trace, top=3)
    assert summary["prediction"]["token"] == " Paris"
    assert (
        len(summary["top_units"]) == 3 and summary["top_units"][0]["attention"] >= summary["top_units"][1]["attention"]
    )
    assert 0 < summary["head_means"]["sink"] <= 1


def test_a_token_spanning_two_words_merges_them_into_one_unit():
    from attnscope.capture.tokens import Token

    text = "我爱中国，他的首都在于"
    assert [text[s:e] for s, e in text_spans(text, "word")][4:6] == ["他", "的"]  # jieba's words
    pieces = ["我", "爱", "中国", "，", "他的", "首都", "在于"]  # the Qwen tokenizer's pieces
    tokens, cursor = [], 0
    for index, piece in enumerate(pieces):
        tokens.append(Token(index, index, piece, cursor, cursor + len(piece), False))
        cursor += len(piece)
    units = make_units(text, tokens, "word")
    assert [u.text for u in units] == pieces
    covered = "".join(u.text for u in units)
    assert covered == text  # every word's characters belong to exactly one unit


@pytest.mark.slow
def test_qwen_words_keep_every_chinese_word():
    model = packaged("qwen2.5-coder-0.5b")
    text = "我爱中国，他的首都在于"
    trace = capture(model, text, predict="none")
    units = make_units(text, trace.tokens, "word")
    assert "他的" in [u.text for u in units]
    spans = [(u.start, u.end) for u in units if u.start is not None]
    for begin, end in text_spans(text, "word"):
        assert sum(1 for s, e in spans if s <= begin and end <= e) == 1, text[begin:end]


def test_prompts_of_an_encoder_decoder_are_compared_on_the_encoder():
    import torch

    from attnscope.analysis.compare import compare_prompts
    from attnscope.capture.tokens import tokenize

    model = tiny("t5")
    texts = ("the cat sat", "the dog sat")
    traces = [capture(model, text) for text in texts]
    summaries, difference, view = compare_prompts(traces, layer=1, head=0)
    assert view.stack == "encoder" and view.label.startswith("layer 1, head 0")

    def encoder_maps(text: str) -> list[np.ndarray]:  # independent: plain transformers, eager attention
        ids = torch.tensor([[t.id for t in tokenize(model.tokenizer, text)]])
        start = torch.tensor([[model.model.config.decoder_start_token_id]])
        hf = model.model
        previous = hf.config._attn_implementation
        hf.set_attn_implementation("eager")
        try:
            with torch.no_grad():
                out = hf(input_ids=ids, decoder_input_ids=start, output_attentions=True)
        finally:
            hf.set_attn_implementation(previous)
        return [a[0].double().numpy() for a in out.encoder_attentions]

    maps = [encoder_maps(text) for text in texts]
    rows_a = [i for i, _ in difference.pairs]
    rows_b = [j for _, j in difference.pairs]
    expected = maps[0][1][0][np.ix_(rows_a, rows_a)] - maps[1][1][0][np.ix_(rows_b, rows_b)]
    np.testing.assert_allclose(difference.difference, expected, atol=1e-5)
    last = np.mean([m.mean(axis=0)[-1] for m in maps[0]], axis=0)  # every layer, mean of heads, last token
    units = make_units(texts[0], traces[0].tokens, "word")
    top = summaries[0]["top_units"][0]
    assert top["attention"] == pytest.approx(max(aggregate_scores(last, units)), abs=1e-5)
