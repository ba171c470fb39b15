"""Two models on one text, checked against two independent eager runs of plain transformers.

The two models differ in family (Llama, GPT-2), layer count (3, 2) and tokenizer (two byte-level BPEs
trained here with different vocabularies: one merges 爱中国 and 他的首都 into single tokens, the
other cuts the characters into bytes). They are saved as safetensors folders and loaded by attnscope
by path; the expected numbers come from ``transformers`` run with ``attn_implementation="eager"`` and
``output_attentions=True``, aggregated onto words here by the documented rule (keys summed, queries
averaged; a token belongs to the unit holding its first visible character, whitespace-only tokens to
the unit before them), without attnscope's aggregation code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import attnscope
from attnscope.analysis.model_compare import common_units, match_layers
from attnscope.capture.tokens import Token
from attnscope.errors import InputError
from attnscope.methods.compare_models import compare_two_models
from attnscope.render.json import model_comparison_json
from tests.conftest import CHINESE, ENGLISH

TOLERANCE = 1e-5  # fp32 on the CPU: attnscope's eager capture against a second eager run
CORPUS = ["The capital of France is Paris.", "我爱中国，他的首都在于北京。", "他的首都", "中国"] * 50


def _tokenizer(vocab_size: int, bos: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", backend.token_to_id("<s>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=256
    )


def build_folder_model(folder: Path, family: str) -> Path:
    """A small random model saved as safetensors with its own tokenizer: ``llama`` (3 layers, a BPE of
    300 symbols with a BOS token) or ``gpt2`` (2 layers, 270 symbols, no BOS)."""
    import transformers as tf

    if (folder / "model.safetensors").exists():
        return folder
    tokenizer = _tokenizer(300, True) if family == "llama" else _tokenizer(270, False)
    vocab = len(tokenizer)
    if family == "llama":
        config = tf.LlamaConfig(
            vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.2, tie_word_embeddings=False,
        )  # fmt: skip
    else:
        config = tf.GPT2Config(vocab_size=vocab, n_embd=48, n_layer=2, n_head=3, n_positions=256, initializer_range=0.2)
    torch.manual_seed(1 if family == "llama" else 2)
    model = tf.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("two-models")
    return build_folder_model(root / "a", "llama"), build_folder_model(root / "b", "gpt2")


def eager_run(folder: Path, text: str) -> tuple[np.ndarray, list[tuple[int, int]], list[bool], np.ndarray]:
    """(layers, heads, query, key) attention, offsets, special flags and last-position logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    encoded = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=encoded["input_ids"], output_attentions=True)
    attention = torch.stack(out.attentions)[:, 0].double().numpy()
    offsets = [tuple(int(v) for v in pair) for pair in encoded["offset_mapping"][0].tolist()]
    specials = [bool(v) for v in encoded["special_tokens_mask"][0].tolist()]
    return attention, offsets, specials, out.logits[0, -1].double().numpy()


def owners(text: str, offsets: list[tuple[int, int]], specials: list[bool], spans: list[tuple[int, int]]) -> list:
    """The unit of each token: the unit holding its first own visible character — a character cut into
    several byte pieces is owned by the first token whose offsets cover it; tokens that own none
    (whitespace, byte tails) join the unit before them; special tokens none."""
    first_cover: dict[int, int] = {}
    for index, ((start, end), special) in enumerate(zip(offsets, specials, strict=True)):
        for char in range(start, end):
            if not special:
                first_cover.setdefault(char, index)
    result: list[int | None] = []
    previous = None
    for index, ((start, end), special) in enumerate(zip(offsets, specials, strict=True)):
        if special:
            result.append(None)
            continue
        visible = [i for i in range(start, end) if not text[i].isspace() and first_cover[i] == index]
        if not visible:
            result.append(previous)
            continue
        unit = next(u for u, (a, b) in enumerate(spans) if a <= visible[0] < b)
        result.append(unit)
        previous = unit
    return result


def by_hand(attention: np.ndarray, owner: list, n_units: int) -> np.ndarray:
    """(units, units) of a (query, key) map: sum over each unit's keys, mean over its queries."""
    result = np.zeros((n_units, n_units))
    for u in range(n_units):
        queries = [q for q, o in enumerate(owner) if o == u]
        for v in range(n_units):
            keys = [k for k, o in enumerate(owner) if o == v]
            result[u, v] = np.mean([attention[q, keys].sum() for q in queries])
    return result


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_differences_match_two_independent_eager_runs(folders, text):
    model_a = attnscope.load_model(str(folders[0]), device="cpu", dtype="float32")
    model_b = attnscope.load_model(str(folders[1]), device="cpu", dtype="float32")
    body = model_comparison_json(compare_two_models(model_a, model_b, text, method="none"))
    spans = [(u["start"], u["end"]) for u in body["units"]]
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")
    if text == CHINESE:  # A's token 他的首都 forces a merged unit; B cuts every character into bytes
        assert [u["text"] for u in body["units"]] == ["我", "爱", "中国", "，", "他的首都", "在于"]
    attention_a, offsets_a, specials_a, logits_a = eager_run(folders[0], text)
    attention_b, offsets_b, specials_b, logits_b = eager_run(folders[1], text)
    assert (attention_a.shape[0], attention_b.shape[0]) == (3, 2)
    assert body["layer_match"]["pairs"] == [[0, 0], [1, 1], [2, 1]]  # round(i * 1/2), halves up
    owner_a = owners(text, offsets_a, specials_a, spans)
    owner_b = owners(text, offsets_b, specials_b, spans)
    assert [t["unit"] for t in body["models"][0]["tokens"]] == owner_a
    assert [t["unit"] for t in body["models"][1]["tokens"]] == owner_b
    if text == ENGLISH:  # whole characters: attnscope's spans are the tokenizer's offsets
        assert [(t["start"], t["end"]) for t in body["models"][1]["tokens"]] == offsets_b
    for index, (layer_a, layer_b) in enumerate(body["layer_match"]["pairs"]):
        expected_a = by_hand(attention_a[layer_a].mean(axis=0), owner_a, len(spans))
        expected_b = by_hand(attention_b[layer_b].mean(axis=0), owner_b, len(spans))
        np.testing.assert_allclose(body["models"][0]["maps"][index], expected_a, atol=TOLERANCE)
        np.testing.assert_allclose(body["models"][1]["maps"][index], expected_b, atol=TOLERANCE)
        np.testing.assert_allclose(body["difference"]["maps"][index], expected_a - expected_b, atol=2 * TOLERANCE)
        bos = [k for k, special in enumerate(specials_a) if special]
        special_mass = [np.mean([attention_a[layer_a].mean(0)[q, bos].sum() for q, o in enumerate(owner_a) if o == u])
                        for u in range(len(spans))]  # fmt: skip
        np.testing.assert_allclose(body["models"][0]["to_special"][index], special_mass, atol=TOLERANCE)
        np.testing.assert_allclose(np.sum(body["models"][1]["to_special"][index]), 0.0, atol=1e-12)
    # head metrics: per layer, the mean over heads of the mean over rows (entropy in nats; sink: the first key)
    assert body["layer_match"]["all"] == [[0, 0], [1, 1], [2, 1]]
    for side, (attention, key) in enumerate(((attention_a, "a"), (attention_b, "b"))):
        layers = [pair[side] for pair in body["layer_match"]["all"]]
        logs = np.log(np.where(attention > 0, attention, 1.0))
        entropy = (-(attention * logs).sum(-1)).mean(-1).mean(-1)  # (layers,)
        sink = attention[..., 0].mean(-1).mean(-1)
        metrics = body["head_metrics"]["metrics"]
        np.testing.assert_allclose(metrics["entropy"][key], entropy[layers], atol=1e-5)
        np.testing.assert_allclose(metrics["sink"][key], sink[layers], atol=1e-5)
    for side, logits in enumerate((logits_a, logits_b)):
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        shown = body["models"][side]["predictions"]
        assert [p["id"] for p in shown] == list(np.argsort(-probs)[:5])
        np.testing.assert_allclose([p["prob"] for p in shown], np.sort(probs)[::-1][:5], atol=1e-6)


def test_attribution_side_by_side_and_rank_agreement(folders):
    """grad-x-input of each model's own top prediction, by autograd here, summed onto the units."""
    from scipy.stats import kendalltau, spearmanr
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_a = attnscope.load_model(str(folders[0]), device="cpu", dtype="float32")
    model_b = attnscope.load_model(str(folders[1]), device="cpu", dtype="float32")
    body = model_comparison_json(compare_two_models(model_a, model_b, CHINESE, layers=[-1]))
    spans = [(u["start"], u["end"]) for u in body["units"]]
    summed = []
    for folder in folders:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
        encoded = tokenizer(CHINESE, return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
        embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
        log_probs = torch.log_softmax(model(inputs_embeds=embeddings).logits[0, -1], dim=-1)
        log_probs[int(log_probs.argmax())].backward()
        scores = (embeddings.grad * embeddings).sum(-1)[0].detach().double().numpy()
        owner = owners(CHINESE, [tuple(p) for p in encoded["offset_mapping"][0].tolist()],
                       [bool(v) for v in encoded["special_tokens_mask"][0].tolist()], spans)  # fmt: skip
        summed.append(
            np.array([sum(s for s, o in zip(scores, owner, strict=True) if o == u) for u in range(len(spans))])
        )
    shown = body["attribution"]
    assert shown["method"] == "grad-x-input" and shown["n_units"] == len(spans)
    np.testing.assert_allclose(shown["a"], summed[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(shown["b"], summed[1], rtol=1e-4, atol=1e-6)
    assert shown["spearman"] == pytest.approx(spearmanr(summed[0], summed[1]).statistic, abs=1e-9)
    assert shown["kendall"] == pytest.approx(kendalltau(summed[0], summed[1]).statistic, abs=1e-9)
    assert body["layer_match"]["pairs"] == [[2, 1]]


def _tokens(spans: list[tuple[int, int]], text: str) -> list[Token]:
    return [Token(i, i, text[a:b], a, b, False) for i, (a, b) in enumerate(spans)]


def test_common_units_merge_across_tokenizations():
    text = "我爱中国"  # jieba: 我 | 爱 | 中国
    a = _tokens([(0, 2), (2, 3), (3, 4)], text)  # 我爱 | 中 | 国
    b = _tokens([(0, 1), (1, 3), (3, 4)], text)  # 我 | 爱中 | 国
    units = common_units(text, a, b)
    assert [(u.text, u.tokens_a, u.tokens_b) for u in units] == [("我爱中国", (0, 1, 2), (0, 1, 2))]
    same = common_units("The capital", _tokens([(0, 3), (3, 11)], "The capital"), _tokens([(0, 3), (3, 11)], "x" * 11))
    assert [u.text for u in same] == ["The", "capital"]
    with pytest.raises(InputError, match="no token units"):
        common_units(text, a, b, "token")


def test_match_layers_by_depth_fraction():
    assert match_layers(3, 3) == [0, 1, 2]
    assert match_layers(24, 30)[0] == 0 and match_layers(24, 30)[-1] == 29
    assert match_layers(30, 18)[15] == 9  # 15 * 17 / 29 = 8.79 -> 9
    assert match_layers(5, 3) == [0, 1, 1, 2, 2]  # 0, 0.5, 1, 1.5, 2 rounded half up
    assert match_layers(1, 4) == [3]
    with pytest.raises(InputError):
        match_layers(0, 3)


def test_same_model_twice_gives_zero_differences():
    from tests.conftest import tiny

    model = tiny("llama")
    body = model_comparison_json(compare_two_models(model, model, ENGLISH, method="none"))
    assert body["same_model"] is True and body["difference"]["max_abs"] == 0.0
    assert body["model"]["fingerprint"] == body["model_b"]["fingerprint"]


def test_bad_inputs():
    from tests.conftest import tiny

    with pytest.raises(InputError, match="cannot score tokens"):
        compare_two_models(tiny("llama"), tiny("gpt2"), ENGLISH, method="head-metrics")
    with pytest.raises(InputError, match="nope"):
        compare_two_models(tiny("llama"), tiny("gpt2"), ENGLISH, method="nope")
    with pytest.raises(InputError, match="only causal and masked"):
        compare_two_models(tiny("llama"), tiny("t5"), ENGLISH)
    with pytest.raises(InputError, match="out of range"):
        compare_two_models(tiny("llama"), tiny("gpt2"), ENGLISH, layers=[7], method="none")


@pytest.mark.slow
def test_two_packaged_models_against_eager_runs():
    """smollm2-135m (30 layers, 49k vocabulary) against gemma3-270m (18 layers, 262k) on both examples."""
    from transformers import AutoModelForCausalLM

    from tests.conftest import packaged

    model_a, model_b = packaged("smollm2-135m"), packaged("gemma3-270m")
    for text in (ENGLISH, CHINESE):
        body = model_comparison_json(compare_two_models(model_a, model_b, text, method="none", layers=[0, 15, 29]))
        assert body["layer_match"]["pairs"] == [[0, 0], [15, 9], [29, 17]]
        spans = [(u["start"], u["end"]) for u in body["units"]]
        for side, model in enumerate((model_a, model_b)):
            # the same (de-quantised) weights, run again by plain transformers with eager attention
            eager = AutoModelForCausalLM.from_config(model.model.config, attn_implementation="eager")
            eager.load_state_dict(model.model.state_dict())
            eager.eval()
            encoded = model.tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True,
                                      return_tensors="pt")  # fmt: skip
            with torch.no_grad():
                attentions = eager(input_ids=encoded["input_ids"], output_attentions=True).attentions
            owner = owners(text, [tuple(p) for p in encoded["offset_mapping"][0].tolist()],
                           [bool(v) for v in encoded["special_tokens_mask"][0].tolist()], spans)  # fmt: skip
            for index, pair in enumerate(body["layer_match"]["pairs"]):
                expected = by_hand(attentions[pair[side]][0].mean(0).double().numpy(), owner, len(spans))
                np.testing.assert_allclose(body["models"][side]["maps"][index], expected, atol=1e-4)


def brute_force_common_units(spans_a: list[tuple[int, int]], spans_b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The merged spans, by repeated pairwise merging until nothing changes (quadratic, independent)."""
    groups = [[("a", s)] for s in spans_a] + [[("b", s)] for s in spans_b]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if any(x != y and min(s[1], t[1]) > max(s[0], t[0]) for x, s in groups[i] for y, t in groups[j]):
                    groups[i] += groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    return sorted((min(s[0] for _, s in g), max(s[1] for _, s in g)) for g in groups)


def test_common_units_sweep_equals_pairwise_merging_and_is_linear():
    import itertools

    from attnscope.analysis.units import make_units

    rng = np.random.default_rng(0)
    for _ in range(30):
        text = "".join(rng.choice(list("ab,")) for _ in range(40))  # no spaces: one word per token span

        def cut(text: str) -> list[tuple[int, int]]:
            edges = sorted({0, len(text), *rng.integers(1, len(text), size=int(rng.integers(1, 15))).tolist()})
            return list(itertools.pairwise(edges))

        spans_a, spans_b = cut(text), cut(text)
        tokens_a, tokens_b = _tokens(spans_a, text), _tokens(spans_b, text)
        units_a = [(u.start, u.end) for u in make_units(text, tokens_a, "word")]
        units_b = [(u.start, u.end) for u in make_units(text, tokens_b, "word")]
        shown = [(u.start, u.end) for u in common_units(text, tokens_a, tokens_b)]
        assert shown == brute_force_common_units(units_a, units_b)
    words = [f"w{i}" for i in range(4000)]
    text = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    tokens = _tokens([(int(s), int(s) + len(w)) for s, w in zip(starts, words, strict=True)], text)
    assert len(common_units(text, tokens, tokens)) == 4000  # speed: no timed assertion here (0.16 s, was 10.5 s)


def test_map_cell_limit_says_how_many_layers_fit():
    from attnscope.analysis.model_compare import MAX_MAP_CELLS, check_map_size

    assert MAX_MAP_CELLS == 4_000_000
    check_map_size(30, 365)  # 3,996,750 cells
    with pytest.raises(InputError, match=r"31 layers of 365 × 365 units are 4,129,975 map cells .*at most 30 layers"):
        check_map_size(31, 365, "--layer")
    with pytest.raises(InputError, match="even one layer is too many"):
        check_map_size(1, 2001)


def test_duplicate_layers_and_a_method_model_b_cannot_run_are_refused():
    from tests.conftest import tiny

    with pytest.raises(InputError, match="names a layer of A twice"):
        compare_two_models(tiny("llama"), tiny("gpt2"), ENGLISH, layers=[2, -1], method="none")
    stages: list[object] = []
    with pytest.raises(InputError, match=r"model B \(tiny:bert\) is a masked model; use method attention"):
        compare_two_models(tiny("llama"), tiny("bert"), ENGLISH, progress=lambda *a, **k: stages.append(a))
    assert stages == []  # refused before either model captured
    body = model_comparison_json(compare_two_models(tiny("llama"), tiny("bert"), ENGLISH, method="attention"))
    assert body["attribution"]["method"] == "attention"
