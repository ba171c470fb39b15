"""Rules evaluated on real (tiny and packaged) models, against masses computed by hand from the raw
attention arrays — or, for the packaged model, from plain ``transformers`` eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.analysis.rule_file import load_example, rules_from_data
from attnscope.analysis.rule_spans import Context, find_text, pick, whole_word
from attnscope.analysis.rule_types import Selector
from attnscope.analysis.rules import evaluate_rules
from attnscope.capture import capture
from attnscope.capture.generation import generate
from attnscope.capture.tokens import Part
from attnscope.errors import UnsupportedError
from attnscope.governance.rules import check_rules
from attnscope.methods.rules import evaluate_with_model
from tests.conftest import packaged, tiny

TEXT = "The capital of France is Paris. The capital of Italy is"


def rule(**fields):
    """One rule's data with the required keys filled in."""
    data = {"name": "r", "from": {"answer": True}, "measure": "mass", "comparison": ">=", "threshold": 0.0}
    data.update(fields)
    if data["measure"] != "entropy":
        data.setdefault("to", {"class": "first"})
    return data


def rules(*items):
    return rules_from_data({"version": 1, "rules": [dict(item, name=f"r{i}") for i, item in enumerate(items)]})


def covering(tokens, text, term, nth=0):
    """Positions of the tokens whose characters overlap the ``nth`` occurrence of ``term`` (by hand)."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(term, start + 1)
    end = start + len(term)
    return [t.index for t in tokens if t.start is not None and t.start < end and start < max(t.end, t.start + 1)]


def stack(trace):
    """(layers, heads, query, key) float64: the raw arrays, read layer by layer."""
    return np.stack([trace.attention(layer) for layer in range(trace.num_layers())]).astype(np.float64)


@pytest.fixture(scope="module")
def llama_trace():
    return capture(tiny("llama"), TEXT, backend="full")


def test_mass_max_rank_and_entropy_are_the_hand_computed_numbers(llama_trace):
    trace, weights = llama_trace, stack(llama_trace)
    france, italy, paris = (covering(trace.tokens, TEXT, word) for word in ("France", "Italy", "Paris"))
    last = len(trace.tokens) - 1
    mass = weights[:, :, italy][..., france].sum(-1).mean(-1)  # (layers, heads)
    peak = weights[1:3][:, [0, 2]][:, :, italy, 0].max()
    ranks = [1 + (weights[-1, h, last] > weights[-1, h, last, france].max()).sum() for h in range(weights.shape[1])]
    rows = weights[0][:, paris]  # (heads, rows, keys)
    entropy = -(rows * np.log(np.where(rows > 0, rows, 1))).sum(-1).mean(-1).sum()
    report = evaluate_rules(
        trace,
        rules(
            rule(**{"from": {"text": "Italy"}, "to": {"text": "France"}}, threshold=float(mass.mean()) + 0.01),
            rule(**{"from": {"text": "Italy"}}, layers="1-2", heads=[0, 2], aggregation="max", measure="max",
                 comparison="<=", threshold=float(peak) + 0.01),
            rule(**{"to": {"text": "France"}}, layers=-1, aggregation="min", measure="rank", comparison="<=",
                 threshold=1),
            rule(**{"from": {"text": "Paris"}}, layers=[0], aggregation="sum", measure="entropy", comparison=">",
                 threshold=0.0),
        ),
    )  # fmt: skip
    too_little, sink, rank, spread = report.results
    assert too_little.value == pytest.approx(mass.mean(), abs=1e-6) and too_little.passed is False
    worst = np.unravel_index(np.argmin(mass), mass.shape)  # a ">=" rule names its lowest cell
    assert (too_little.layer, too_little.head) == (worst[0], worst[1]) and too_little.rows == italy
    assert [t["index"] for t in too_little.tokens] == france
    start = TEXT.index("France")
    edit = {"remove": "France", "start": start}  # what attnscope.analysis.edits.edit_from_dict reads
    assert too_little.counterfactual == {**edit, "edits": [edit], "spans": [[start, start + 6]]}
    from attnscope.analysis.edits import apply_edits  # the counterfactual side reads the hint as it is

    assert apply_edits(TEXT, too_little.counterfactual["edits"]).text == TEXT.replace("France", "", 1)
    assert sink.value == pytest.approx(peak, abs=1e-6) and sink.passed is True and sink.counterfactual is None
    assert rank.value == min(ranks) and rank.passed is bool(min(ranks) <= 1) and rank.rows == [last]
    assert spread.value == pytest.approx(entropy, abs=1e-6) and spread.passed is True
    assert report.summary() == {
        "total": 4, "passed": 2 + rank.passed, "failed": 2 - rank.passed, "not_evaluated": 0,
        "critical_failed": 0, "critical_not_evaluated": 0,
    }  # fmt: skip


def test_text_spans_are_whole_words_and_occurrences_choose_among_them(llama_trace):
    trace = llama_trace
    context = Context(trace, [], None, {"capitals": ["Paris", "Rome"]})

    def positions(**selector):
        kind = next(k for k in selector if k not in ("occurrence", "ignore_case"))
        found = pick(
            Selector(kind, selector[kind], selector.get("occurrence", "all"), selector.get("ignore_case", False)),
            context,
            "to",
        )
        return list(found.positions)

    the = [covering(trace.tokens, TEXT, "The", n) for n in (0, 1)]
    assert positions(text="The") == the[0] + the[1]
    assert positions(text="The", occurrence="first") == the[0] and positions(text="The", occurrence="last") == the[1]
    assert positions(text="he") == [] and not whole_word("The", 1, 3) and whole_word("Paris.", 0, 5)
    assert positions(text="the", ignore_case=True, occurrence="last") == the[1]
    assert positions(lexicon="capitals") == covering(trace.tokens, TEXT, "Paris")
    assert positions(regex=r"capital of \w+", occurrence="last") == covering(trace.tokens, TEXT, "capital of Italy")
    assert pick(Selector("text", "Berlin"), context, "to").note == 'to (text "Berlin") matches no token'
    # Chinese has no spaces between words: a Han match counts wherever it is
    assert find_text("北京和北京大学", "北京") == [(0, 2), (3, 5)] and find_text("Paris2 Paris", "Paris") == [(7, 12)]
    assert find_text("服用后头痛。头痛药", "头痛") == [(3, 5), (6, 8)]


def test_chinese_lexicon_rules_on_qwen(tmp_path):
    text = "说明书：阿司匹林可能引起恶心和胃出血。它装在红色的盒子里。"
    trace = capture(tiny("qwen2"), text, backend="full")
    weights = stack(trace)
    drug = covering(trace.tokens, text, "阿司匹林")
    effects = sorted(set(covering(trace.tokens, text, "恶心") + covering(trace.tokens, text, "出血")))
    report = evaluate_rules(trace, load_example("medical-zh"))
    reads_drug = report.results[0]
    assert reads_drug.rows == effects and [t["index"] for t in reads_drug.tokens] == drug
    assert reads_drug.value == pytest.approx(weights[:, :, effects][..., drug].sum(-1).mean(), abs=1e-6)


def test_rules_at_every_generation_step():
    model = tiny("llama")
    trace = generate(model, "The capital of France is", max_new_tokens=4)
    weights = stack(trace)
    queries = [step.position - 1 for step in trace.steps]
    on_first = weights[:, :, queries, 0].mean(axis=(0, 1))  # (steps,): each step's row, mean over layers and heads
    answer = list(range(trace.prompt_length, len(trace.tokens)))
    on_answer = weights[:, :, queries][..., answer].sum(-1).mean(axis=(0, 1))
    middle = float(np.median(on_first))
    report = evaluate_rules(
        trace,
        rules(
            rule(comparison="<=", threshold=middle),
            rule(**{"from": {"steps": [1, 2]}}, comparison="<=", threshold=middle),
            rule(**{"to": {"answer": True}}),
            rule(**{"to": {"text": "France"}}, measure="attribution:attention"),
        ),
        attribution=None,
    )
    every, some, answer_mass, attribution = report.results
    assert [s["step"] for s in every.steps] == [0, 1, 2, 3]
    np.testing.assert_allclose([s["value"] for s in every.steps], on_first, atol=1e-6)
    assert [s["passed"] for s in every.steps] == [bool(v <= middle) for v in on_first]
    assert (
        every.passed is False
        and every.step == int(np.argmax(on_first))
        and every.value == pytest.approx(on_first.max())
    )
    assert every.rows == [queries[every.step]]
    assert [s["step"] for s in some.steps] == [1, 2] and some.value == pytest.approx(on_first[1:3].max())
    np.testing.assert_allclose([s["value"] for s in answer_mass.steps], on_answer, atol=1e-6)
    assert answer_mass.steps[0]["value"] == 0.0  # the first step's row sees no answer token yet
    assert attribution.passed is None and "evaluate with the model" in attribution.note
    # with the model: the attention method's share of the steps' scores is the steps' mass on France
    france = covering(trace.tokens, trace.text, "France")
    on_france = weights[:, :, queries][..., france].sum(-1).mean(axis=(0, 1))
    share = evaluate_with_model(
        model, trace, rules(rule(**{"to": {"text": "France"}}, measure="attribution:attention"))
    )
    np.testing.assert_allclose([s["value"] for s in share.results[0].steps], on_france, atol=1e-6)


def test_rules_that_cannot_be_evaluated_say_why_and_do_not_pass(llama_trace):
    report = evaluate_rules(
        llama_trace,
        rules(
            rule(layers=[7]),
            rule(heads=[9]),
            rule(**{"to": {"part": "document"}}),
            rule(**{"to": {"role": "system"}}),
            rule(**{"to": {"text": "Berlin"}}),
            rule(**{"to": {"answer": True}}),
            rule(**{"from": {"steps": [0, 1]}}),
            rule(**{"to": {"class": "pii"}}),
        ),
    )
    notes = [result.note for result in report.results]
    assert all(result.passed is None and result.value is None for result in report.results)
    assert "layer 7 out of range" in notes[0] and "head 9 out of range" in notes[1]
    assert "no part named 'document'" in notes[2] and "no chat turn of role 'system'" in notes[3]
    assert "matches no token" in notes[4] and "not a generation" in notes[5] and "not a generation" in notes[6]
    assert "no personal-data spans" in notes[7]
    assert report.summary()["not_evaluated"] == 8
    # given parts are read by part selectors
    start = TEXT.index("Paris")
    given = evaluate_rules(llama_trace, rules(rule(**{"to": {"part": "city"}})), parts=[Part("city", start, start + 5)])
    assert given.results[0].passed is True and [t["text"] for t in given.results[0].tokens] == list("Paris")


def test_personal_data_and_attribution_shares_with_the_model():
    model = tiny("llama")
    text = "Call me at 13812345678 tomorrow about France"
    trace = capture(model, text, backend="full")
    weights = stack(trace)
    phone = covering(trace.tokens, text, "13812345678")
    expected = weights[:, :, -1][..., phone].sum(-1).mean()
    from attnscope.methods.run import attribute

    scores = np.abs(attribute(model, text, "grad-x-input", query=len(trace.tokens) - 1, trace=trace).token_scores)
    france = covering(trace.tokens, text, "France")
    report = check_rules(
        model,
        trace,
        rules(
            rule(**{"to": {"class": "pii"}}, comparison="<=", threshold=0.05),
            rule(**{"to": {"text": "France"}}, measure="attribution:grad-x-input", threshold=0.99),
            rule(**{"to": {"class": "numbers"}}, comparison="<=", threshold=1.0),
        ),
    )
    pii, share, numbers = report.results
    assert [t["index"] for t in pii.tokens] == phone and pii.value == pytest.approx(expected, abs=1e-6)
    assert pii.passed is bool(expected <= 0.05)
    assert share.value == pytest.approx(scores[france].sum() / scores.sum(), rel=1e-5) and share.passed is False
    assert share.counterfactual["remove"] == "France"
    assert [t["index"] for t in numbers.tokens] == phone
    assert evaluate_rules(trace, rules(rule(**{"to": {"class": "pii"}}))).results[0].passed is None


def test_encoder_decoders_are_refused():
    trace = capture(tiny("bart"), "hello there", target="hi")
    with pytest.raises(UnsupportedError, match="encoder-decoders"):
        evaluate_rules(trace, rules(rule()))


def test_rules_on_smollm2_match_plain_transformers_eager_attention():
    """The medical example and a sink rule on SmolLM2, against eager attention of the reference model."""
    from tests.test_real_models import reference_gguf

    model = packaged("smollm2-135m")
    reference, tokenizer = reference_gguf("smollm2-135m")
    text = "Patient leaflet: aspirin can cause nausea and stomach bleeding. It comes in a red box."
    encoded = tokenizer(text, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    with torch.no_grad():
        out = reference(input_ids=torch.tensor([encoded["input_ids"]]), output_attentions=True)
    weights = np.stack([a[0].double().numpy() for a in out.attentions])  # (layers, heads, query, key)

    def over(*terms):
        spans = [(text.index(t), text.index(t) + len(t)) for t in terms]
        return [i for i, (s, e) in enumerate(offsets) if any(s < b and a < max(e, s + 1) for a, b in spans)]

    drug, effects, packaging, box = over("aspirin"), over("nausea", "bleeding"), over("red", "box"), over("box")
    last = len(offsets) - 1
    reads_drug = weights[:, :, effects][..., drug].sum(-1).mean()  # mean over layers, heads, side-effect rows
    last_layer = weights[-1][:, effects]  # (heads, rows, keys)
    rank = min(
        np.mean([1 + (last_layer[h, r] > last_layer[h, r, drug].max()).sum() for r in range(len(effects))])
        for h in range(weights.shape[1])
    )
    on_packaging = weights[:, :, last][..., packaging].sum(-1).mean()
    sink = weights[3:, :, box, 0].max()  # "no head beyond layer 2 puts more than 0.9 on the first token"

    trace = capture(model, text)
    assert trace.token_ids == encoded["input_ids"]
    report = check_rules(model, trace, load_example("medical-en"))
    by_name = {result.rule.name: result for result in report.results}
    assert by_name["side-effect-reads-drug"].value == pytest.approx(reads_drug, abs=1e-4)
    assert by_name["drug-rank-for-side-effect"].value == pytest.approx(rank, abs=1e-4)
    assert by_name["packaging-is-not-read-for-the-answer"].value == pytest.approx(on_packaging, abs=1e-4)
    assert reads_drug >= 0.03 and rank <= 3 and on_packaging <= 0.10  # what the rules must find: they pass
    assert all(result.passed is True for result in report.results)
    sink_rules = rules(rule(**{"from": {"text": "box"}}, layers="3:-1", aggregation="max", measure="max",
                            comparison="<=", threshold=0.9, severity="critical"))  # fmt: skip
    failed = check_rules(model, trace, sink_rules)
    assert sink > 0.9  # an attention sink: this rule must fail
    assert failed.results[0].value == pytest.approx(sink, abs=1e-4) and failed.results[0].passed is False
    assert failed.summary()["critical_failed"] == 1 and failed.results[0].counterfactual is None


def test_a_regex_that_backtracks_for_ever_is_stopped_and_not_evaluated(llama_trace, monkeypatch):
    from attnscope.analysis import rule_spans

    monkeypatch.setattr(rule_spans, "REGEX_TIMEOUT_S", 0.05, raising=False)  # (before: a hang)
    backtracking = r"^(.|..)*\.$"  # 2**55 ways to split the text before failing: with re, hours
    (stopped,) = evaluate_rules(llama_trace, rules(rule(**{"to": {"regex": backtracking}}))).results
    assert stopped.passed is None and stopped.value is None
    assert stopped.note == 'regex "^(.|..)*\\\\.$": the regex took longer than 0.05 s on this text'  # as JSON writes it
    # the regex package's syntax runs as it validates: every capitalised word
    (capitals,) = evaluate_rules(llama_trace, rules(rule(**{"to": {"regex": r"\p{Lu}\w+"}}))).results
    found = [("The", 0), ("France", 0), ("Paris", 0), ("The", 1), ("Italy", 0)]
    expected = [p for word, nth in found for p in covering(llama_trace.tokens, TEXT, word, nth)]
    assert [t["index"] for t in capitals.tokens] == expected and capitals.passed is True


def test_a_class_the_text_lacks_gets_no_attention_while_a_span_that_matches_nothing_is_not_evaluated():
    model = tiny("llama")
    trace = generate(model, TEXT, max_new_tokens=2)  # no personal data, no digits
    report = evaluate_rules(
        trace,
        rules(
            rule(**{"to": {"class": "pii"}}, comparison="<=", threshold=0.05, severity="critical"),
            rule(**{"to": {"class": "numbers"}}, measure="max", threshold=0.1),
            rule(**{"from": {"text": "Italy"}, "to": {"class": "numbers"}}, layers="1-2", aggregation="sum"),
            rule(**{"to": {"class": "pii"}}, measure="rank", comparison="<=", threshold=3),
            rule(**{"to": {"text": "Berlin"}}, comparison="<=", threshold=0.05),
            rule(**{"to": {"regex": "Ber+lin"}}, comparison="<=", threshold=0.05),
            rule(**{"to": {"class": "pii"}}, layers=[9], comparison="<=", threshold=0.05),
        ),
        pii_spans=[],  # looked for, none found
    )
    no_pii, no_numbers, italy, rank, berlin, regex, layer = report.results
    assert no_pii.note == no_numbers.note.replace("numbers", "pii") == "no tokens of class pii in this text"
    # evaluated at every step (a generation), each step 0.0
    assert (no_pii.value, no_pii.passed, no_pii.tokens) == (0.0, True, [])
    assert [(s["step"], s["value"], s["passed"]) for s in no_pii.steps] == [(0, 0.0, True), (1, 0.0, True)]
    assert (no_numbers.value, no_numbers.passed, no_numbers.counterfactual) == (0.0, False, None)
    assert (italy.value, italy.passed, italy.steps) == (0.0, True, None)
    assert italy.rows == covering(trace.tokens, TEXT, "Italy") and italy.layer in (1, 2)
    assert rank.passed is None and rank.value is None  # the rank of nothing is undefined
    assert berlin.passed is None and "matches no token" in berlin.note  # a misspelt span never passes
    assert regex.passed is None and "matches no token" in regex.note
    assert layer.passed is None and "layer 9 out of range" in layer.note
    summary = report.summary()
    assert (summary["passed"], summary["failed"], summary["not_evaluated"]) == (2, 1, 4)
    assert summary["critical_not_evaluated"] == 0
    # personal data not looked for is unknown, not absent
    unknown = evaluate_rules(trace, rules(rule(**{"to": {"class": "pii"}}, comparison="<=", threshold=0.05)))
    assert unknown.results[0].passed is None and "no personal-data spans" in unknown.results[0].note


def test_the_shipped_pii_rule_passes_on_a_text_without_personal_data():
    model = tiny("llama")
    trace = capture(model, TEXT, backend="full")
    basic = load_example("basic")
    only = type(basic)(tuple(r for r in basic.rules if r.name == "pii-not-read"), {}, basic.sha256)
    report = check_rules(model, trace, only)  # finds personal data itself: none here
    (result,) = report.results
    assert (result.value, result.passed, result.note) == (0.0, True, "no tokens of class pii in this text")
    assert report.summary()["critical_not_evaluated"] == 0  # --strict no longer fails on it
