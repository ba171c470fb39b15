"""Counterfactuals: edits and character maps, token alignment by characters, and the differences of two
runs checked against two independent eager forwards of plain ``transformers``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.analysis.counterfactual import align_by_characters, head_shift, row_shift, score_shift
from attnscope.analysis.edits import (
    Edit,
    apply_edits,
    edit_from_dict,
    parse_insert,
    parse_replace,
)
from attnscope.analysis.swaps import swap_edits
from attnscope.capture.tokens import Token
from attnscope.errors import InputError
from attnscope.methods.counterfactual import counterfactual
from attnscope.render.counterfactual import counterfactual_json, counterfactual_text
from tests.conftest import CHINESE, tiny


def check_map(edited) -> None:
    """Every mapped character is the original character it says it is; every new one is in a change."""
    inverse = edited.original_to_edited()
    for position, source in enumerate(edited.char_map):
        if source is not None:
            assert edited.text[position] == edited.original[source]
            assert inverse[source] == position
    new = {p for c in edited.changes for p in range(c.edited_start, c.edited_start + len(c.new))}
    assert new == {p for p, s in enumerate(edited.char_map) if s is None}


# --- edits and character maps ------------------------------------------------------------------
def test_replace_every_whole_word_by_default_and_keep_the_character_map():
    edited = apply_edits("The doctor said he thinks he is", [parse_replace("he=she")])
    assert edited.text == "The doctor said she thinks she is"  # not "Tshe": whole words only
    assert [(c.start, c.end, c.new) for c in edited.changes] == [(16, 18, "she"), (26, 28, "she")]
    assert edited.char_map[:16] == tuple(range(16))
    assert edited.char_map[16:19] == (None, None, None)
    assert edited.char_map[19:27] == tuple(range(18, 26))
    assert edited.original_to_edited()[16:18] == [None, None]
    check_map(edited)
    inside = apply_edits("The he", [parse_replace("he=she", words=False)])
    assert inside.text == "Tshe she"
    check_map(inside)


@pytest.mark.parametrize(
    ("occurrence", "expected"),
    [("all", "X X X X"), ("first", "X a a a"), ("last", "a a a X"), (2, "a X a a"), ("3", "a a X a")],
)
def test_which_occurrences_are_replaced(occurrence, expected):
    edited = apply_edits("a a a a", [Edit("replace", "a", "X", occurrence=occurrence)])
    assert edited.text == expected
    check_map(edited)


def test_chinese_replace_and_swap():
    edited = apply_edits(CHINESE, [Edit("replace", "他", "她")])
    assert edited.text == "我爱中国，她的首都在于"
    assert edited.char_map == (0, 1, 2, 3, 4, None, 6, 7, 8, 9, 10)
    swapped = apply_edits(CHINESE, swap_edits(CHINESE, "gender"))
    assert swapped.text == edited.text and swapped.char_map == edited.char_map
    longer = apply_edits("他的爸爸是男人", swap_edits("他的爸爸是男人"))
    assert longer.text == "她的妈妈是女人"  # the longest term first: 男人, not 男
    check_map(longer)


def test_gender_swap_keeps_case_and_swaps_both_ways_at_once():
    text = "He told his son that she saw Him; the theme is HIS."
    edited = apply_edits(text, swap_edits(text))
    assert edited.text == "She told her daughter that he saw Her; the theme is HER."
    check_map(edited)


def test_gender_swap_turns_her_into_his_and_back_into_her():
    """The table reads "her" (possessive or objective) as possessive: her → his, in every case form,
    while his → her and him → her. Chinese has one term each way (他 ↔ 她)."""
    text = "Her mother gave her book to HER and to him; his too."
    edited = apply_edits(text, swap_edits(text))
    assert edited.text == "His father gave his book to HIS and to her; her too."
    check_map(edited)
    back = apply_edits(edited.text, swap_edits(edited.text))
    assert back.text == "Her mother gave her book to HER and to his; his too."  # him → her → his: no round trip
    assert [(e.old, e.new) for e in swap_edits("her")] == [("her", "his")]
    assert [(e.old, e.new) for e in swap_edits("His Him")] == [("His", "Her"), ("Him", "Her")]
    chinese = "她说他的书是她的"
    assert apply_edits(chinese, swap_edits(chinese)).text == "他说她的书是他的"
    assert apply_edits("他说她的书是他的", swap_edits("他说她的书是他的")).text == chinese


def test_every_term_two_pairs_name_has_one_chosen_counterpart():
    from attnscope.analysis.swaps import SWAP_CHOICES, SWAP_TABLES, swap_counterparts

    for table, pairs in SWAP_TABLES.items():
        counterparts = swap_counterparts(table)
        named = [term for pair in pairs for term in pair]
        twice = {term for term in named if named.count(term) > 1}
        assert twice == set(SWAP_CHOICES.get(table, {})), table
        for left, right in pairs:  # each pair swaps both ways, but for the terms given a choice
            assert counterparts[left] == right or left in twice
            assert counterparts[right] == left or right in twice
    assert swap_counterparts("gender")["her"] == "his"


def test_insert_delete_and_several_edits_on_original_positions():
    text = "the cat sat on the mat"
    edits = [
        parse_insert("after:cat= big"),
        parse_insert("0=So, "),
        Edit("delete", " on the mat"),
        parse_replace("sat=slept"),
        parse_insert("before:sat=then "),
    ]
    edited = apply_edits(text, edits)
    # every edit is placed on the original's characters, whatever the order they were given in
    assert edited.text == "So, the cat big then slept"
    check_map(edited)
    assert [c.edit for c in edited.changes] == [1, 0, 4, 3, 2]
    same_point = apply_edits("ab", [parse_insert("1=X"), parse_insert("1=Y")])
    assert same_point.text == "aXYb"  # insertions at one point keep their order


def test_the_rules_hint_and_the_json_forms_are_edits():
    assert apply_edits("Paris is in France", [edit_from_dict({"remove": " in France"})]).text == "Paris is"
    assert edit_from_dict({"replace": "he", "with": "she", "occurrence": "last"}) == Edit(
        "replace", "he", "she", occurrence="last"
    )
    assert edit_from_dict({"insert": "!", "at": "after:Paris"}).at == "after:Paris"
    edit = Edit("insert", new=" big", at="after:cat", occurrence=1)
    assert edit_from_dict(edit.to_dict()) == edit
    pinned = apply_edits("he and he", [Edit("replace", "he", "she", start=7)])
    assert pinned.text == "he and she"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: apply_edits("the cat", [parse_replace("dog=cow")]), "does not occur"),
        (lambda: apply_edits("the cat", [parse_replace("cat=x"), Edit("delete", "the cat")]), "overlap"),
        (lambda: apply_edits("cat", [Edit("delete", "cat")]), "empty"),
        (lambda: apply_edits("a b", [Edit("delete", "a"), Edit("delete", "b")]), "empty"),
        (lambda: apply_edits("the cat", []), "no edit"),
        (lambda: apply_edits("the cat", [parse_insert("99=x")]), "out of range"),
        (lambda: apply_edits("a a", [Edit("replace", "a", "b", occurrence=3)]), "no occurrence 3"),
        (lambda: apply_edits("the big cat", [Edit("delete", "the big"), Edit("delete", "big cat")]), "overlap"),
        (
            lambda: apply_edits("aaa", [Edit("replace", "aa", "b", words=False, occurrence=1), Edit("delete", "aaa")]),
            "overlap",
        ),
        (lambda: parse_replace("dog"), "OLD=NEW"),
        (lambda: parse_replace("=dog"), "OLD is empty"),
        (lambda: parse_insert("after:cat="), "empty"),
        (lambda: parse_insert("middle=x"), "before:WORD"),
        (lambda: Edit("replace", "", "x"), "empty"),
        (lambda: Edit("replace", "x", "x"), "changes nothing"),
        (lambda: Edit("replace", "x", "y", occurrence="second"), "occurrence"),
        (lambda: swap_edits("the cat", "race"), "unknown swap table"),
        (lambda: swap_edits("the cat", "gender"), "no term"),
        (lambda: edit_from_dict({"move": "x"}), "unknown edit"),
        (lambda: edit_from_dict({"remove": 3}), "must be text"),
    ],
)
def test_bad_edits_are_one_line_input_errors(make, message):
    with pytest.raises(InputError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


# --- alignment by characters -------------------------------------------------------------------
def tokens(pieces: list[tuple[str, int, int | None, int | None]]) -> list[Token]:
    return [
        Token(i, token_id, text, start, end, start is None) for i, (text, token_id, start, end) in enumerate(pieces)
    ]


def test_alignment_matches_tokens_of_the_same_original_characters():
    edited = apply_edits("我爱他的家", [Edit("replace", "他", "她")])
    original = tokens(
        [("<s>", 1, None, None), ("我", 10, 0, 1), ("爱", 11, 1, 2), ("他的", 12, 2, 4), ("家", 13, 4, 5)]
    )
    # the edit splits 他的 into 她 + 的 (的 is original but not the same token), byte pieces after 家
    changed = tokens(
        [
            ("<s>", 1, None, None),
            ("我", 10, 0, 1),
            ("爱", 11, 1, 2),
            ("她", 20, 2, 3),
            ("的", 21, 3, 4),
            ("家", 13, 4, 5),
        ]
    )
    alignment = align_by_characters(original, changed, edited.char_map)
    assert alignment.pairs == [(0, 0), (1, 1), (2, 2), (4, 5)]
    assert alignment.only_original == [3] and alignment.only_edited == [3, 4]
    assert alignment.partner(4) == 5 and alignment.partner(3) is None


def test_alignment_of_byte_pieces_specials_and_insertions():
    text = "a 👋 b"
    edited = apply_edits(text, [parse_insert("after:b= c")])
    assert edited.text == "a 👋 b c"
    pieces = [("<s>", 1, None, None), ("a", 5, 0, 1), (" 👋", 6, 1, 3), ("", 7, 3, 3), ("", 8, 3, 3), (" b", 9, 3, 5)]
    original = tokens([*pieces, ("</s>", 2, None, None)])
    changed = tokens([*pieces, (" c", 4, 5, 7), ("</s>", 2, None, None)])
    alignment = align_by_characters(original, changed, edited.char_map)
    assert alignment.pairs == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 7)]
    assert alignment.only_edited == [6] and not alignment.only_original
    # a byte piece after a new character has no partner, nor does a piece with another id
    renamed = tokens([*pieces[:4], ("", 99, 3, 3), pieces[5]])
    assert align_by_characters(tokens(pieces), renamed, tuple(range(len(text)))).only_edited == [4]


def test_head_shift_is_the_total_variation_on_matched_keys():
    before = np.array([[[0.5, 0.3, 0.2, 0.0]]])  # (1 layer, 1 head, 4 keys); key 2 is edited away
    after = np.array([[[0.4, 0.1, 0.3, 0.2, 0.0]]])  # keys 2 and 3 are new; 4 is the partner of 3
    pairs = [(0, 0), (1, 1), (3, 4)]
    shift = head_shift(before, after, pairs)
    p, q = np.array([0.5, 0.3, 0.0]) / 0.8, np.array([0.4, 0.1, 0.0]) / 0.5
    assert shift.tvd[0, 0] == pytest.approx(0.5 * np.abs(p - q).sum())
    assert shift.l1[0, 0] == pytest.approx(0.1 + 0.2)
    assert shift.unmatched_original[0, 0] == pytest.approx(0.2)
    assert shift.unmatched_edited[0, 0] == pytest.approx(0.5)
    assert shift.ranked(5)[0]["tvd"] == pytest.approx(shift.tvd[0, 0])
    b, a, d = row_shift(before[0, 0], after[0, 0], pairs)
    np.testing.assert_allclose(d, a - b)
    np.testing.assert_allclose(b, [0.5, 0.3, 0.0])
    nan = head_shift(np.full((1, 1, 4), np.nan), after, pairs)
    assert np.isnan(nan.tvd[0, 0]) and nan.ranked() == []


def test_score_shift_ranks_matched_tokens_only():
    shift = score_shift([0.1, 0.5, None, 0.9, 0.3], [0.2, 0.4, 7.0, 0.8, 0.3], [(0, 0), (1, 1), (3, 3), (4, 4)])
    np.testing.assert_allclose(shift.shift, [0.1, -0.1, -0.1, 0.0], atol=1e-12)
    assert shift.spearman == pytest.approx(1.0) and shift.compared.all()
    flat = score_shift([1.0, 1.0, 1.0], [0.0, 1.0, 2.0], [(0, 0), (1, 1), (2, 2)])
    assert np.isnan(flat.spearman)  # constant scores: undefined, not 0


# --- two runs against two independent eager forwards --------------------------------------------
def eager(model, text: str):
    """Plain transformers, eager attention: (ids, (layers, heads, q, k) attentions, last-position probs)."""
    hf = model.model
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = hf(input_ids=ids, output_attentions=True)
    finally:
        hf.set_attn_implementation(previous)
    attentions = np.stack([a[0].double().numpy() for a in out.attentions])
    return ids[0].tolist(), attentions, torch.softmax(out.logits[0, -1].double(), dim=-1).numpy()


def grad_x_input(model, ids: list[int], target: int) -> np.ndarray:
    """(∂ log p(target) / ∂e_i) · e_i, by hand."""
    hf = model.model
    embeds = hf.get_input_embeddings()(torch.tensor([ids])).detach().float().requires_grad_(True)
    logits = hf(inputs_embeds=embeds).logits[0, -1]
    torch.log_softmax(logits.double(), dim=-1)[target].backward()
    return (embeds.grad[0].double() * embeds[0].detach().double()).sum(dim=-1).numpy()


def check_against_eager(model, result, *, layer: int, heads: list[int]) -> None:
    original, changed = result.traces
    ids_o, att_o, probs_o = eager(model, original.text)
    ids_e, att_e, probs_e = eager(model, changed.text)
    assert original.token_ids == ids_o and changed.token_ids == ids_e
    pairs = result.alignment.pairs
    for i, j in pairs:  # partners are the same token of the same original characters
        a, b = original.tokens[i], changed.tokens[j]
        assert a.id == b.id and a.text == b.text
        if a.start is not None and a.end > a.start:
            assert result.edited.char_map[b.start : b.end] == tuple(range(a.start, a.end))
    rows_o, rows_e = [i for i, _ in pairs], [j for _, j in pairs]
    q_o, q_e = len(ids_o) - 1, len(ids_e) - 1
    assert result.queries == (q_o, q_e)
    map_o, map_e = att_o[layer][heads].mean(axis=0), att_e[layer][heads].mean(axis=0)
    np.testing.assert_allclose(result.rows[0], map_o[q_o], atol=1e-5)
    np.testing.assert_allclose(result.rows[1], map_e[q_e], atol=1e-5)
    expected = map_e[np.ix_(rows_e, rows_e)] - map_o[np.ix_(rows_o, rows_o)]
    np.testing.assert_allclose(result.difference.difference, expected, atol=1e-5)
    last_o, last_e = att_o[:, :, q_o][..., rows_o], att_e[:, :, q_e][..., rows_e]  # (layers, heads, matched)
    p, q = last_o / last_o.sum(-1, keepdims=True), last_e / last_e.sum(-1, keepdims=True)
    np.testing.assert_allclose(result.heads.tvd, 0.5 * np.abs(p - q).sum(-1), atol=1e-5)
    np.testing.assert_allclose(result.heads.l1, np.abs(last_e - last_o).sum(-1), atol=1e-5)
    top_o, top_e = int(np.argmax(probs_o)), int(np.argmax(probs_e))
    predictions = result.predictions
    assert predictions["original"]["top"][0]["id"] == top_o and predictions["counterfactual"]["top"][0]["id"] == top_e
    assert predictions["original_top_in_counterfactual"]["prob"] == pytest.approx(probs_e[top_o], abs=1e-5)
    assert predictions["counterfactual_top_in_original"]["prob"] == pytest.approx(probs_o[top_e], abs=1e-5)
    shift = result.attribution
    # both explain the original's top prediction when its text tokenizes back to it; else each its own
    word = model.tokenizer.decode([top_o])
    round_trip = model.tokenizer(word, add_special_tokens=False)["input_ids"] == [top_o]
    assert shift.method == "grad-x-input" and shift.target_mode == ("original" if round_trip else "own")
    target_e = top_o if round_trip else top_e
    for k, (ids, target, scores) in enumerate(((ids_o, top_o, shift.results[0]), (ids_e, target_e, shift.results[1]))):
        assert scores.target["ids"] == [target]
        got = np.array([np.nan if s is None else s for s in scores.scores_by_token()])
        np.testing.assert_allclose(got, grad_x_input(model, ids, target), atol=1e-4, err_msg=f"text {k}")
    from scipy.stats import spearmanr

    before, after = grad_x_input(model, ids_o, top_o)[rows_o], grad_x_input(model, ids_e, target_e)[rows_e]
    np.testing.assert_allclose(shift.shift.shift, after - before, atol=1e-4)
    assert shift.shift.spearman == pytest.approx(spearmanr(before, after).statistic, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "edits", "expected"),
    [
        ("The doctor said that he was late", [parse_replace("he=she")], "The doctor said that she was late"),
        (CHINESE, [Edit("replace", "他", "她")], "我爱中国，她的首都在于"),
    ],
)
def test_counterfactual_on_a_tiny_model_matches_two_eager_runs(text, edits, expected):
    model = tiny("llama")
    result = counterfactual(model, text, edits, layer=1, head=[0, 2], backend="qk")
    assert result.edited.text == expected
    assert result.alignment.only_original and result.alignment.only_edited  # the edited pieces
    check_against_eager(model, result, layer=1, heads=[0, 2])
    body = counterfactual_json(result, top_heads=3)
    assert body["result"] == "counterfactual" and body["counterfactual"]["text"] == expected
    assert [h["tvd"] for h in body["heads"]["top"]] == sorted((h["tvd"] for h in body["heads"]["top"]), reverse=True)
    assert len(body["heads"]["top"]) == 3 and body["view"]["head"] == [0, 2]
    assert len(body["provenance"]) == 2 and all(r["method"] == "counterfactual" for r in body["provenance"])
    assert [r["method_options"]["text"] for r in body["provenance"]] == ["original", "counterfactual"]
    assert body["provenance"][0]["text_sha256"] != body["provenance"][1]["text_sha256"]
    for m in body["attention"]["matched"]:
        assert m["shift"] == pytest.approx(m["after"] - m["before"])
        assert m["before"] == pytest.approx(body["attention"]["original"][m["original"]])
    assert "heads whose query row changed most" in counterfactual_text(body)


def test_a_query_inside_the_text_is_compared_with_its_partner():
    model = tiny("llama")
    text = "The doctor said that he was late"
    result = counterfactual(model, text, [parse_replace("he=she")], query=4, method="none")
    original, changed = result.traces
    assert result.queries == (4, 4) and original.tokens[4].text == changed.tokens[4].text
    assert result.attribution is None
    _, att_e, _ = eager(model, changed.text)
    np.testing.assert_allclose(result.rows[1], att_e[-1].mean(axis=0)[4], atol=1e-5)
    edited_token = result.alignment.only_original[0]
    with pytest.raises(InputError, match="no counterpart"):
        counterfactual(model, text, [parse_replace("he=she")], query=edited_token, method="none")
    with pytest.raises(InputError, match="combined rows"):
        counterfactual(model, text, [parse_replace("he=she")], head="all", method="none")
