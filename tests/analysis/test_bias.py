"""Bias measures and suites: bootstrap intervals against a hand computation and scipy, head maps
against arrays built by hand, and every refusal of a malformed suite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnscope.analysis.bias import (
    MAX_RESAMPLES,
    bootstrap_indices,
    bootstrap_mean,
    check_bootstrap,
    pair_gap,
    term_mass,
    term_tokens,
    top_heads,
)
from attnscope.analysis.bias_suite import find_word, parse_suite
from attnscope.errors import InputError
from attnscope.methods.bias_suites import list_suites, load_suite, suite_names

VALUES = np.array([0.3, -1.2, 0.8, 2.5, -0.1, 0.0, 1.7, -0.6, 0.9, 0.4, -2.2, 1.1])


def test_bootstrap_matches_a_hand_computation_with_the_same_seed():
    indices = bootstrap_indices(len(VALUES), 3000, seed=7)
    found = bootstrap_mean(VALUES, indices, confidence=0.9)
    # by hand: each resample's mean from the drawn values themselves, then the 5th and 95th percentiles
    rng = np.random.default_rng(7)
    drawn = rng.integers(0, len(VALUES), size=(3000, len(VALUES)))
    means = np.array([np.mean([VALUES[i] for i in row]) for row in drawn])
    assert found.mean == pytest.approx(VALUES.mean())
    assert found.low == pytest.approx(np.percentile(means, 5.0), abs=1e-12)
    assert found.high == pytest.approx(np.percentile(means, 95.0), abs=1e-12)
    assert found.n == len(VALUES)
    again = bootstrap_mean(VALUES, bootstrap_indices(len(VALUES), 3000, seed=7), confidence=0.9)
    assert (again.low, again.high) == (found.low, found.high)  # the seed fixes the interval


def test_bootstrap_agrees_with_scipy_percentile_interval():
    from scipy.stats import bootstrap

    found = bootstrap_mean(VALUES, bootstrap_indices(len(VALUES), 40_000, seed=1))
    reference = bootstrap(
        (VALUES,), np.mean, n_resamples=40_000, method="percentile", confidence_level=0.95, rng=np.random.default_rng(2)
    ).confidence_interval
    spread = VALUES.std() / np.sqrt(len(VALUES))  # two Monte Carlo estimates of the same percentiles
    assert found.low == pytest.approx(reference.low, abs=0.05 * spread)
    assert found.high == pytest.approx(reference.high, abs=0.05 * spread)


def test_bootstrap_of_maps_is_the_bootstrap_of_each_cell_with_the_same_resamples():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(9, 4, 3))  # (pairs, layers, heads)
    maps[2, 1, 1] = np.nan
    indices = bootstrap_indices(9, 500, seed=0)
    found = bootstrap_mean(maps, indices)
    assert found.mean.shape == found.low.shape == found.high.shape == (4, 3)
    for layer in range(4):
        for head in range(3):
            cell = bootstrap_mean(maps[:, layer, head], indices)
            if layer == 1 and head == 1:
                assert np.isnan(found.mean[1, 1]) and np.isnan(found.low[1, 1]) and np.isnan(found.high[1, 1])
                continue
            assert found.low[layer, head] == pytest.approx(float(cell.low), abs=1e-12)
            assert found.high[layer, head] == pytest.approx(float(cell.high), abs=1e-12)


def test_bootstrap_edges_and_refusals():
    one = bootstrap_mean([0.25], bootstrap_indices(1, 100, 0))
    assert float(one.low) == float(one.high) == float(one.mean) == 0.25
    none = bootstrap_mean(np.zeros((0,)), bootstrap_indices(0, 10, 0))
    assert none.n == 0 and none.to_dict()["mean"] is None
    for resamples in (0, -5, MAX_RESAMPLES + 1, 2.5, True):
        with pytest.raises(InputError, match="resamples"):
            check_bootstrap(resamples, 0.95)  # type: ignore[arg-type]
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="confidence"):
            check_bootstrap(100, confidence)


def test_pair_gap_by_hand():
    gap = pair_gap(np.log(0.3), np.log(0.1))
    assert gap["prob"] == pytest.approx(0.2)
    assert gap["logprob"] == pytest.approx(np.log(3.0))
    assert gap["share"] == pytest.approx(0.75)
    assert pair_gap(-800.0, -900.0)["share"] == pytest.approx(1.0)  # no overflow far from 0


def test_term_mass_difference_map_and_top_heads_by_hand():
    rng = np.random.default_rng(0)
    first = rng.dirichlet(np.ones(6), size=(3, 2))  # (layers, heads, keys): rows of attention
    second = rng.dirichlet(np.ones(6), size=(3, 2))
    tokens = [1, 2]
    expected_first = np.array(
        [[first[layer, head, 1] + first[layer, head, 2] for head in range(2)] for layer in range(3)]
    )
    np.testing.assert_allclose(term_mass(first, tokens), expected_first)
    difference = term_mass(first, tokens) - term_mass(second, tokens)
    cells = [(layer, head, difference[layer, head]) for layer in range(3) for head in range(2)]
    cells.sort(key=lambda cell: -abs(cell[2]))
    assert top_heads(difference, 3) == [(layer, head, pytest.approx(value)) for layer, head, value in cells[:3]]
    assert [cell[0] for cell in top_heads(difference, 6, layers=[4, 7, 9])] == [[4, 7, 9][c[0]] for c in cells]
    with_nan = difference.copy()
    with_nan[0, 0] = np.nan
    assert (0, 0) not in [(layer, head) for layer, head, _ in top_heads(with_nan, 6)]


def test_term_tokens_cover_split_characters_and_skip_specials():
    # "<bos>", "这", "位", then 护 split over two byte pieces: the second has an empty span at its end
    spans = [(None, None), (0, 1), (1, 2), (2, 3), (3, 3), (3, 4)]
    assert term_tokens(spans, 2, 3) == [3, 4]
    assert term_tokens(spans, 2, 4) == [3, 4, 5]
    assert term_tokens(spans, 0, 1) == [1]


def test_find_word_respects_word_edges_in_spaced_scripts_only():
    assert find_word("The nurse said that he", "he") == 20
    assert find_word("The nurse said that she", "he") == -1
    assert find_word("这位护士说，他", "护士") == 2
    assert find_word("Jean-Luc said", "Luc") == -1


def test_packaged_suites_parse_and_say_where_they_come_from():
    names = suite_names()
    assert {"gender-occupation-en", "gender-occupation-zh", "nationality-en", "names-en"} <= set(names)
    for row in list_suites():
        assert row["source"] and "attnscope" in row["source"] and row["licence"] == "Apache-2.0"
        assert row["pairs"] >= 20
    english = load_suite("gender-occupation-en")
    assert english.order == ("female", "male")
    nurse = english.pairs[0]
    assert nurse.query == "continuation" and nurse.roles == ["occupation"]
    she = nurse.variants[0]
    assert [she.full_text[t.start : t.end] for t in she.terms] == ["nurse"]
    chinese = load_suite("gender-occupation-zh")
    assert {v.continuation for p in chinese.pairs for v in p.variants} == {"她", "他"}
    occupations = {v.full_text[t.start : t.end] for p in chinese.pairs for v in p.variants for t in v.terms}
    assert len(occupations) >= 20 and all(v.prompt.startswith("这位") for p in chinese.pairs for v in p.variants)
    country = load_suite("nationality-en").pairs[0]
    assert country.query == "prediction"
    assert [v.full_text[v.terms[0].start : v.terms[0].end] for v in country.variants] == ["Italy", "Norway"]


def good_suite() -> dict:
    return {
        "name": "mine",
        "order": ["a", "b"],
        "pairs": [
            {
                "template": "The cook said that",
                "terms": {"occupation": "cook"},
                "variants": [{"identity": "a", "continuation": " she"}, {"identity": "b", "continuation": " he"}],
            }
        ],
    }


def broken(change) -> dict:
    suite = good_suite()
    change(suite)
    return suite


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ([], "must be a JSON object"),
        (broken(lambda s: s.update(colour="red")), "unknown key 'colour'"),
        (broken(lambda s: s.pop("order")), "missing 'order'"),
        (broken(lambda s: s.update(version=2)), "version 2"),
        (broken(lambda s: s.update(order=["a"])), "order must list two"),
        (broken(lambda s: s.update(pairs=[])), "non-empty list"),
        (broken(lambda s: s["pairs"][0]["variants"].pop()), "exactly 2 variants, not 1"),
        (broken(lambda s: s["pairs"][0]["variants"][0].update(colour=1)), "variant 1: unknown key 'colour'"),
        (broken(lambda s: s["pairs"][0].update(terms={"occupation": "baker"})), "'baker' is not a word"),
        (broken(lambda s: s["pairs"][0].update(terms={"occupation": [5, 99]})), "span [5, 99) is outside"),
        (broken(lambda s: s["pairs"][0].update(terms={"occupation": 3})), "a non-blank text or a [start, end]"),
        (broken(lambda s: s["pairs"][0].update(template="  ")), "template must be a non-blank text"),
        (broken(lambda s: s["pairs"][0].pop("template")), "no prompt"),
        (
            broken(lambda s: s["pairs"][0]["variants"][1].update(continuation=" she")),
            "the same prompt and continuation",
        ),
        (broken(lambda s: s["pairs"][0]["variants"][0].update(terms={"verb": "said"})), "different term roles"),
        (broken(lambda s: s["pairs"][0].update(tags="x")), "tags must be a list"),
        (broken(lambda s: s["pairs"].append(dict(s["pairs"][0], id="1"))), "pair id '1' is used twice"),
        (
            {
                "name": "x",
                "order": ["a", "b"],
                "pairs": [
                    {
                        "continuation": " nurse",
                        "terms": {"occupation": "nurse"},  # a text pair: its query cannot see the continuation
                        "variants": [
                            {"identity": "a", "text": "The woman worked as a"},
                            {"identity": "b", "text": "The man worked as a"},
                        ],
                    }
                ],
            },
            "'nurse' lies in the continuation",
        ),
    ],
)
def test_malformed_suites_are_refused_in_one_line(suite, message):
    with pytest.raises(InputError) as refused:
        parse_suite(suite)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_suite_files_unknown_names_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="unknown bias suite 'gender-occupation-fr'; packaged suites: gender-occ"):
        load_suite("gender-occupation-fr")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",', encoding="utf-8")
    with pytest.raises(InputError, match="is not JSON"):
        load_suite(str(bad))
    with pytest.raises(InputError, match="is not a file"):
        load_suite(str(tmp_path))
    good = tmp_path / "mine.json"
    good.write_text(json.dumps(good_suite()), encoding="utf-8")
    assert load_suite(str(good)).name == "mine"
    spans = good_suite()
    spans["pairs"][0]["terms"] = {"occupation": [4, 8]}
    assert load_suite(spans).pairs[0].variants[0].terms[0].start == 4
