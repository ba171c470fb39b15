"""generate(): the model's own generation, recorded step by step, checked against plain transformers.

References are computed here, independently: ``model.generate`` for the tokens, an eager forward
(``output_attentions=True``) over prompt + generated prefix for every step's attention row, and a
float64 softmax of a plain forward's logits for the probabilities.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import pytest
import torch

import attnscope
from attnscope.capture import GenerationTrace, Trace
from attnscope.capture.generation import generate
from attnscope.errors import InputError, UnsupportedError
from attnscope.render.json import generation_json
from attnscope.render.text import generation_text, quoted
from tests.conftest import CAUSAL_FAMILIES, ENGLISH, tiny

ATTENTION_TOLERANCE = 1e-4  # fp32: recorded rows vs eager attention
PROB_TOLERANCE = 1e-5  # fp32 probabilities vs a float64 softmax of the plain forward's logits


@contextlib.contextmanager
def eager(hf):
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        hf.set_attn_implementation(previous)


def plain_generate(model, trace: GenerationTrace, **kwargs) -> list[int]:
    prompt = torch.tensor([[t.id for t in trace.prompt_tokens]], device=model.device)
    with torch.no_grad():
        out = model.model.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)
    return out[0, prompt.shape[1] :].tolist()


def eager_forward(model, ids: list[int]):
    with torch.no_grad(), eager(model.model):
        return model.model(torch.tensor([ids], device=model.device), output_attentions=True)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_greedy_tokens_rows_and_probabilities_match_plain_transformers(family, device):
    model = tiny(family, device=device)
    trace = generate(model, ENGLISH, max_new_tokens=10)
    assert isinstance(trace, GenerationTrace) and isinstance(trace, Trace)
    new_ids = [s.token_id for s in trace.steps]
    assert new_ids == plain_generate(model, trace, max_new_tokens=10, do_sample=False)
    assert [t.id for t in trace.tokens] == [t.id for t in trace.prompt_tokens] + new_ids
    ids = [t.id for t in trace.tokens]
    total = 0.0
    for step in trace.steps:
        p = step.position
        out = eager_forward(model, ids[:p])  # prompt + generated prefix: the model saw exactly these
        for layer, eager_map in enumerate(out.attentions):
            expected = eager_map[0, :, p - 1].double().cpu().numpy()  # (heads, p)
            got = trace.attention(layer, None, rows=[p - 1])[:, 0, :p]
            np.testing.assert_allclose(got, expected, atol=ATTENTION_TOLERANCE, rtol=0)
            assert np.abs(trace.attention(layer, None, rows=[p - 1])[:, 0, p:]).max(initial=0) == 0  # causal
        logprobs = torch.log_softmax(out.logits[0, -1].double(), dim=-1)
        assert step.prob == pytest.approx(math.exp(float(logprobs[step.token_id])), abs=PROB_TOLERANCE)
        total += float(logprobs[step.token_id])
        assert step.logprob_cum == pytest.approx(total, abs=1e-4)
        top = torch.topk(logprobs, 5)
        candidates = trace.step_candidates(step.step, 5)
        assert [c.id for c in candidates] == top.indices.tolist()
        np.testing.assert_allclose([c.prob for c in candidates], top.values.exp().numpy(), atol=PROB_TOLERANCE)
    # the trace is complete: the last generated token has its row and the prediction after it
    last = len(trace.tokens) - 1
    out = eager_forward(model, ids)
    np.testing.assert_allclose(
        trace.attention(-1, None, rows=[last])[:, 0], out.attentions[-1][0, :, last].double().cpu().numpy(), atol=1e-4
    )
    assert trace.top_predictions(last, 1)[0].id == int(out.logits[0, -1].argmax())


def test_sliding_window_layers_keep_every_key_the_cache_evicted():
    """tiny gemma3 (window 4) and mistral (window 5): prompts far longer than the window."""
    for family in ("gemma3", "mistral"):
        model = tiny(family, device="cpu")
        window = model.model.config.sliding_window
        trace = generate(model, ENGLISH * 3, max_new_tokens=6)
        n = len(trace.tokens)
        assert n > 10 * window
        out = eager_forward(model, [t.id for t in trace.tokens])
        for layer, eager_map in enumerate(out.attentions):
            np.testing.assert_allclose(
                trace.attention(layer, None), eager_map[0].double().numpy(), atol=ATTENTION_TOLERANCE, rtol=0
            )
        record = trace.source.records[("decoder", 0)]
        assert record.key.shape[1] == n and record.query.shape[1] == n


def test_seeded_sampling_is_model_generate_and_repeatable():
    model = tiny("llama", device="cpu")
    settings = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 20}
    first = generate(model, ENGLISH, max_new_tokens=12, seed=7, **settings)
    again = generate(model, ENGLISH, max_new_tokens=12, seed=7, **settings)
    other = generate(model, ENGLISH, max_new_tokens=12, seed=8, **settings)
    ids = [s.token_id for s in first.steps]
    assert ids == [s.token_id for s in again.steps]
    assert ids != [s.token_id for s in other.steps]
    torch.manual_seed(7)
    assert ids == plain_generate(model, first, max_new_tokens=12, **settings)
    # the sampler's probability: softmax(logits / T), top-k then top-p filtered and renormalised
    full = [t.id for t in first.tokens]
    with torch.no_grad():
        logits = model.model(torch.tensor([full])).logits[0].double()
    for step in first.steps:
        scores = logits[step.position - 1] / 0.7
        kept = torch.topk(scores, 20)
        probs = torch.softmax(kept.values, dim=-1)
        order = torch.argsort(probs, descending=True)
        cumulative = torch.cumsum(probs[order], dim=0)
        nucleus = order[: int((cumulative < 0.9).sum()) + 1]
        allowed = kept.indices[nucleus]
        renormalised = torch.softmax(scores[allowed], dim=-1)
        assert step.token_id in allowed.tolist()
        expected = float(renormalised[allowed.tolist().index(step.token_id)])
        assert step.sampled_prob == pytest.approx(expected, abs=1e-5)
        assert step.prob == pytest.approx(float(torch.softmax(logits[step.position - 1], -1)[step.token_id]), abs=1e-5)


def test_beam_search_records_the_best_beam():
    model = tiny("qwen2", device="cpu")
    trace = generate(model, ENGLISH, max_new_tokens=8, num_beams=3)
    ids = [s.token_id for s in trace.steps]
    assert ids == plain_generate(model, trace, max_new_tokens=8, num_beams=3, do_sample=False)
    assert all(s.beam is not None and 0 <= s.beam < 3 for s in trace.steps)
    assert trace.steps[0].parent is None and all(s.parent is not None for s in trace.steps[1:])
    out = eager_forward(model, [t.id for t in trace.tokens])
    np.testing.assert_allclose(trace.attention(1, None), out.attentions[1][0].double().numpy(), atol=1e-4)
    logprobs = torch.log_softmax(out.logits[0].double(), dim=-1)
    expected = [float(logprobs[s.position - 1, s.token_id]) for s in trace.steps]
    np.testing.assert_allclose([math.log(s.prob) for s in trace.steps], expected, atol=1e-4)
    assert trace.steps[-1].logprob_cum == pytest.approx(sum(expected), abs=1e-3)


def written_beam_search(model, prompt: list[int], beams: int, steps: int, eos: set[int], at_limit: bool):
    """Beam search written out over plain forwards (float64 ``log_softmax`` of each prefix's logits):
    per step the running beams and the hypotheses that ended, each ``(token, parent, logprob, cum)``.

    As transformers does it with the default ``length_penalty`` (1.0) and ``early_stopping`` (False):
    the 2K best continuations of all beams by cumulative log-prob, best first; the running beams are
    the K best of them that are not EOS, and an EOS among the first K ends a hypothesis. One corner:
    at the length limit every continuation hits a stopping criterion, and transformers then keeps
    the first K whatever their token (its running rows are the top K of ``score - 1e9 x stopped``),
    so the last step's running beams there are the first K (``at_limit``).
    """
    running = [(list(prompt), 0.0)]
    levels = []
    for step in range(steps):
        with torch.no_grad():
            logits = model.model(torch.tensor([ids for ids, _ in running])).logits[:, -1]
        logprobs = torch.log_softmax(logits.double(), dim=-1)  # (beams, vocab)
        vocab = logprobs.shape[1]
        totals = torch.tensor([total for _, total in running], dtype=torch.float64)[:, None] + logprobs
        values, flat = torch.topk(totals.flatten(), 2 * beams)
        continuations = [
            (index % vocab, index // vocab, float(logprobs[index // vocab, index % vocab]), value)
            for value, index in zip(values.tolist(), flat.tolist(), strict=True)
        ]
        last = at_limit and step == steps - 1
        kept = continuations[:beams] if last else [c for c in continuations if c[0] not in eos][:beams]
        ended = [c for c in continuations[:beams] if c not in kept]
        levels.append((kept, ended))
        running = [(running[parent][0] + [token], total) for token, parent, _, total in kept]
    return levels


@pytest.mark.parametrize("eos", ["own", "likely"])
def test_beam_tree_is_beam_search_written_out(eos):
    """Every step's beams equal :func:`written_beam_search` (3 beams, 8 tokens). ``likely``: the EOS
    id is the prompt's second most likely next token, so a hypothesis ends at step 0."""
    model = attnscope.load_model("tiny:qwen2", device="cpu")  # its own copy: the test changes its EOS id
    prompt = attnscope.capture(model, ENGLISH).token_ids
    if eos == "likely":
        with torch.no_grad():
            first = model.model(torch.tensor([prompt])).logits[0, -1]
        model.model.generation_config.eos_token_id = int(torch.topk(first, 2).indices[1])
    eos_ids = {model.model.generation_config.eos_token_id}
    trace = generate(model, ENGLISH, max_new_tokens=8, num_beams=3)
    tree = trace.beam_tree
    assert [t.id for t in trace.prompt_tokens] == prompt and len(tree) >= len(trace.steps)
    written = written_beam_search(model, prompt, 3, len(tree), eos_ids, at_limit=len(tree) == 8)
    for step, (level, (kept, ended)) in enumerate(zip(tree, written, strict=True)):
        assert [n.step for n in level] == [step] * len(level) and [n.rank for n in level] == list(range(len(level)))
        for nodes, expected in ((level[:3], kept), (level[3:], ended)):
            assert [(n.token_id, n.parent) for n in nodes] == [(t, None if step == 0 else p) for t, p, _, _ in expected]
            np.testing.assert_allclose(
                [(n.logprob, n.logprob_cum) for n in nodes], [(lp, c) for _, _, lp, c in expected], atol=1e-4
            )
        assert all(n.finished for n in level[3:])
        assert [n.finished for n in level[:3]] == [step == len(tree) - 1 and n.token_id in eos_ids for n in level[:3]]
    if eos == "likely":
        assert tree[0][3].token_id in eos_ids and tree[0][3].finished


def test_beam_tree_marks_the_returned_sequence_once_per_step():
    model = tiny("qwen2", device="cpu")
    trace = generate(model, ENGLISH, max_new_tokens=8, num_beams=3)
    best = [[n for n in level if n.best] for level in trace.beam_tree]
    assert all(len(nodes) == 1 for nodes in best[: len(trace.steps)]) and not any(best[len(trace.steps) :])
    path = [nodes[0] for nodes in best[: len(trace.steps)]]
    ids = [n.token_id for n in path]
    assert ids == [s.token_id for s in trace.steps] == plain_generate(model, trace, max_new_tokens=8, num_beams=3)
    assert [n.parent for n in path[1:]] == [n.rank for n in path[:-1]]  # one branch
    assert [n.parent for n in path[1:]] == [s.beam for s in trace.steps[1:]]  # transformers' beam_indices
    np.testing.assert_allclose([n.logprob for n in path], [math.log(s.prob) for s in trace.steps], atol=1e-4)
    assert path[-1].logprob_cum == pytest.approx(trace.steps[-1].logprob_cum, abs=1e-3)
    texts = model.tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False)
    assert [n.text for n in path] == texts


def test_beam_tree_is_saved_and_shown(tmp_path):
    model = tiny("qwen2", device="cpu")
    trace = generate(model, ENGLISH, max_new_tokens=10, num_beams=3)
    loaded = Trace.load(trace.save(tmp_path / "beams.safetensors"))
    assert isinstance(loaded, GenerationTrace) and loaded.beam_tree == trace.beam_tree and len(loaded.beam_tree) == 10
    result = generation_json(loaded)
    assert result == generation_json(trace) and len(result["beam_tree"]) == 10
    # the JSON's returned path, followed through its parents, is model.generate's answer (independent)
    keys = {"rank", "token", "parent", "logprob", "logprob_cum", "best", "finished"}
    assert all(set(node) == keys for level in result["beam_tree"] for node in level)
    path = [next(n for n in level if n["best"]) for level in result["beam_tree"]]
    assert all(b["parent"] == a["rank"] for a, b in itertools.pairwise(path))
    expected = plain_generate(model, trace, max_new_tokens=10, num_beams=3, do_sample=False)
    assert [n["token"]["id"] for n in path] == expected[: len(path)]
    shown = generation_text(result).splitlines()
    first = shown.index(next(line for line in shown if line.startswith("beams after each step")))
    assert [line[:5] for line in shown[first + 1 : first + 9]] == [f"{step:>5}" for step in range(8)]
    assert shown[first + 9].strip() == "… 2 more steps (--json has every beam)"
    best = next(n for n in trace.beam_tree[0] if n.best)
    assert f"{quoted(best.text)}* {best.logprob_cum:.3f}" in shown[first + 1]
    # a trace without a tree (greedy; files written before trees): no key in the file, an empty tree loaded
    greedy = generate(model, ENGLISH, max_new_tokens=3)
    assert "beam_tree" not in greedy.generation_meta()
    assert Trace.load(greedy.save(tmp_path / "greedy.safetensors")).beam_tree == []
    assert "beam_tree" not in generation_json(greedy)


def test_greedy_and_sampling_have_no_beam_tree():
    assert generate(tiny("qwen2", device="cpu"), ENGLISH, max_new_tokens=3).beam_tree == []
    sampled = generate(tiny("llama", device="cpu"), ENGLISH, max_new_tokens=3, do_sample=True, seed=3)
    assert sampled.beam_tree == []
    assert generate(tiny("t5", device="cpu"), ENGLISH, max_new_tokens=3).beam_tree == []


@pytest.mark.parametrize("eos", ["own", "likely"])
def test_encoder_decoder_beam_tree_follows_generate(eos):
    """``likely``: the EOS id is the decoder's most likely first token: the returned sequence is that
    one token, a hypothesis finished at step 0 (not a running beam), and later steps have no best."""
    model = attnscope.load_model("tiny:t5", device="cpu")  # its own copy: the test changes its EOS id
    prompt = torch.tensor([attnscope.capture(model, ENGLISH).token_ids])
    start = model.model.generation_config.decoder_start_token_id
    if eos == "likely":
        with torch.no_grad():
            first = model.model(input_ids=prompt, decoder_input_ids=torch.tensor([[start]])).logits[0, -1]
        model.model.generation_config.eos_token_id = int(first.argmax())
    trace = generate(model, ENGLISH, max_new_tokens=6, num_beams=3)
    with torch.no_grad():
        expected = model.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, num_beams=3)
    assert [t.id for t in trace.predicted_tokens] == expected[0].tolist()
    path = [n for level in trace.beam_tree for n in level if n.best]
    assert [n.token_id for n in path] == expected[0, 1:].tolist() == [s.token_id for s in trace.steps]
    assert [n.step for n in path] == list(range(len(path)))
    if eos == "likely":
        assert len(path) == 1 and path[0].finished and path[0].rank >= 3 and trace.stop_reason == "eos"
        assert len(trace.beam_tree) > 1 and not any(n.best for level in trace.beam_tree[1:] for n in level)


def test_stash_policies_and_offload_read_the_same_rows(device):
    model = tiny("llama", device=device)
    reference = generate(model, ENGLISH, max_new_tokens=6, stash="device")
    for policy, budget in (("host", None), ("auto", 0)):
        trace = generate(model, ENGLISH, max_new_tokens=6, stash=policy, stash_budget=budget)
        assert trace.provenance["stash"]["policy"] == policy
        np.testing.assert_allclose(trace.attention(-1, None), reference.attention(-1, None), atol=1e-6)


def test_saved_generation_loads_as_a_generation(tmp_path):
    model = tiny("qwen2", device="cpu")
    trace = generate(model, ENGLISH, max_new_tokens=5)
    loaded = Trace.load(trace.save(tmp_path / "g.safetensors"))
    assert isinstance(loaded, GenerationTrace)
    assert loaded.steps == trace.steps and loaded.stop_reason == trace.stop_reason
    assert loaded.generated_text == trace.generated_text and loaded.prompt_length == trace.prompt_length
    np.testing.assert_allclose(loaded.step_attention(2), trace.step_attention(2), atol=1e-6)
    assert [c.id for c in loaded.step_candidates(1)] == [c.id for c in trace.step_candidates(1)]


def test_progress_is_called_per_step_and_parts_split_prompt_and_answer():
    model = tiny("llama", device="cpu")
    calls: list[tuple[int, int]] = []
    trace = generate(model, ENGLISH, max_new_tokens=7, progress=lambda done, total, *_: calls.append((done, total)))
    assert calls == [(i, 7) for i in range(1, 8)]
    assert [(p.name, p.start, p.end) for p in trace.parts] == [
        ("prompt", 0, len(ENGLISH)),
        ("answer", len(ENGLISH), len(trace.text)),
    ]
    chat = generate(model, messages=[{"role": "user", "content": "hello"}], max_new_tokens=3)
    assert [p.name for p in chat.parts] == ["user", "answer"]
    assert chat.text[chat.parts[0].start : chat.parts[0].end] == "hello"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10**6}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"max_new_tokens": True}, "max_new_tokens"),
        ({"num_beams": 0}, "num_beams"),
        ({"num_beams": 17}, "num_beams"),
        ({"do_sample": "yes"}, "do_sample"),
        ({"do_sample": True, "temperature": 0}, "temperature"),
        ({"do_sample": True, "temperature": float("nan")}, "temperature"),
        ({"do_sample": True, "temperature": float("inf")}, "temperature"),
        ({"do_sample": True, "top_p": 1.5}, "top_p"),
        ({"do_sample": True, "top_p": 0}, "top_p"),
        ({"do_sample": True, "top_k": 0}, "top_k"),
        ({"do_sample": True, "seed": -1}, "seed"),
        ({"temperature": 0.5}, "do_sample"),
        ({"stop": "."}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"stop": [3]}, "stop"),
        ({"stop": ["x"] * 17}, "stop"),
        ({"candidates": 0}, "candidates"),
        ({"stash": "pinned"}, "stash"),
    ],
)
def test_bad_settings_are_refused_in_one_line(kwargs, message):
    with pytest.raises(InputError, match=message) as error:
        generate(tiny("llama", device="cpu"), ENGLISH, **kwargs)
    assert "\n" not in str(error.value)


def test_text_and_model_kinds_are_checked():
    model = tiny("llama", device="cpu")
    for text in ("", b"\xff", "a\ud800b"):
        with pytest.raises(InputError):
            generate(model, text)
    with pytest.raises(InputError, match="exactly one"):
        generate(model, ENGLISH, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(UnsupportedError, match="encoder"):
        generate(tiny("bert", device="cpu"), ENGLISH)


def spans_are_exact(trace: GenerationTrace) -> None:
    """Every generated token's text is its span of the generated text; the spans tile the text."""
    text = trace.generated_text
    covered = 0
    for token in trace.generated_tokens:
        if token.special:
            assert token.start is None and token.end is None
            continue
        assert token.text == text[token.start : token.end]
        assert token.start <= covered <= token.end  # no gap; shared spans only for one character's bytes
        covered = token.end
    assert covered == len(text)


def test_packaged_smollm2_generates_as_transformers_with_exact_spans_and_stop_strings():
    from tests.conftest import packaged

    model = packaged("smollm2-135m")
    trace = generate(model, ENGLISH, max_new_tokens=12)
    ids = [s.token_id for s in trace.steps]
    assert ids == plain_generate(model, trace, max_new_tokens=12, do_sample=False)
    assert trace.generated_text == model.tokenizer.decode(ids, skip_special_tokens=True)
    assert trace.generated_text.startswith(" Paris")
    spans_are_exact(trace)
    stopped = generate(model, ENGLISH, max_new_tokens=12, stop=["."])
    assert stopped.stop_reason == "stop" and stopped.generated_text.endswith(".")
    expected = plain_generate(model, stopped, max_new_tokens=12, stop_strings=["."], tokenizer=model.tokenizer)
    assert [s.token_id for s in stopped.steps] == expected
    assert len(stopped.steps) < len(trace.steps) and trace.stop_reason == "length"


@pytest.mark.slow
def test_qwen_answers_the_chinese_example_and_a_chat_ends_with_its_end_token():
    from tests.conftest import CHINESE, packaged

    model = packaged("qwen2.5-coder-0.5b")
    trace = generate(model, CHINESE, max_new_tokens=8)
    assert trace.generated_text.startswith("北京")
    assert trace.generated_text == model.tokenizer.decode([s.token_id for s in trace.steps], skip_special_tokens=True)
    spans_are_exact(trace)
    chat = generate(model, messages=[{"role": "user", "content": CHINESE}], max_new_tokens=40)
    assert chat.stop_reason == "eos" and "北京" in chat.generated_text
    assert chat.tokens[-1].special and chat.tokens[-1].start is None
    assert [s.token_id for s in chat.steps] == plain_generate(model, chat, max_new_tokens=40, do_sample=False)
    spans_are_exact(chat)
    assert chat.parts[-1].name == "answer" and chat.text[chat.parts[-1].start :] == chat.generated_text


def test_cache_state_names_the_positions_a_sliding_window_dropped():
    model = tiny("gemma3", device="cpu")
    expected = [
        model.model.config.sliding_window if kind == "sliding_attention" else None
        for kind in model.model.config.layer_types
    ]
    trace = generate(model, ENGLISH * 2, max_new_tokens=4)
    assert trace.windows == expected and any(expected) and None in expected
    state = trace.cache_state(2)
    p = trace.steps[2].position
    assert state["length"] == p
    assert state["evicted_before"] == {layer: p - w for layer, w in enumerate(expected) if w}
    for layer, first_kept in state["evicted_before"].items():  # what the row can see: exactly the window
        row = trace.attention(layer, None, rows=[p - 1])[:, 0]
        assert np.all(row[:, :first_kept] == 0) and np.all(row[:, first_kept:p] > 0)
    assert generate(tiny("llama", device="cpu"), ENGLISH, max_new_tokens=2).windows == [None] * 3


def test_long_generations_outgrow_their_buffers_and_keep_every_row():
    """150 steps: the row buffers are replaced by longer ones twice; rows and stash size stay exact."""
    model = tiny("qwen2", device="cpu")
    trace = generate(model, ENGLISH, max_new_tokens=150)
    n = len(trace.tokens)
    assert n == trace.prompt_length + 150
    out = eager_forward(model, [t.id for t in trace.tokens])
    for layer in (0, 2):
        np.testing.assert_allclose(
            trace.attention(layer, None), out.attentions[layer][0].double().numpy(), atol=ATTENTION_TOLERANCE, rtol=0
        )
    records = trace.source.records.values()
    assert all(r.query.shape[1] == n and r.key.shape[1] == n for r in records)
    assert all(r.query.untyped_storage().nbytes() == r.query.nbytes for r in records)  # no unused room kept
    assert trace.provenance["stash"]["device_bytes"] == trace.source.stash_bytes


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_encoder_decoder_steps_match_eager_decoder_and_cross_attention(family):
    model = tiny(family, device="cpu")
    trace = generate(model, ENGLISH, max_new_tokens=6)
    assert trace.seq2seq and trace.prompt_tokens == trace.tokens and trace.prompt_length == 1
    new_ids = [s.token_id for s in trace.steps]
    prompt = torch.tensor([[t.id for t in trace.tokens]])
    with torch.no_grad():
        expected_ids = model.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6)[0, 1:]
    assert new_ids == expected_ids.tolist()
    decoder = [t.id for t in trace.predicted_tokens]
    assert decoder[1:] == new_ids and [t.id for t in trace.generated_tokens] == new_ids
    with torch.no_grad(), eager(model.model):
        out = model.model(input_ids=prompt, decoder_input_ids=torch.tensor([decoder]), output_attentions=True)
    logprobs = torch.log_softmax(out.logits[0].double(), dim=-1)
    for step in trace.steps:
        q = step.position - 1
        for layer in range(len(out.decoder_attentions)):
            np.testing.assert_allclose(
                trace.step_attention(step.step, layer, "mean", stack="decoder"),
                out.decoder_attentions[layer][0, :, q, : q + 1].double().mean(0).numpy(),
                atol=ATTENTION_TOLERANCE,
            )
            np.testing.assert_allclose(
                trace.step_attention(step.step, layer, 1, stack="cross"),
                out.cross_attentions[layer][0, 1, q].double().numpy(),
                atol=ATTENTION_TOLERANCE,
            )
        assert step.prob == pytest.approx(math.exp(float(logprobs[q, step.token_id])), abs=PROB_TOLERANCE)
    with pytest.raises(InputError, match="decoder positions"):
        trace.step_attention(0, stack="encoder")
