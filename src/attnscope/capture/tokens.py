"""Tokens with exact character spans into the original text.

Tokenizers report character offsets, but byte-level tokenizers give every piece of a split
character the same span, and some trim the leading space off a word piece that holds it. The
spans here are normalised so that they never overlap and follow token order:

- a character split over several byte pieces belongs to the first piece; the later pieces get an
  empty span at the character's end (``start == end``), so nothing is counted twice;
- a piece that carries a leading space in the vocabulary (``Ġ``/``▁``) also covers that space;
- special tokens inserted by the tokenizer (BOS, [CLS], ...) have ``start = end = None``; special
  tokens written in the text itself (chat markers) keep their span.

So ``text[start:end]`` of consecutive tokens, with the uncovered gaps between them, rebuilds the
original text exactly, Chinese and emoji included.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attnscope.errors import InputError, TooLongError

_SPACE_MARKERS = ("Ġ", "▁")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# The one text-size limit of the library, the CLI and the server (refused before tokenizing):
# far beyond what fits a packaged model's context, enough for 128k-token inputs of large models.
MAX_TEXT_CHARS = 1_000_000


@dataclass(frozen=True)
class Token:
    index: int
    id: int
    text: str  # as displayed: the original characters it covers, or the special token's string
    start: int | None  # character offsets into the original text, [start, end)
    end: int | None
    special: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Token:
        return cls(**{key: data[key] for key in ("index", "id", "text", "start", "end", "special")})


@dataclass(frozen=True)
class Part:
    """A named character span of the text (a chat turn, or a user-named region)."""

    name: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Encoding:
    """A text's token ids as the tokenizer gives them, before the spans are normalised: what the
    forward pass needs (:attr:`ids`), so that :func:`spans` (Python work per token) can run while the
    device computes."""

    text: str
    ids: list[int]
    offsets: np.ndarray  # (tokens, 2) int64 character offsets as the tokenizer reports them
    special: np.ndarray  # (tokens,) bool: a special token (by the tokenizer's mask or its id)
    tokenizer: Any


def encode(tokenizer: Any, text: str, *, add_special_tokens: bool = True) -> Encoding:
    """The tokenizer's ids, offsets and special-token mask of ``text`` (one call of the tokenizer)."""
    encoding = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_attention_mask=False,
        verbose=False,
    )
    ids: list[int] = [int(i) for i in encoding["input_ids"]]
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(len(ids), 2)
    special = np.asarray(encoding["special_tokens_mask"], dtype=bool).reshape(len(ids))
    special_ids = np.asarray(sorted(set(getattr(tokenizer, "all_special_ids", []) or [])), dtype=np.int64)
    if len(ids) and len(special_ids):
        special |= np.isin(np.asarray(ids, dtype=np.int64), special_ids)
    return Encoding(text, ids, offsets, special, tokenizer)


def spans(encoding: Encoding) -> list[Token]:
    """The tokens of ``encoding`` with normalised character spans (see the module docstring).

    Each kept token starts at ``max(start, covered)`` and ends at ``max(end, that start)``, where
    ``covered`` is the furthest character an earlier kept token reached: a running maximum, so the
    spans are computed for all tokens at once; only a token after a whitespace gap looks at its
    vocabulary piece (does it carry the space?)."""
    text, ids = encoding.text, encoding.ids
    n = len(ids)
    if not n:
        return []
    start, end = encoding.offsets[:, 0], encoding.offsets[:, 1]
    dropped = encoding.special & (start == end)  # inserted special tokens: no span
    reach = np.where(dropped, 0, np.maximum(start, end))
    covered = np.concatenate([[0], np.maximum.accumulate(reach)[:-1]])  # (tokens,) before each token
    first = np.maximum(start, covered)
    last = np.maximum(end, first)
    gaps = np.flatnonzero(~dropped & (first > covered))
    if len(gaps):
        pieces = encoding.tokenizer.convert_ids_to_tokens([ids[i] for i in gaps])
        for i, piece in zip(gaps.tolist(), pieces, strict=True):
            if text[covered[i] : first[i]].isspace() and str(piece).startswith(_SPACE_MARKERS):
                first[i] = covered[i]
    specials = np.flatnonzero(dropped)
    inserted = encoding.tokenizer.convert_ids_to_tokens([ids[i] for i in specials])
    names = dict(zip(specials.tolist(), inserted, strict=True))
    flags, lows, highs = encoding.special.tolist(), first.tolist(), last.tolist()
    return [
        Token(i, ids[i], str(names[i]), None, None, True)
        if i in names
        else Token(i, ids[i], text[lows[i] : highs[i]], lows[i], highs[i], flags[i])
        for i in range(n)
    ]


def tokenize(tokenizer: Any, text: str, *, add_special_tokens: bool = True) -> list[Token]:
    """Tokens of ``text`` with normalised character spans (see the module docstring)."""
    return spans(encode(tokenizer, text, add_special_tokens=add_special_tokens))


def check_text(text: Any, *, allow_blank: bool = True) -> str:
    """The text as ``str``, or a clear :class:`InputError` (bytes must be valid UTF-8).

    ``allow_blank=False`` also refuses a text of whitespace only: the CLI and the server pass it for
    the prompts users type (a blank prompt is a slip, never a question); the library accepts such
    texts, and a continuation or stop string may well be a space or a newline. Control characters
    are text like any other: they are analysed, not refused."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"text is not valid UTF-8 (byte {error.start}: {error.reason})") from None
    if not isinstance(text, str):
        raise InputError(f"text must be a string, not {type(text).__name__}")
    if not text:
        raise InputError("text is empty")
    if not allow_blank and text.isspace():
        raise InputError(f"text is blank: {len(text):,} whitespace characters and nothing else")
    if len(text) > MAX_TEXT_CHARS:
        raise TooLongError(f"text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    surrogate = _LONE_SURROGATE.search(text)
    if surrogate:
        raise InputError(
            f"text holds a lone surrogate (U+{ord(surrogate.group()):04X}) at character {surrogate.start()}: "
            "not valid Unicode"
        )
    return text


def render_chat(
    tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
) -> tuple[str, list[Part]]:
    """The chat template's rendering of ``messages`` and each message's span in it (role as name)."""
    if not messages:
        raise InputError("messages are empty")
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise InputError("each message needs a 'role' and a 'content'")
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("this model's tokenizer has no chat template; pass plain text instead")
    from jinja2 import TemplateError

    try:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except TemplateError as error:  # the template's own refusal (a role it does not know, ...)
        raise InputError(f"the chat template refused these messages: {error}") from None
    parts: list[Part] = []
    cursor = 0
    for message in messages:
        content = str(message["content"])
        where = rendered.find(content, cursor)
        if where < 0:
            raise InputError(f"the chat template changed the content of a {message['role']!r} message")
        parts.append(Part(str(message["role"]), where, where + len(content)))
        cursor = where + len(content)
    return rendered, parts


def generated_tokens(
    tokenizer: Any, context: list[int], new_ids: list[int], *, first_index: int, offset: int
) -> tuple[str, list[Token]]:
    """The text of generated ``new_ids`` and their tokens, spans counted from ``offset``.

    Decoded incrementally, each id against a few ids before it (``context``: the prompt's last ids),
    the way streaming servers do: a token adds the characters that the decoding gains with it. A
    token holding only part of a character's bytes adds nothing yet; it shares the span of the
    token that completes the character (as the tokenizer's own offsets do). Special tokens (end of
    sequence, chat markers) add no text and have no span."""
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    pieces: list[str] = tokenizer.convert_ids_to_tokens(list(new_ids))
    window = [i for i in context[-6:] if i not in special_ids]
    prefix, read = 0, len(window)  # decode window[prefix:], of which [prefix:read] was shown already
    text = ""
    tokens: list[Token] = []
    pending: list[int] = []  # tokens waiting for the rest of their character

    def decode(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    for number, (token_id, piece) in enumerate(zip(new_ids, pieces, strict=True)):
        index = first_index + number
        if token_id in special_ids:
            tokens.append(Token(index, int(token_id), str(piece), None, None, True))
            continue
        window.append(int(token_id))
        before, after = decode(window[prefix:read]), decode(window[prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            start = offset + len(text)
            text += after[len(before) :]
            shown, end = text[start - offset :], offset + len(text)
            tokens.append(Token(index, int(token_id), shown, start, end, False))
            for waiting in pending:  # the tokens holding the first bytes of this character share its span
                tokens[waiting] = Token(tokens[waiting].index, tokens[waiting].id, shown, start, end, False)
            pending = []
            prefix, read = read, len(window)
        else:
            pending.append(len(tokens))
            tokens.append(Token(index, int(token_id), "", offset + len(text), offset + len(text), False))
    return text, tokens
