"""Clark et al.'s dependency-head accuracies against a hand computation from plain transformers eager
attention (word pooling written here, independently), the offset baseline by hand, CoNLL-U refusals,
jieba's Chinese parts of speech and the spaCy English parse."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from attnscope.analysis.parsers import ParserMissingError, parse_conllu, parse_jieba, parse_text
from attnscope.analysis.syntax import DIRECTIONS, OFFSETS, dependency_scores, token_words, word_attention
from attnscope.capture import capture
from attnscope.errors import InputError
from tests.analysis.test_counterfactual import eager
from tests.conftest import CHINESE, ENGLISH, packaged, tiny

TEXT = "The capital of Zxqvtlandia is unbelievably small."
# word, head (1-based, 0 = root), relation — written by hand for TEXT
TREE = [
    ("The", 2, "det"),
    ("capital", 5, "nsubj"),
    ("of", 2, "prep"),
    ("Zxqvtlandia", 3, "pobj"),
    ("is", 0, "root"),
    ("unbelievably", 7, "advmod"),
    ("small", 5, "acomp"),
    (".", 5, "punct"),
]


# 我爱中国，他的首都在于 — a hand-written tree (UD labels) for the Chinese example
CHINESE_TREE = [
    ("我", 2, "nsubj"),
    ("爱", 0, "root"),
    ("中国", 2, "obj"),
    ("，", 2, "punct"),
    ("他", 7, "nmod"),
    ("的", 5, "case"),
    ("首都", 8, "nsubj"),
    ("在于", 2, "parataxis"),
]


def conllu(tree=TREE, sep: str = "\t", text: str = TEXT) -> str:
    lines = ["# text = " + text]
    for number, (form, head, relation) in enumerate(tree, start=1):
        lines.append(sep.join([str(number), form, "_", "X", "_", "_", str(head), relation, "_", "_"]))
    return "\n".join(lines) + "\n"


def hand_words(text: str = TEXT, tree=TREE) -> list[tuple[int, int]]:
    """Each word's [start, end) in ``text``, found by hand."""
    spans, at = [], 0
    for form, _, _ in tree:
        start = text.index(form, at)
        spans.append((start, start + len(form)))
        at = start + len(form)
    return spans


def hand_scores(model, text: str = TEXT, tree=TREE):
    """(accuracy[direction][relation] (layers, heads), word attention (layers, heads, words, words),
    token→word list) from transformers' eager attention; pooling by loops over the tokenizer's offsets."""
    encoded = model.tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    spans = hand_words(text, tree)
    token_word = []
    for (start, end), special in zip(encoded["offset_mapping"], encoded["special_tokens_mask"], strict=True):
        word = None
        if not special:
            for index, (ws, we) in enumerate(spans):
                if any(ws <= c < we for c in range(start, end)):
                    word = index
        token_word.append(word)
    _, attentions, _ = eager(model, text)  # (layers, heads, q, k)
    n_layers, n_heads = attentions.shape[:2]
    n = len(tree)
    pooled = np.zeros((n_layers, n_heads, n, n))
    for i in range(n):
        rows = [q for q, w in enumerate(token_word) if w == i]
        for j in range(n):
            cols = [k for k, w in enumerate(token_word) if w == j]
            # to word j: summed over its tokens; from word i: averaged over its tokens
            pooled[:, :, i, j] = attentions[:, :, rows][:, :, :, cols].sum(axis=-1).mean(axis=-1)
    accuracy = {d: {} for d in DIRECTIONS}
    relations = {r for _, h, r in tree if h}
    for layer in range(n_layers):
        for head in range(n_heads):
            for direction in DIRECTIONS:
                right = {r: [] for r in relations}
                for i, (_, h, relation) in enumerate(tree):
                    if h == 0:
                        continue
                    best, guess = 0.0, None
                    for j in range(n):
                        weight = (
                            pooled[layer, head, i, j] if direction == "dependent_to_head" else pooled[layer, head, j, i]
                        )
                        if j != i and weight > best:
                            best, guess = weight, j
                    right[relation].append(guess == h - 1)
                for relation, hits in right.items():
                    accuracy[direction].setdefault(relation, np.zeros((n_layers, n_heads)))[layer, head] = np.mean(hits)
                every = [hit for hits in right.values() for hit in hits]
                accuracy[direction].setdefault("all", np.zeros((n_layers, n_heads)))[layer, head] = np.mean(every)
    return accuracy, pooled, token_word


CASES = [  # [CLS] … [SEP] both ways; <bos> and causal; byte pieces of Chinese characters; a real BPE model
    pytest.param(lambda: tiny("bert"), TEXT, TREE, id="bert"),
    pytest.param(lambda: tiny("llama"), TEXT, TREE, id="llama"),
    pytest.param(lambda: tiny("qwen2"), CHINESE, CHINESE_TREE, id="qwen2-chinese"),
    pytest.param(lambda: packaged("smollm2-135m"), TEXT, TREE, id="smollm2-135m", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("load", "text", "tree"), CASES)
def test_head_accuracies_match_a_hand_computation_from_eager_attention(load, text, tree):
    model = load()
    parse = parse_conllu(text, conllu(tree, text=text))
    assert [(w.start, w.end) for w in parse.words] == hand_words(text, tree)
    trace = capture(model, text, backend="full")
    scores = dependency_scores(trace, parse)
    expected, pooled, token_word = hand_scores(model, text, tree)
    assert scores.owner.tolist() == [-1 if w is None else w for w in token_word]
    assert max(token_word.count(i) for i in range(len(tree))) > 1  # words are split: pooling is exercised
    for layer in range(trace.num_layers()):
        shown = word_attention(trace.attention(layer, None), scores.owner, len(tree))
        np.testing.assert_allclose(shown, pooled[layer], atol=1e-5)
    for direction in DIRECTIONS:
        assert set(scores.accuracy[direction]) == set(expected[direction])
        for relation, table in expected[direction].items():
            np.testing.assert_array_equal(
                scores.accuracy[direction][relation], table, err_msg=f"{direction} {relation}"
            )
    assert scores.counts["all"] == len(tree) - 1  # every word but the root


def test_special_tokens_are_excluded():
    for family in ("bert", "llama"):
        trace = capture(tiny(family), TEXT, backend="full")
        owner = token_words(trace.tokens, parse_conllu(TEXT, conllu()).words)
        special = [t.index for t in trace.tokens if t.special]
        assert special and all(owner[k] == -1 for k in special)
    counts = dependency_scores(capture(tiny("bert"), TEXT, backend="full"), parse_conllu(TEXT, conllu())).counts
    assert counts == {"all": 7, "det": 1, "nsubj": 1, "prep": 1, "pobj": 1, "advmod": 1, "acomp": 1, "punct": 1}


def test_the_qk_source_scores_as_the_full_one():
    parse = parse_conllu(TEXT, conllu())
    full = dependency_scores(capture(tiny("llama"), TEXT, backend="full"), parse)
    rows = dependency_scores(capture(tiny("llama"), TEXT, backend="qk"), parse)  # rows recomputed from q and k
    for direction in DIRECTIONS:
        for relation, table in full.accuracy[direction].items():
            np.testing.assert_array_equal(rows.accuracy[direction][relation], table)


def test_offset_baseline_by_hand():
    parse = parse_conllu(TEXT, conllu())
    scores = dependency_scores(capture(tiny("gpt2"), TEXT, backend="full"), parse)
    # by hand: dependents (index, head index): det 0→1, nsubj 1→4, prep 2→1, pobj 3→2, advmod 5→6, acomp 6→4, punct 7→4
    # offsets that hit: det +1, nsubj +3, prep -1, pobj -1, advmod +1, acomp -2, punct -3
    assert scores.baseline["det"] == (1, 1.0) and scores.baseline["nsubj"] == (3, 1.0)
    assert scores.baseline["pobj"] == (-1, 1.0) and scores.baseline["acomp"] == (-2, 1.0)
    assert scores.baseline["punct"] == (-3, 1.0)
    # all 7 dependents: +1 hits det, advmod (2/7); -1 hits prep, pobj (2/7): a tie, the smaller |offset| and
    # then the first in OFFSETS order (-1) wins
    assert OFFSETS.index(-1) < OFFSETS.index(1)
    assert scores.baseline["all"] == (-1, pytest.approx(2 / 7))


def test_conllu_refusals_are_one_line():
    cases = {
        conllu(sep="  "): "1 tab-separated columns, not 10",
        conllu([(*TREE[0][:1], 2, "det"), ("kapital", 5, "nsubj"), *TREE[2:]]): "'kapital' does not match the text",
        conllu([*TREE[:-1]]): "the text goes on after",
        conllu([*TREE[:4], ("is", 1, "root"), *TREE[5:]]): "no word has head 0",
        conllu([("The", 2, "det"), ("capital", 3, "nsubj"), ("of", 2, "prep"), *TREE[3:]]): "form a cycle",
        conllu([("The", 9, "det"), *TREE[1:]]): "past the sentence",
        conllu([("The", "x", "det"), *TREE[1:]]): "HEAD must be a number",
        conllu([("The", "\u00b2", "det"), *TREE[1:]]): "HEAD must be a number, not '\u00b2'",  # isdigit, not int
        conllu().replace("\n1\t", "\n\u0661\t", 1): "ID must be a number",  # an Arabic-Indic digit one
        "": "has no words",
    }
    for text, message in cases.items():
        with pytest.raises(InputError, match=message) as caught:
            parse_conllu(TEXT, text)
        assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="unknown parser"):
        parse_text(TEXT, "stanza")  # type: ignore[arg-type]


def test_conllu_multiword_range_and_sentences():
    text = "Vamos al mar. Sí."
    rows = [
        "1\tVamos\tir\tVERB\t_\t_\t0\troot\t_\t_",
        "2-3\tal\t_\t_\t_\t_\t_\t_\t_\t_",
        "2\ta\ta\tADP\t_\t_\t4\tcase\t_\t_",
        "3\tel\tel\tDET\t_\t_\t4\tdet\t_\t_",
        "4\tmar\tmar\tNOUN\t_\t_\t1\tobl\t_\t_",
        "5\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_",
        "",
        "1\tSí\tsí\tINTJ\t_\t_\t0\troot\t_\t_",
        "2\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_",
    ]
    parse = parse_conllu(text, "\n".join(rows))
    assert [(w.text, w.start, w.end, w.head) for w in parse.words] == [
        ("Vamos", 0, 5, None), ("a", 6, 8, 3), ("el", 8, 8, 3), ("mar", 9, 12, 0), (".", 12, 13, 0),
        ("Sí", 14, 16, None), (".", 16, 17, 5),
    ]  # fmt: skip


def test_chinese_parts_of_speech_by_jieba():
    parse = parse_jieba(CHINESE)
    assert parse.parser == "jieba" and not parse.dependencies
    assert "".join(w.text for w in parse.words) == CHINESE
    for word in parse.words:
        assert CHINESE[word.start : word.end] == word.text and word.head is None and word.relation is None
    tags = {w.text: w.pos for w in parse.words}
    # jieba's dictionary (ICTCLAS tags): 我 r (pronoun), 爱 v (verb), 中国 ns (place name), 的 uj (particle)
    assert tags["我"] == "r" and tags["爱"] == "v" and tags["中国"] == "ns" and tags["的"] == "uj"
    if not any(name.startswith("zh_") for name in _installed()):
        assert parse_text(CHINESE).parser == "jieba"
    with pytest.raises(InputError, match="no dependency relations"):
        dependency_scores(capture(tiny("qwen2"), CHINESE), parse)


def _installed() -> list[str]:
    if importlib.util.find_spec("spacy") is None:
        return []
    import spacy.util

    return list(spacy.util.get_installed_models())


def test_english_parse_by_spacy_or_the_install_command():
    if not any(name.startswith("en_") for name in _installed()):
        with pytest.raises(ParserMissingError, match=r"pip install 'attnscope\[syntax\]'"):
            parse_text(ENGLISH)
        pytest.skip("no spaCy English pipeline installed (pip install 'attnscope[syntax]')")
    parse = parse_text(ENGLISH)
    assert parse.parser == "spacy" and parse.dependencies and parse.language == "en"
    # the parse of "The capital of France is", written by hand
    assert [(w.text, w.start, w.head, w.relation, w.pos) for w in parse.words] == [
        ("The", 0, 1, "det", "DET"), ("capital", 4, 4, "nsubj", "NOUN"), ("of", 12, 1, "prep", "ADP"),
        ("France", 15, 2, "pobj", "PROPN"), ("is", 22, None, "root", "AUX"),
    ]  # fmt: skip


def test_tokens_of_no_word_and_shared_tokens():
    from attnscope.analysis.parsers import ParsedWord
    from attnscope.capture.tokens import Token

    words = [ParsedWord(0, "ab", 0, 2, 1, "x", "X"), ParsedWord(1, "c", 2, 3, None, "root", "X")]
    tokens = [Token(0, 0, "<s>", None, None, True), Token(1, 1, "abc", 0, 3, False), Token(2, 2, " ", 3, 4, False),
              Token(3, 3, "", 4, 4, False)]  # fmt: skip
    # "abc" holds two characters of word 0 and one of word 1: word 0; a space holds no word
    assert token_words(tokens, words).tolist() == [-1, 0, -1, -1]


def test_conllu_tree_check_is_linear_and_long_parses_are_bounded():
    from attnscope.analysis.parsers import MAX_CONLLU_WORDS, _check_tree

    n = 20_000
    chain = [*range(2, n + 1), 0]  # word k depends on k + 1: the deepest tree, O(n²) walked naively
    _check_tree(chain, 1)  # a valid tree: no error (speed is not asserted; the quadratic walk took 26 s via the API)
    with pytest.raises(InputError, match="the heads of word 1 form a cycle"):
        _check_tree([*chain[:-2], 1, 0], 1)  # word n − 1 points back to word 1: a cycle through the chain
    with pytest.raises(InputError, match=f"more than {MAX_CONLLU_WORDS} word lines"):
        parse_conllu("a", "\n".join(["1\ta\t_\t_\t_\t_\t0\troot\t_\t_"] * (MAX_CONLLU_WORDS + 1)))


def test_word_attention_rows_is_the_sum_over_tokens_by_hand():
    from attnscope.analysis.syntax import word_attention_rows, word_membership

    rng = np.random.default_rng(0)
    owner = np.array([-1, 0, 0, 1, -1, 2, 2, 2])
    chunk = rng.random((3, 4, len(owner)))  # (heads, rows, keys) for token rows 2..5
    rows = np.arange(2, 6)
    expected = np.zeros((3, 3, 3))
    for h in range(3):
        for r, row in enumerate(rows):
            for key in range(len(owner)):
                if owner[row] >= 0 and owner[key] >= 0:
                    expected[h, owner[row], owner[key]] += chunk[h, r, key]
    np.testing.assert_allclose(word_attention_rows(chunk, word_membership(owner, 3), rows), expected, atol=1e-12)
