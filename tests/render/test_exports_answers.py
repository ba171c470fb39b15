"""Publication exports of the views drawn from a method's JSON answer (head atlas, agreement,
timeline, step attribution, parts, counterfactual, two prompts, two models, syntax, rules, bias).

Every answer is REAL: made by the library function its API route calls, on tiny random models (and,
slow, on the default packaged model with the Chinese and English examples). Each figure is written
as PNG (≥ 1600 px wide, not blank), SVG (parses; its text holds the title and axis labels) and PDF
(``pdftoppm`` rasterises it; ``pdftotext`` reads the labels, Chinese included). CSV numbers are
checked against independent computations where cheap: rank correlations with scipy, attention rows
and difference maps from plain transformers with eager attention. Malformed answers are refused with
a one-line InputError.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from attnscope.errors import InputError
from attnscope.render.exports.frame import ExportOptions
from attnscope.render.exports.registry import render, views
from tests.conftest import CHINESE, ENGLISH, packaged, tiny
from tests.eager import eager

PROMPT_B = "The capital of Spain is"
EDIT = [{"replace": "France", "with": "Germany"}]
RULES = """version: 1
rules:
  - name: sink-heavy
    from: {answer: true}
    to: {class: first}
    measure: mass
    comparison: ">="
    threshold: 0.999
    severity: critical
  - name: absent
    from: {answer: true}
    to: {text: "nowhere-to-be-found"}
    measure: mass
    comparison: "<="
    threshold: 0.5
  - name: reads-word
    from: {answer: true}
    to: {text: "France"}
    layers: all
    aggregation: min
    measure: rank
    comparison: "<="
    threshold: 3
"""


# --- real answers -------------------------------------------------------------------------------
@cache
def answers() -> dict[str, dict[str, Any]]:
    """One real answer per case, each from the library function its API route calls."""
    from attnscope.analysis.compare import compare_prompts
    from attnscope.analysis.parts import part_attention
    from attnscope.analysis.rule_file import parse_rules
    from attnscope.capture import capture
    from attnscope.capture.generation import generate
    from attnscope.capture.tokens import Part
    from attnscope.governance.rules import check_rules
    from attnscope.methods.agreement import compare_methods
    from attnscope.methods.atlas import head_atlas, qk_projection
    from attnscope.methods.compare_models import compare_two_models
    from attnscope.methods.steps import step_attribution
    from attnscope.render import json as contracts
    from attnscope.render.atlas_json import atlas_json, qk_projection_json
    from attnscope.render.bias import bias_answer
    from attnscope.render.counterfactual import counterfactual_answer
    from attnscope.render.rules import rules_json
    from attnscope.render.syntax import syntax_answer
    from tests.analysis.test_syntax import TEXT as SYNTAX_TEXT
    from tests.analysis.test_syntax import conllu

    model = tiny("qwen2")
    trace = capture(model, ENGLISH, top_k=10)
    found: dict[str, dict[str, Any]] = {}
    found["head-atlas"] = atlas_json(head_atlas(trace, projection="pca", seed=0))
    found["qk"] = qk_projection_json(qk_projection(capture(model, ENGLISH, backend="qk"), 0, 0, projection="pca"))
    methods = ["attention", "rollout", "grad-norm", "grad-x-input"]
    found["agreement"] = contracts.agreement_json(compare_methods(model, ENGLISH, methods=methods, trace=trace))
    parts = [Part("subject", 4, 11), Part("country", 15, 21)]
    names, mass = part_attention(trace, parts)
    found["parts"] = contracts.parts_json(trace, parts, names, mass, -1)
    traces = [trace, capture(model, PROMPT_B, top_k=10)]
    summaries, difference, view = compare_prompts(traces, granularity="token", layer=-1, head="mean")
    found["compare"] = contracts.comparison_json(traces, summaries, difference, view)
    comparison = compare_two_models(tiny("llama"), tiny("gpt2"), CHINESE, layers=[-1], method="grad-norm")
    found["compare-models"] = contracts.model_comparison_json(comparison)
    found["counterfactual"] = counterfactual_answer(model, ENGLISH, EDIT, top_k=5)
    found["syntax"] = syntax_answer(tiny("llama"), SYNTAX_TEXT, conllu=conllu())
    found["rules"] = rules_json(check_rules(model, trace, parse_rules(RULES)))
    generation = generate(model, ENGLISH, max_new_tokens=5)
    found["generation"] = contracts.generation_json(generation)
    found["generation"]["attribution"] = contracts.step_attribution_json(
        step_attribution(model, generation, "grad-x-input")
    )
    found["bias"] = bias_answer(model, "gender-occupation-zh", resamples=300, seed=7, confidence=0.9, top=3)
    return found


# (view, answer, words the figure must carry: its title's start, axis labels, colour bar or legend)
CASES = [
    ("atlas", "head-atlas", ["Head atlas", "component 1", "component 2", "coloured by layer", "head type"]),
    ("atlas", "qk", ["Queries and keys", "component 1", "token position", "queries"]),
    ("agreement", "agreement", ["Attribution methods compared", "method", "word", "Spearman", "Kendall"]),
    ("timeline", "generation", ["Generation timeline", "probability", "source token", "attention weight"]),
    ("step-attribution", "generation", ["Step attribution", "source token", "grad-x-input score", "generated token"]),
    ("parts", "parts", ["Prompt parts", "part", "layer", "head", "attention mass", "subject"]),
    ("counterfactual", "counterfactual", ["Counterfactual", "matched token", "total variation distance", "layer"]),
    ("compare", "compare", ["Two prompts compared", "key token", "query token", "attention weight"]),
    ("compare-models", "compare-models", ["Two models compared", "key unit", "layer of A", "entropy", "中国"]),
    ("syntax", "syntax", ["Syntax", "accuracy", "head", "relation", "det"]),
    ("rules", "rules", ["Rules check", "measured value", "sink-heavy", "critical"]),
    ("bias", "bias", ["Bias probes", "log-probability gap", "head", "layer", "护士"]),
]
IDS = [f"{view}-{answer}" for view, answer, _ in CASES]


def words(text: str) -> str:
    return " ".join(text.split())


def svg_text(data: bytes) -> str:
    root = ET.fromstring(data)  # parses, or the test fails here
    return words(" ".join(" ".join(element.itertext()) for element in root.iter() if element.tag.endswith("text")))


def check_png(data: bytes) -> None:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.width >= 1600
    pixels = np.asarray(image, dtype=np.int16)  # (height, width, 3)
    inked = (pixels.min(axis=2) < 235).mean()
    assert inked > 0.02, f"only {inked:.1%} of the pixels are not white"
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 20  # colour scales, not one flat colour


def check_pdf(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "figure.pdf"
    path.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-singlefile", str(path), str(tmp_path / "page")], check=True)
    raster = np.asarray(Image.open(tmp_path / "page.png").convert("L"), dtype=np.int16)
    assert (raster < 235).mean() > 0.02
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True).stdout.decode("utf-8")
    return words(text)


@pytest.mark.parametrize(("view", "answer", "labels"), CASES, ids=IDS)
def test_each_figure_renders_with_its_title_and_labels(view, answer, labels, tmp_path):
    body = answers()[answer]
    options = ExportOptions()
    check_png(render(view, body, "png", options))
    shown = svg_text(render(view, body, "svg", options))
    for label in labels:
        assert label in shown, f"{label!r} not in the SVG text of {view}"
    assert "fingerprint" in shown and "attnscope" in shown  # the provenance footer
    read = check_pdf(render(view, body, "pdf", options), tmp_path)
    for label in labels:
        assert label in read.replace(" ", "") or label in read, f"{label!r} not in pdftotext of {view}"


def every_view_is_registered():
    names = set(views())
    assert {view for view, _, _ in CASES} <= names


def test_the_views_are_registered_with_the_answers_they_read():
    every_view_is_registered()
    found = views()
    assert found["atlas"].answer_kinds == ("head-atlas", "qk-projection")
    assert found["timeline"].answer_kinds == found["step-attribution"].answer_kinds == ("generation",)
    assert found["compare-models"].answer_kinds == ("model_comparison",)
    assert found["compare"].answer_kinds == ("comparison", "model_comparison")  # the page's Compare tab: models


def test_the_pages_compare_tab_exports_its_model_comparison():
    body = answers()["compare-models"]
    assert render("compare", body, "csv", ExportOptions()) == render("compare-models", body, "csv", ExportOptions())
    assert "Two models compared" in svg_text(render("compare", body, "svg", ExportOptions()))


# --- the numbers -------------------------------------------------------------------------------
def table(view: str, body: dict[str, Any], options: ExportOptions | None = None) -> list[dict[str, str]]:
    text = render(view, body, "csv", options or ExportOptions()).decode("utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def eager_rows(model, ids: list[int], layer: int = -1) -> np.ndarray:
    """(query, key) attention of ``layer``, mean of heads, from plain transformers with eager attention."""
    return eager(model, ids)[0][layer].mean(0)


def test_agreement_csv_holds_the_scores_and_scipys_rank_correlations():
    from scipy.stats import kendalltau, spearmanr

    body = answers()["agreement"]
    rows = table("agreement", body)
    methods = body["agreement"]["methods"]
    scores = [r for r in rows if r["table"] == "scores"]
    assert [r["label"] for r in scores] == [u["text"] for u in body["units"]]
    columns = {m: np.array([float(r[m]) for r in scores]) for m in methods}
    for m in methods:
        assert columns[m].tolist() == body["methods"][m]["scores"]  # every digit kept
    for statistic, function in (("spearman", spearmanr), ("kendall", kendalltau)):
        written = {r["label"]: r for r in rows if r["table"] == statistic}
        for a in methods:
            for b in methods:
                expected = function(columns[a], columns[b])[0]
                assert math.isclose(float(written[a][b]), expected, abs_tol=1e-9), (statistic, a, b)


def test_timeline_csv_rows_are_eager_attention_rows():
    body = answers()["generation"]
    rows = table("timeline", body)
    model = tiny("qwen2")
    ids = [t["id"] for t in body["prompt"]["tokens"]] + [t["id"] for t in body["generated"]["tokens"]]
    eager = eager_rows(model, ids)  # (tokens, tokens), the last layer: the answer's default selection
    assert body["steps"][0]["attention"]["layer"] == 2 and body["steps"][0]["attention"]["head"] == "mean"
    for step in body["steps"]:
        position = step["position"]
        written = [float(r["attention"]) for r in rows if int(r["step"]) == step["step"]]
        assert len(written) == position
        np.testing.assert_allclose(written, eager[position - 1, :position], atol=2e-5)
        prob = {float(r["prob"]) for r in rows if int(r["step"]) == step["step"]}
        assert prob == {step["prob"]}


def test_step_attribution_csv_is_the_answers_scores_per_step():
    body = answers()["generation"]
    rows = table("step-attribution", body)
    block = body["attribution"]
    for step, scores in enumerate(block["scores"]):
        written = [float(r["score"]) for r in rows if int(r["step"]) == step]
        assert written == scores and len(written) == block["positions"][step]
    # step 0 attributes the prompt's next token: gradient × input computed here by hand
    model = tiny("qwen2")
    hf = model.model
    ids = torch.tensor([[t["id"] for t in body["prompt"]["tokens"]]])
    embeddings = hf.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = hf(inputs_embeds=embeddings).logits[0, -1]
    target = body["generated"]["tokens"][0]["id"]
    torch.log_softmax(logits.double(), -1)[target].backward()
    by_hand = (embeddings.grad * embeddings).sum(-1)[0].detach().double().numpy()
    np.testing.assert_allclose([float(r["score"]) for r in rows if r["step"] == "0"], by_hand, rtol=1e-3, atol=1e-5)


def test_compare_csv_difference_is_two_eager_maps_subtracted():
    body = answers()["compare"]
    model = tiny("qwen2")
    maps = [eager_rows(model, model.tokenizer(text)["input_ids"]) for text in (ENGLISH, PROMPT_B)]
    pairs = body["difference"]["pairs"]
    rows_a, rows_b = [a for a, _ in pairs], [b for _, b in pairs]
    expected = maps[0][np.ix_(rows_a, rows_a)] - maps[1][np.ix_(rows_b, rows_b)]  # (matched, matched)
    written = np.zeros_like(expected)
    for row in table("compare", body):
        if row["map"] == "tokens":
            written[int(row["query"]), int(row["key"])] = float(row["difference"])
    np.testing.assert_allclose(written, expected, atol=2e-6)  # the answer rounds to 6 decimals
    assert np.abs(expected).max() > 0.01  # a real difference, not zeros


def test_counterfactual_csv_attention_is_two_eager_rows():
    body = answers()["counterfactual"]
    model = tiny("qwen2")
    before = eager_rows(model, model.tokenizer(body["original"]["text"])["input_ids"])[body["original"]["query"]]
    after = eager_rows(model, model.tokenizer(body["counterfactual"]["text"])["input_ids"])[
        body["counterfactual"]["query"]
    ]
    rows = table("counterfactual", body)
    assert len(rows) == len(body["alignment"]["pairs"]) > 5
    for row in rows:
        i, j = int(row["original_index"]), int(row["counterfactual_index"])
        assert math.isclose(float(row["attention_before"]), before[i], abs_tol=2e-5)
        assert math.isclose(float(row["attention_after"]), after[j], abs_tol=2e-5)
        assert math.isclose(float(row["attention_shift"]), after[j] - before[i], abs_tol=4e-5)
        assert row["attribution_shift"] != ""  # grad-x-input ran


def test_parts_csv_mass_is_the_eager_row_summed_over_each_part():
    body = answers()["parts"]
    model = tiny("qwen2")
    encoded = model.tokenizer(body["text"], return_offsets_mapping=True)
    weights = eager_rows(model, encoded["input_ids"])[body["query"]]  # the last layer's query row
    rows = {(r["layer"], r["head"], r["part"]): float(r["mass"]) for r in table("parts", body)}
    inside = np.zeros(len(weights), dtype=bool)
    for span in body["spans"]:
        chosen = [k for k, (s, e) in enumerate(encoded["offset_mapping"]) if s < span["end"] and e > span["start"]]
        inside[chosen] = True
        assert math.isclose(rows[("2", "mean", span["name"])], weights[chosen].sum(), abs_tol=2e-5)
    assert math.isclose(rows[("2", "mean", "(other)")], weights[~inside].sum(), abs_tol=2e-5)


def test_tables_carry_the_answers_numbers_and_provenance():
    found = answers()
    atlas = table("atlas", found["head-atlas"])
    assert [[float(r["x"]), float(r["y"])] for r in atlas] == found["head-atlas"]["points"]
    assert [float(r["entropy"]) for r in atlas] == found["head-atlas"]["metrics"]["entropy"]
    syntax = table("syntax", found["syntax"])
    overall = [r for r in syntax if r["relation"] == "all"]
    assert float(overall[0]["accuracy"]) == found["syntax"]["overall"]["dependent_to_head"]["accuracy"]
    rules = {r["rule"]: r for r in table("rules", found["rules"])}
    assert rules["sink-heavy"]["outcome"] == "failed" and rules["absent"]["outcome"] == "not evaluated"
    assert rules["absent"]["value"] == "" and rules["reads-word"]["outcome"] == "passed"
    bias = table("bias", found["bias"])
    pairs = [r for r in bias if r["row"] == "pair"]
    for row, pair in zip(pairs, found["bias"]["pairs"], strict=True):
        first, second = pair["variants"]
        assert math.isclose(float(row["gap_logprob"]), first["logprob"] - second["logprob"], rel_tol=1e-6, abs_tol=1e-5)
    models = table("compare-models", found["compare-models"])
    for row in models:
        assert math.isclose(float(row["difference"]), float(row["a"]) - float(row["b"]), abs_tol=2e-6)
    text = render("rules", found["rules"], "csv", ExportOptions()).decode("utf-8")
    assert text.startswith("# attnscope") and "fingerprint" in text.splitlines()[2]
    import json

    exported = json.loads(render("agreement", found["agreement"], "json", ExportOptions()))
    assert exported["provenance"]["model_spec"] == "tiny:qwen2" and exported["columns"][:3] == ["table", "row", "label"]


def test_options_choose_the_layer_and_bad_ones_are_refused():
    found = answers()
    shown = svg_text(render("parts", found["parts"], "svg", ExportOptions(layer=0)))
    assert "every head of layer 0" in shown
    with pytest.raises(InputError, match="layer 7 is out of range"):
        render("parts", found["parts"], "png", ExportOptions(layer=7))
    with pytest.raises(InputError, match="layer 0 of A is not in this comparison"):
        render("compare-models", found["compare-models"], "png", ExportOptions(layer=0))
    assert "My title" in svg_text(render("rules", found["rules"], "svg", ExportOptions(title="My title")))


# --- malformed answers ------------------------------------------------------------------------
DELETE = object()
NAN = float("nan")
BAD = [
    ("agreement", "agreement", ["agreement"], DELETE),
    ("agreement", "agreement", ["methods", "rollout", "scores"], "high"),
    ("agreement", "agreement", ["agreement", "spearman", 0, 1], NAN),
    ("atlas", "head-atlas", ["points", 0], [1.0]),
    ("atlas", "head-atlas", ["projection"], DELETE),
    ("atlas", "qk", ["kinds", 0], "v"),
    ("timeline", "generation", ["steps"], []),
    ("timeline", "generation", ["steps", 0, "attention", "weights", 0], NAN),
    ("step-attribution", "generation", ["attribution"], DELETE),
    ("step-attribution", "generation", ["attribution", "scores", 0], [1.0]),
    ("parts", "parts", ["mass", 0, 0, 0], float("inf")),
    ("parts", "parts", ["parts"], DELETE),
    ("counterfactual", "counterfactual", ["heads", "tvd"], None),
    ("counterfactual", "counterfactual", ["attention", "matched", 0, "before"], "x"),
    ("compare", "compare", ["difference"], None),
    ("compare", "compare", ["difference", "units", "map_a", 0], [0.5]),
    ("compare-models", "compare-models", ["models"], [{}]),
    ("compare-models", "compare-models", ["difference", "maps", 0, 0, 0], NAN),
    ("syntax", "syntax", ["accuracy"], None),
    ("syntax", "syntax", ["overall", "dependent_to_head", "accuracy"], "high"),
    ("rules", "rules", ["results", 0, "threshold"], None),
    ("rules", "rules", ["results"], "all good"),
    ("bias", "bias", ["pairs", 0, "variants"], []),
    ("bias", "bias", ["summary", "heads", "occupation", "mean_difference", 0, 0], NAN),
    ("atlas", "agreement", [], None),  # an answer of another view
]


def mutated(body: dict[str, Any], path: list[Any], value: Any) -> Any:
    copied = copy.deepcopy(body)
    if not path:
        return copied
    owner = copied
    for key in path[:-1]:
        owner = owner[key]
    if value is DELETE:
        del owner[path[-1]]
    else:
        owner[path[-1]] = value
    return copied


@pytest.mark.parametrize(
    ("view", "answer", "path", "value"), BAD, ids=[f"{v}-{'.'.join(map(str, p))}" for v, _, p, _ in BAD]
)
def test_a_malformed_answer_is_refused_in_one_line(view, answer, path, value):
    body = mutated(answers()[answer], path, value)
    for form in ("png", "csv"):
        with pytest.raises(InputError) as refused:
            render(view, body, form, ExportOptions())
        message = str(refused.value)
        assert message and "\n" not in message and len(message) < 240


@pytest.mark.parametrize(("view", "answer"), [(v, a) for v, a, _ in CASES], ids=IDS)
def test_every_top_level_field_missing_or_mistyped_is_refused_or_harmless(view, answer):
    """Each field of the answer deleted, or replaced by text, NaN or null: the table is written or
    refused with an InputError — never another exception (a KeyError would be a 500 on the server)."""
    body = answers()[answer]
    module = views()[view]._module()
    for key in body:
        for value in (DELETE, "x", NAN, None):
            try:
                module.table(mutated(body, [key], value), ExportOptions())
            except InputError as error:
                assert "\n" not in str(error)


def test_one_rule_or_one_role_still_draws():
    found = answers()
    one_rule = mutated(found["rules"], ["results"], found["rules"]["results"][:1])
    check_png(render("rules", one_rule, "png", ExportOptions()))
    no_heads = mutated(found["bias"], ["summary", "heads"], {})
    assert "mass to the" not in svg_text(render("bias", no_heads, "svg", ExportOptions()))


def test_a_non_object_answer_is_refused():
    for body in (None, [], "text", 3):
        with pytest.raises(InputError):
            render("agreement", body, "png", ExportOptions())


# --- personal data ------------------------------------------------------------------------------
def test_an_export_masks_personal_data_as_a_stored_run_does():
    from attnscope.render.counterfactual import counterfactual_answer
    from attnscope.render.exports.build import export

    text = "Write to alice@example.com today"
    body = counterfactual_answer(tiny("qwen2"), text, [{"replace": "today", "with": "soon"}], method="none")

    def tokens(options: ExportOptions) -> str:
        text = export("counterfactual", "csv", options, answer=body).data.decode("utf-8")
        return "".join(row["token"] for row in csv.DictReader(x for x in text.splitlines() if not x.startswith("#")))

    assert "alice@example.com" in tokens(ExportOptions(pii_policy="off"))  # the tokens spell it unmasked
    masked = tokens(ExportOptions())  # masked unless asked otherwise
    assert "alice" not in masked and "example.com" not in masked
    figure = export("counterfactual", "svg", ExportOptions(), answer=body).data.decode("utf-8")
    assert "alice" not in figure


# --- a packaged model, Chinese and English --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("text", [ENGLISH, CHINESE], ids=["english", "chinese"])
def test_packaged_model_answers_export_with_their_tokens(text, tmp_path):
    from attnscope.capture import capture
    from attnscope.capture.generation import generate
    from attnscope.methods.agreement import compare_methods
    from attnscope.methods.steps import step_attribution
    from attnscope.render import json as contracts

    model = packaged("qwen2.5-coder-0.5b")
    trace = capture(model, text, top_k=10)
    agreement = contracts.agreement_json(
        compare_methods(model, text, methods=["attention", "rollout", "grad-x-input"], trace=trace, granularity="token")
    )
    generation = generate(model, text, max_new_tokens=3)
    body = contracts.generation_json(generation)
    body["attribution"] = contracts.step_attribution_json(step_attribution(model, generation, "attention"))
    word = "capital" if text == ENGLISH else "首都"
    for view, answer in (("agreement", agreement), ("timeline", body), ("step-attribution", body)):
        check_png(render(view, answer, "png", ExportOptions()))
        read = check_pdf(render(view, answer, "pdf", ExportOptions()), tmp_path)
        pieces = [t["text"].strip() for t in answer.get("units", body["prompt"]["tokens"])]
        assert any(piece and piece in read for piece in pieces if piece in word or word in piece), (view, read[:300])
    if text == CHINESE:
        assert "北京" in body["generated"]["text"]  # the model's known answer, drawn in the timeline
        assert "北京" in svg_text(render("timeline", body, "svg", ExportOptions())).replace("·", "")
