"""Probe inputs built from a model's own vocabulary, run through the model (the induction probe of head metrics)."""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.errors import UnsupportedError


def repeated_random_words(tokenizer: Any, length: int = 40, *, seed: int = 0) -> tuple[str, int]:
    """A text of ``length`` random single-token words, written twice; returns (text, period).

    Words are vocabulary entries that decode to a space plus letters and re-tokenize to themselves,
    so the text is exactly ``2 x length`` tokens (plus the tokenizer's own specials).
    """
    rng = np.random.default_rng(seed)
    vocab = len(tokenizer)
    words: list[str] = []
    for token_id in rng.permutation(vocab):
        text = tokenizer.decode([int(token_id)])
        is_word = len(text) > 3 and text[0] == " " and text[1:].isalpha() and text not in words
        if is_word and tokenizer(text, add_special_tokens=False)["input_ids"] == [int(token_id)]:
            words.append(text)
            if len(words) == length:
                return "".join(words) * 2, length
    raise UnsupportedError(f"the vocabulary has fewer than {length} single-token words")


def measure_induction(
    model: Any, *, backend: str = "auto", progress: Any = None
) -> tuple[np.ndarray | None, str | None]:
    """(layers, heads) induction scores of ``model`` on :func:`repeated_random_words`, or None and a
    note saying why they were not measured (encoders, vocabularies without enough words)."""
    from attnscope.analysis.heads import induction_scores
    from attnscope.capture.engine import capture

    if model.kind != "causal":
        return None, "induction is measured on causal models only"
    try:
        probe, period = repeated_random_words(model.tokenizer)
    except UnsupportedError as error:
        return None, f"induction not measured: {error}"
    trace = capture(model, probe, backend=backend, predict="none", progress=progress)  # type: ignore[arg-type]
    return induction_scores(trace, period), None
