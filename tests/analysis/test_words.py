"""One definition of a whole word for rules, counterfactual edits and bias suites (analysis/words.py),
checked on hand-made cases in several scripts — and that the three callers agree on it."""

from __future__ import annotations

import pytest

from attnscope.analysis.bias_suite import find_word
from attnscope.analysis.edits import apply_edits
from attnscope.analysis.rule_spans import find_text
from attnscope.analysis.words import find_words, whole_word


@pytest.mark.parametrize(
    ("text", "word", "starts"),
    [
        ("The nurse said he left", "he", [15]),  # not inside "The"
        ("he's here", "he", [0]),  # an apostrophe ends a word
        ("he_x and he2", "he", []),  # "_" and digits continue one
        ("我爱中国，他的首都在于", "中国", [2]),  # Han: no spaces, matches anywhere
        ("กินยาแล้ว", "ยา", [3]),  # Thai: written without spaces
        ("ｶﾀｶﾅ", "ﾀ", [1]),  # half-width katakana
        ("Привет мир", "мир", [7]),  # Cyrillic: spaced
        ("mirror мир", "ми", []),
        ("a-b a-b", "a-b", [0, 4]),  # left to right
        ("aaa", "aa", []),  # inside a longer word at both places
    ],
)
def test_whole_words_in_every_script(text, word, starts):
    assert find_words(text, word) == starts
    assert all(whole_word(text, s, s + len(word)) for s in starts)


def test_the_three_callers_agree():
    text = "The nurse said he's late; he_x came. 他说她来了。"
    for word in ("he", "nurse", "他", "late"):
        expected = find_words(text, word)
        assert [start for start, _ in find_text(text, word)] == expected, word  # rules
        edited = apply_edits(text, [{"delete": word}])  # counterfactual edits: every whole-word occurrence
        assert len(edited.text) == len(text) - len(word) * len(expected), word
    assert find_words(text, "he") == [15]
    assert find_word(text, "nurse") == 4 and find_word(text, "他") == 37  # bias suites: the first one
    assert find_word(text, "he") == -1  # a suite's names join on apostrophes and hyphens: "he's" is one word
    assert find_word("Jean-Luc said", "Luc") == -1 and find_words("Jean-Luc said", "Luc") == [5]
