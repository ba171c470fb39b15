"""Token spans rebuild the original text exactly and agree with the tokenizer's own decoding."""

from __future__ import annotations

import pytest

from attnscope.capture.tokens import Token, tokenize
from tests.conftest import MIXED_TEXTS, packaged, tiny


def rebuild(text: str, tokens: list[Token]) -> str:
    """The text from token spans plus the gaps no token covers."""
    pieces, cursor = [], 0
    for token in tokens:
        if token.start is None:
            continue
        assert token.start >= cursor, f"token {token.index} overlaps the previous one"
        assert token.end is not None and token.end >= token.start
        pieces.append(text[cursor : token.start])
        pieces.append(text[token.start : token.end])
        assert token.text == text[token.start : token.end]
        cursor = token.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def check_against_decoding(tokenizer, text: str, tokens: list[Token]) -> None:
    """Byte-level tokenizers: decoding the first i+1 ids gives the text up to token i's end,
    except for a character still incomplete (shown by the decoder as U+FFFD)."""
    ids = [t.id for t in tokens if not t.special]
    real = [t for t in tokens if not t.special]
    assert "".join(t.text for t in real) == text, "byte-level tokens cover every character"
    for count, token in enumerate(real, start=1):
        decoded = tokenizer.decode(ids[:count], clean_up_tokenization_spaces=False)
        prefix = text[: token.end]
        if decoded.endswith("\ufffd"):
            assert decoded.rstrip("\ufffd") == prefix[: len(decoded.rstrip("\ufffd"))]
        else:
            assert decoded == prefix, (count, decoded, prefix)


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_tiny_byte_level_spans_rebuild_the_text(text):
    model = tiny("llama")
    tokens = tokenize(model.tokenizer, text)
    assert tokens[0].special and tokens[0].start is None  # <bos> inserted by the tokenizer
    assert rebuild(text, tokens) == text
    check_against_decoding(model.tokenizer, text, tokens)


def test_split_characters_belong_to_their_first_piece():
    tokens = tokenize(tiny("gpt2").tokenizer, "中")  # one character, three byte tokens
    assert [(t.start, t.end, t.text) for t in tokens] == [(0, 1, "中"), (1, 1, ""), (1, 1, "")]


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_smollm2_spans_rebuild_the_text(text):
    model = packaged("smollm2-135m")
    tokens = tokenize(model.tokenizer, text)
    assert rebuild(text, tokens) == text
    check_against_decoding(model.tokenizer, text, tokens)


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_gemma3_sentencepiece_spans_rebuild_the_text(text):
    model = packaged("gemma3-270m")
    tokens = tokenize(model.tokenizer, text)
    assert tokens[0].special and tokens[0].start is None  # <bos>
    assert rebuild(text, tokens) == text
    check_against_decoding(model.tokenizer, text, tokens)


def test_leading_space_belongs_to_the_word_piece():
    tokens = tokenize(packaged("smollm2-135m").tokenizer, "The capital of France is")
    assert [t.text for t in tokens] == ["The", " capital", " of", " France", " is"]
    assert [(t.start, t.end) for t in tokens] == [(0, 3), (3, 11), (11, 14), (14, 21), (21, 24)]


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_wordpiece_spans_rebuild_the_text(text):
    model = packaged("minilm-l6")
    tokens = tokenize(model.tokenizer, text)
    assert tokens[0].text == "[CLS]" and tokens[0].special and tokens[0].start is None
    assert tokens[-1].text == "[SEP]" and tokens[-1].special
    assert rebuild(text, tokens) == text
    pieces = model.tokenizer.convert_ids_to_tokens([t.id for t in tokens])
    normalize = model.tokenizer.backend_tokenizer.normalizer.normalize_str  # lower-case, strip accents
    for token, piece in zip(tokens, pieces, strict=True):
        if not token.special and piece != "[UNK]":
            # the span, normalised as the tokenizer does, is the piece without its continuation marker
            assert normalize(token.text).strip() == piece.removeprefix("##")  # BERT pads CJK with spaces
