"""Which heads track dependency relations (Clark et al. 2019, "What Does BERT Look At?", §4.2).

Method, as the paper's code does it:

1. **Word-level attention** from token-level attention: attention *to* a word split into several
   tokens is the sum over its tokens (rows still sum to what they did); attention *from* a split
   word is the mean of its tokens' rows. A token belongs to the word that holds most of its
   characters (ties: the first); a byte piece with an empty span continues the piece before it.
2. **Excluded tokens**: special tokens (BOS, [CLS], [SEP], chat markers) and tokens that cover no
   word's characters (a lone space) belong to no word. Their columns are dropped after pooling
   without renormalising — the paper's ``attn[1:-1, 1:-1]`` after its word conversion — so
   attention to them is simply not a candidate. A word's attention to itself is not a candidate
   either (the paper zeroes the diagonal).
3. **Prediction** of a head (layer, head): for each word, the most-attended other word. Direction
   ``dependent_to_head``: the word that the dependent attends to most is its syntactic head.
   Direction ``head_to_dependent`` (the paper's "transpose"): the word that attends most to the
   dependent is its head. A row with no weight on any candidate (the first word of a causal model)
   predicts nothing and counts as wrong.
4. **Accuracy** per relation: the share of that relation's dependents whose prediction is their
   head. Roots (no head word) are not scored; words with no token of their own are not scored.
5. **Baseline** per relation: the best fixed offset (the head is the word ``o`` places away, ``o`` in
   ±1..±3), scored on the same dependents; an offset past either end of the text predicts nothing
   (the paper clamps to ROOT or the last word instead).

Everything here is numpy over a :class:`Trace` and a :class:`Parse`; no model runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnscope.analysis.parsers import Parse, ParsedWord
from attnscope.capture.reads import CHUNK_ELEMENTS
from attnscope.capture.tokens import Token
from attnscope.capture.trace import Trace
from attnscope.errors import InputError
from attnscope.progress import Progress, report

OFFSETS = (-3, -2, -1, 1, 2, 3)
DIRECTIONS = ("dependent_to_head", "head_to_dependent")


def token_words(tokens: list[Token], words: list[ParsedWord]) -> np.ndarray:
    """(tokens,) the word each token belongs to, -1 for excluded tokens (see the module docstring)."""
    length = max([w.end for w in words] + [t.end or 0 for t in tokens] + [0])
    char_word = np.full(length + 1, -1)  # (characters,) the word holding each character
    for word in words:
        char_word[word.start : word.end] = word.index
    owner = np.full(len(tokens), -1)
    for position, token in enumerate(tokens):
        if token.special or token.start is None or token.end is None:
            continue
        if token.start == token.end:  # a later byte piece of a split character: the character's word
            owner[position] = char_word[token.start - 1] if token.start > 0 else -1
            continue
        held = char_word[token.start : token.end]
        held = held[held >= 0]
        if held.size:
            owner[position] = int(np.bincount(held).argmax())
    return owner


def word_attention(attention: np.ndarray, owner: np.ndarray, n_words: int) -> np.ndarray:
    """(heads, words, words) word-level attention from (heads, query, key) token attention: columns
    summed over a word's tokens, rows averaged over them; words without tokens get zero rows."""
    counts = np.bincount(owner[owner >= 0], minlength=n_words)  # (words,) tokens per word
    summed = word_attention_rows(attention, word_membership(owner, n_words), np.arange(len(owner)))
    return summed / np.maximum(counts, 1)[None, :, None]


def most_attended(weights: np.ndarray, scorable: np.ndarray) -> np.ndarray:
    """(heads, words) for (heads, words, words) word attention: per row the most-attended other
    scorable word, -1 when the row puts no weight on any (or the row's word is not scorable)."""
    n_words = weights.shape[-1]
    masked = np.where(scorable[None, None, :], weights, -np.inf)
    masked[:, np.arange(n_words), np.arange(n_words)] = -np.inf
    best = masked.argmax(axis=-1)  # ties: the first, as numpy's argmax (and the paper) take it
    value = np.take_along_axis(masked, best[..., None], axis=-1)[..., 0]
    return np.where((value > 0) & scorable[None, :], best, -1)


@dataclass
class SyntaxScores:
    """Accuracies of every (layer, head) per relation and direction, and the offset baselines."""

    relations: list[str]  # sorted by count, most frequent first
    counts: dict[str, int]  # scored dependents per relation ("all": every scored dependent)
    accuracy: dict[str, dict[str, np.ndarray]]  # direction -> relation -> (layers, heads); NaN: not captured
    baseline: dict[str, tuple[int, float]]  # relation -> (best offset, its accuracy)
    owner: np.ndarray  # (tokens,) word of each token, -1 excluded
    scorable: np.ndarray  # (words,) bool: the word has at least one token
    predictions: dict[str, np.ndarray]  # direction -> (layers, heads, words) predicted head word, -1 none
    notes: list[str]


def dependents(parse: Parse, scorable: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The scored dependents: (indexes, their head words, their relations)."""
    chosen = [w for w in parse.words if w.head is not None and scorable[w.index] and scorable[w.head]]
    return (
        np.array([w.index for w in chosen], dtype=int),
        np.array([w.head for w in chosen], dtype=int),
        [w.relation or "" for w in chosen],
    )


def offset_baseline(n_words: int, dependent: np.ndarray, head: np.ndarray) -> dict[int, np.ndarray]:
    """{offset: (dependents,) bool} whether word ``dependent + offset`` is the head."""
    result = {}
    for offset in OFFSETS:
        guess = dependent + offset
        result[offset] = (guess >= 0) & (guess < n_words) & (guess == head)
    return result


def dependency_scores(
    trace: Trace, parse: Parse, *, stack: str | None = None, progress: Progress | None = None
) -> SyntaxScores:
    """Clark et al.'s dependency accuracies of every head of ``trace`` against ``parse``."""
    if not parse.dependencies:
        raise InputError(f"the {parse.parser} parse has no dependency relations to score heads against")
    name = stack or ("encoder" if "encoder" in trace.stacks() else trace.default_stack)
    tokens = trace.query_tokens(name)
    if tokens != trace.key_tokens(name):
        raise InputError(f"the {name} stack attends across two texts; syntax needs self-attention")
    owner = token_words(tokens, parse.words)
    n_words = len(parse.words)
    scorable = np.zeros(n_words, dtype=bool)
    scorable[owner[owner >= 0]] = True
    dependent, head, relation_of = dependents(parse, scorable)
    if not dependent.size:
        raise InputError("the parse has no dependent word whose head has a token of its own: nothing to score")
    n_layers, n_heads = trace.num_layers(name), trace.num_heads(name)
    predictions = {d: np.full((n_layers, n_heads, n_words), -1) for d in DIRECTIONS}
    captured = trace.captured_layers(name)
    step = max(1, CHUNK_ELEMENTS // max(1, n_heads * len(tokens)))  # rows per read: a bounded working set
    membership = word_membership(owner, n_words)  # (tokens, words), built once for every layer and chunk
    counts = np.bincount(owner[owner >= 0], minlength=n_words)  # (words,) tokens per word
    for done, layer in enumerate(captured):
        report(progress, done, len(captured), "syntax")
        weights = np.zeros((n_heads, n_words, n_words))
        for first in range(0, len(tokens), step):
            rows = np.arange(first, min(first + step, len(tokens)))
            chunk = trace.attention(layer, None, rows=rows, stack=name)  # (heads, rows, key)
            weights += word_attention_rows(chunk, membership, rows)
        weights /= np.maximum(counts, 1)[None, :, None]
        predictions["dependent_to_head"][layer] = most_attended(weights, scorable)
        predictions["head_to_dependent"][layer] = most_attended(weights.transpose(0, 2, 1), scorable)
    report(progress, len(captured), len(captured), "syntax")
    groups: dict[str, np.ndarray] = {"all": np.arange(dependent.size)}
    for relation in sorted(set(relation_of)):
        groups[relation] = np.array([k for k, r in enumerate(relation_of) if r == relation], dtype=int)
    relations = sorted((r for r in groups if r != "all"), key=lambda r: (-groups[r].size, r))
    accuracy: dict[str, dict[str, np.ndarray]] = {d: {} for d in DIRECTIONS}
    missing = np.setdiff1d(np.arange(n_layers), captured)
    for direction in DIRECTIONS:
        hits = predictions[direction][:, :, dependent] == head[None, None, :]  # (layers, heads, dependents)
        for relation, members in groups.items():
            table = hits[:, :, members].mean(axis=-1)
            table[missing] = np.nan
            accuracy[direction][relation] = table
    offsets = offset_baseline(n_words, dependent, head)
    baseline = {}
    for relation, members in groups.items():
        scores = {offset: float(right[members].mean()) for offset, right in offsets.items()}
        best = max(OFFSETS, key=lambda o: (scores[o], -abs(o)))
        baseline[relation] = (best, scores[best])
    notes = _notes(trace, tokens, owner, scorable, parse, name)
    counts_out = {relation: int(members.size) for relation, members in groups.items()}
    return SyntaxScores(relations, counts_out, accuracy, baseline, owner, scorable, predictions, notes)


def word_membership(owner: np.ndarray, n_words: int) -> np.ndarray:
    """(tokens, words) 1 where the token belongs to the word (excluded tokens: a zero row)."""
    membership = np.zeros((len(owner), n_words))
    kept = owner >= 0
    membership[np.flatnonzero(kept), owner[kept]] = 1.0
    return membership


def word_attention_rows(chunk: np.ndarray, membership: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(heads, words, words) sums (not yet averaged) of word-level rows from the (heads, rows, key)
    token rows ``rows``; ``membership`` from :func:`word_membership`. Two matmuls (BLAS), not einsum:
    the einsum of the same sum took seconds per layer at a thousand tokens."""
    to_words = chunk.astype(np.float64) @ membership  # (heads, rows, words)
    return membership[rows].T @ to_words  # (words, rows) @ (heads, rows, words) → (heads, words, words)


def _notes(
    trace: Trace, tokens: list[Token], owner: np.ndarray, scorable: np.ndarray, parse: Parse, stack: str
) -> list[str]:
    notes = list(parse.notes)
    special = [t.text for t in tokens if t.special or t.start is None]
    if special:
        notes.append(f"special tokens excluded (their columns dropped, rows not renormalised): {', '.join(special)}")
    unscored = [parse.words[k].text for k in np.flatnonzero(~scorable)]
    if unscored:
        notes.append(f"words sharing a token with a neighbour (not scored): {', '.join(unscored)}")
    if stack == "decoder":
        notes.append(
            "causal attention: a word attends only to earlier words, so dependent → head finds heads on the "
            "left and head → dependent finds heads on the right"
        )
    return notes
