"""The export framework and the trace views' exports, checked against what they claim: PNGs at least
1600 px wide whose heatmap cells have the palette's colour of the weight that plain transformers'
eager attention gives, SVGs that parse with their title and axis labels as text, PDFs that
pdftoppm rasterises and whose pdftotext holds the labels (Chinese too), and CSV numbers equal to
eager attention (1e-5) — for a tiny model and the packaged one, on the English and Chinese examples.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from functools import cache

import numpy as np
import pytest
import torch

from attnscope.capture import capture
from attnscope.errors import InputError
from attnscope.render.exports.build import export
from attnscope.render.exports.frame import DPI, ExportOptions
from attnscope.render.exports.registry import TRACE_VIEWS, render, view, views
from attnscope.render.palette import rgb
from tests.conftest import CHINESE, ENGLISH, packaged, tiny

TEXTS = (ENGLISH, CHINESE)


@cache
def eager_tiny(family: str, text: str) -> np.ndarray:
    """(layers, heads, query, key) float64 eager attention of the tiny model, without attnscope's capture."""
    from attnscope.models.tiny import build_tiny

    model, tokenizer, _ = build_tiny(family, attn_implementation="eager")
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    return np.stack([a[0].double().numpy() for a in out.attentions])


@cache
def trace_of(family: str, text: str):
    return capture(tiny(family), text, backend="full")


def read_csv(data: bytes) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, the '#' provenance lines) of an exported CSV."""
    lines = data.decode("utf-8").splitlines()
    comments = [line for line in lines if line.startswith("#")]
    table = list(csv.reader(io.StringIO("\n".join(line for line in lines if not line.startswith("#")))))
    return table[0], table[1:], comments


def heatmap_matrix(data: bytes, n: int) -> np.ndarray:
    header, rows, _ = read_csv(data)
    assert header == ["query", "query_token", "key", "key_token", "weight"]
    matrix = np.full((n, n), np.nan)
    for query, _, key, _, weight in rows:
        matrix[int(query), int(key)] = float(weight)
    return matrix


def png_pixels(data: bytes) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(io.BytesIO(data), format="png"))  # (rows, columns, 4) in [0, 1]


def not_blank(pixels: np.ndarray) -> float:
    """The share of pixels that are not white."""
    return float((pixels[..., :3] < 0.97).any(axis=-1).mean())


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(("layer", "head"), [(1, 2), (2, "mean"), (0, "max")])
def test_heatmap_csv_equals_eager_attention(text, layer, head):
    trace = trace_of("llama", text)
    expected = eager_tiny("llama", text)[layer]  # (heads, query, key)
    expected = expected[head] if isinstance(head, int) else getattr(expected, head)(axis=0)
    shown = heatmap_matrix(render("heatmap", trace, "csv", ExportOptions(layer=layer, head=head)), len(trace.tokens))
    np.testing.assert_allclose(shown, expected, atol=1e-5)


def test_heatmap_png_cells_have_the_palette_colour_of_eager_weights():
    """Every cell's centre pixel is white blended towards the palette's attention colour by the
    eager weight (within the 256-level colormap's step)."""
    from attnscope.render.exports.frame import encode

    trace = trace_of("llama", ENGLISH)
    figure = view("heatmap").figure(trace, ExportOptions(layer=1, head=2))
    figure.set_dpi(DPI)
    figure.canvas.draw()
    axes = figure.axes[0]
    box = axes.get_window_extent().frozen()  # display pixels at DPI, origin at the bottom left
    height = figure.bbox.height
    data = encode(figure, "png")
    pixels = png_pixels(data)
    assert pixels.shape[1] >= 1600 and abs(pixels.shape[0] - height) <= 1
    weights = eager_tiny("llama", ENGLISH)[1, 2]
    n = weights.shape[0]
    red = np.array(rgb("attention"), dtype=float)
    for query in range(n):
        for key in range(n):
            x = box.x0 + (key + 0.5) * box.width / n
            y = height - (box.y0 + box.height - (query + 0.5) * box.height / n)
            shown = pixels[int(y), int(x), :3] * 255
            expected = 255 + (red - 255) * weights[query, key]
            assert np.abs(shown - expected).max() <= 2.5, (query, key, shown, expected)


@pytest.mark.parametrize("name", list(TRACE_VIEWS))
def test_every_trace_view_writes_png_svg_pdf_and_its_numbers(name, tmp_path):
    trace = trace_of("llama", ENGLISH)
    options = ExportOptions(layer=1, head=2, query=5)
    png = png_pixels(render(name, trace, "png", options))
    assert png.shape[1] >= 1600 and not_blank(png) > 0.01
    svg = render(name, trace, "svg", options).decode("utf-8")
    root = ElementTree.fromstring(svg)
    texts = " ".join(node.text or "" for node in root.iter() if node.tag.endswith("text"))
    assert "tiny random llama" in texts and "attnscope" in texts  # the provenance footer is text
    title = {
        "tokens": "Token view",
        "heatmap": "Attention heatmap",
        "grid": "All heads",
        "model": "Model view",
        "lines": "Head view",
        "graph": "Attention graph",
        "sankey": "Attention flow",
        "metrics": "Head metrics",
    }[name]
    assert title in texts
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(render(name, trace, "pdf", options))
    assert_pdf_renders(pdf, [title, "fingerprint"])
    header, rows, comments = read_csv(render(name, trace, "csv", options))
    assert rows and comments[0].startswith("# attnscope") and any(trace.model.fingerprint[:12] in c for c in comments)
    answer = __import__("json").loads(render(name, trace, "json", options))
    assert answer["result"] == "export" and answer["columns"] == header and len(answer["rows"]) == len(rows)
    assert (
        answer["model"]["fingerprint"] == trace.model.fingerprint and answer["provenance"]["model_spec"] == "tiny:llama"
    )


def assert_pdf_renders(path, words: list[str]) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils is not installed")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(path.with_suffix(""))], check=True)
    import matplotlib.image

    pages = sorted(path.parent.glob(f"{path.stem}*.png"))
    assert pages and not_blank(np.asarray(matplotlib.image.imread(pages[0]))) > 0.01
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    for word in words:
        assert word in text, (word, text[:500])


def test_chinese_labels_stay_text_in_svg_and_pdf(tmp_path):
    trace = capture(tiny("qwen2"), CHINESE, backend="full")
    labels = [t.text for t in trace.tokens if t.text.strip()]
    assert "首" in "".join(labels)
    svg = render("heatmap", trace, "svg", ExportOptions(layer=0, head=0)).decode("utf-8")
    texts = "".join(node.text or "" for node in ElementTree.fromstring(svg).iter() if node.tag.endswith("text"))
    shown = [label for label in labels if label in texts]
    assert len(shown) == len(labels)  # every token label is there as text, Chinese included
    pdf = tmp_path / "chinese.pdf"
    pdf.write_bytes(render("heatmap", trace, "pdf", ExportOptions(layer=0, head=0)))
    assert_pdf_renders(pdf, [label for label in labels if "首" in label or "国" in label])


def test_the_token_view_coloured_by_a_method_shows_that_method():
    from attnscope.methods.run import attribute
    from attnscope.render.json import attribution_json

    model = tiny("llama")
    trace = trace_of("llama", ENGLISH)
    answer = attribution_json(attribute(model, ENGLISH, "grad-x-input", trace=trace))
    options = ExportOptions()
    svg = render("tokens", answer, "svg", options).decode("utf-8")
    texts = " ".join(node.text or "" for node in ElementTree.fromstring(svg).iter() if node.tag.endswith("text"))
    assert "grad-x-input" in texts and "signed" in texts and "attention weight" not in texts
    header, rows, _ = read_csv(render("tokens", answer, "csv", options))
    assert header == ["unit", "text", "start", "end", "score"]
    np.testing.assert_allclose([float(r[4]) for r in rows], answer["scores"], atol=0)
    # the same view of the trace shows attention instead; through build.export, --method runs the method
    plain = " ".join(n.text or "" for n in ElementTree.fromstring(render("tokens", trace, "svg", options)).iter())
    assert "attention weight" in plain and "grad-x-input" not in plain
    made = export("tokens", "csv", ExportOptions(method="grad-x-input", pii_policy="off"), trace=trace, model=model)
    np.testing.assert_allclose([float(r[4]) for r in read_csv(made.data)[1]], answer["scores"], atol=1e-6)


def test_a_method_that_runs_the_model_is_refused_without_it():
    with pytest.raises(InputError, match="runs the model again"):
        export("tokens", "png", ExportOptions(method="grad-x-input"), trace=trace_of("llama", ENGLISH))


def test_rollout_in_the_token_view_needs_no_model():
    made = export("tokens", "csv", ExportOptions(method="rollout", pii_policy="off"), trace=trace_of("llama", ENGLISH))
    header, rows, comments = read_csv(made.data)
    assert header[-1] == "score" and len(rows) == len(trace_of("llama", ENGLISH).tokens)
    assert any("method rollout" in line for line in comments)


def test_long_axes_are_pooled_by_block_maximum():
    """pooled_map with a small limit: each cell is the max of its f × f block of eager weights."""
    from attnscope.render.exports.common import pooled_map, shown

    trace = trace_of("llama", ENGLISH)
    n = len(trace.tokens)
    seen = shown(trace, ExportOptions(layer=2, head=1))
    pooled, factor = pooled_map(trace, seen.view, limit=7)
    assert factor == -(-n // 7)
    weights = eager_tiny("llama", ENGLISH)[2, 1]
    cells = -(-n // factor)
    expected = np.zeros((cells, cells))
    for q in range(cells):
        for k in range(cells):
            expected[q, k] = weights[q * factor : (q + 1) * factor, k * factor : (k + 1) * factor].max()
    np.testing.assert_allclose(pooled, expected, atol=1e-5)


def test_personal_data_is_masked_in_token_labels():
    text = "Call me on 13812345678 tomorrow"
    trace = capture(tiny("qwen2"), text, backend="full")
    masked = render("heatmap", trace, "csv", ExportOptions()).decode("utf-8")  # masked unless asked otherwise
    kept = render("heatmap", trace, "csv", ExportOptions(pii_policy="off")).decode("utf-8")
    labels = lambda data: "".join(sorted({row[1] for row in read_csv(data.encode())[1]}))  # noqa: E731
    assert "5678" in labels(kept) and "5678" not in labels(masked) and "[PHONE]" in masked
    with pytest.raises(InputError, match="drop"):
        render("heatmap", trace, "png", ExportOptions(pii_policy="drop"))


def test_an_attribution_answer_without_its_text_and_an_agreement_answer_are_masked():
    """`attnscope attribute --json` writes no text beside the units, and an agreement answer's units
    are not a structure mask_answer knows: each unit alone spells no value, together they did (a
    review found the e-mail's pieces unmasked in both exports)."""
    from attnscope.methods.agreement import compare_methods
    from attnscope.methods.run import attribute
    from attnscope.render import json as contracts

    text = "Write to alice@example.com today"
    model = tiny("qwen2")
    attribution = contracts.attribution_json(attribute(model, text, "rollout"))
    attribution.pop("text", None)
    agreement = contracts.agreement_json(compare_methods(model, text, methods=["attention", "rollout"]))
    for name, body, column in (("tokens", attribution, "text"), ("agreement", agreement, "label")):

        def spelled(policy: str, name: str = name, body: dict = body, column: str = column) -> str:
            data = export(name, "csv", ExportOptions(pii_policy=policy), answer=body).data
            header, rows, _ = read_csv(data)
            return "".join(row[header.index(column)] for row in rows)

        assert "alice@example.com" in spelled("off"), name  # the units spell it unmasked
        assert "alice" not in spelled("mask") and "[EMAIL]" in spelled("mask"), name
        with pytest.raises(InputError, match="drop"):
            export(name, "csv", ExportOptions(pii_policy="drop"), answer=body)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: render("nope", t, "png", ExportOptions()), "unknown view"),
        (lambda t: render("heatmap", t, "gif", ExportOptions()), "unknown format"),
        (lambda t: render("heatmap", t, "png", ExportOptions(layer=9)), "out of range"),
        (lambda t: render("heatmap", t, "png", ExportOptions(query=99)), "out of range"),
        (lambda t: render("heatmap", t, "png", ExportOptions(head=7)), "out of range"),
        (lambda t: render("heatmap", {"result": "analysis"}, "png", ExportOptions()), "drawn from a trace"),
        (lambda t: render("tokens", {"result": "attribution", "method": "rollout"}, "png", ExportOptions()), "units"),
        (
            lambda t: render(
                "tokens",
                {"result": "attribution", "method": "rollout", "units": [{"text": "a"}], "scores": ["x"]},
                "csv",
                ExportOptions(),
            ),
            "not numbers",
        ),
        (
            lambda t: render(
                "metrics", {"result": "heads", "metrics": {"entropy": [[1.0], [1.0, 2.0]]}}, "png", ExportOptions()
            ),
            "layers × heads",
        ),
        (lambda t: render("metrics", t, "png", ExportOptions(metric="nope")), "unknown metric"),
        (lambda t: render("metrics", {"result": "syntax"}, "png", ExportOptions()), "needs a heads answer"),
        # a view's options as the CLI's --option gives them (text when not JSON): one line, not a ValueError
        (lambda t: render("graph", t, "png", ExportOptions(method_options={"threshold": "abc"})), "number"),
        (lambda t: render("graph", t, "csv", ExportOptions(method_options={"max_edges": 2.5})), "integer"),
        (lambda t: render("graph", t, "png", ExportOptions(method_options={"thresold": 0.2})), "not an option"),
        (lambda t: render("sankey", t, "png", ExportOptions(method_options={"top": "abc"})), "number"),
        (lambda t: render("sankey", t, "csv", ExportOptions(method_options={"residual": "x"})), "number"),
        (lambda t: render("sankey", t, "png", ExportOptions(method_options={"residual": float("nan")})), "residual"),
    ],
)
def test_bad_inputs_are_one_line_refusals(call, message):
    with pytest.raises(InputError, match=message) as raised:
        call(trace_of("llama", ENGLISH))
    assert "\n" not in str(raised.value)


def test_the_registry_finds_the_answer_views_and_their_answers():
    names = views()
    assert set(TRACE_VIEWS) <= set(names)
    for name, one in names.items():
        if one.needs == "answer":
            assert one.answer_kinds, name
            module = __import__(f"attnscope.render.exports.{one.module}", fromlist=["figure"])
            assert callable(module.figure) and callable(module.table)


@pytest.mark.slow
@pytest.mark.parametrize("text", TEXTS)
def test_packaged_model_heatmap_csv_equals_plain_transformers(text):
    """smollm2-135m: the exported numbers against transformers' own GGUF load with eager attention."""
    from tests.test_real_models import reference_forward, reference_gguf

    model = packaged("smollm2-135m")
    ref_model, ref_tokenizer = reference_gguf("smollm2-135m")
    ids, attentions, _ = reference_forward(ref_model, ref_tokenizer, text)
    trace = capture(model, text, backend="full")
    assert trace.token_ids == ids
    for layer, head in ((0, 3), (29, "mean")):
        expected = attentions[layer][head] if isinstance(head, int) else attentions[layer].mean(axis=0)
        shown = heatmap_matrix(render("heatmap", trace, "csv", ExportOptions(layer=layer, head=head)), len(ids))
        np.testing.assert_allclose(shown, expected, atol=1e-5)
    png = png_pixels(render("heatmap", trace, "png", ExportOptions()))
    assert png.shape[1] >= 1600 and not_blank(png) > 0.01


def test_long_inputs_sample_the_model_views_rows_and_say_so(monkeypatch):
    """Beyond EXACT_TOKENS the model view reads evenly spaced rows of each block (first and last of
    each block of 4 here): each cell is the max over those rows and the block's keys of eager weights."""
    from attnscope.render.exports import model as model_view

    monkeypatch.setattr(model_view, "THUMB", 6)
    monkeypatch.setattr(model_view, "EXACT_TOKENS", 8)
    monkeypatch.setattr(model_view, "SAMPLED_ROWS", 12)
    trace = trace_of("llama", ENGLISH)
    n = len(trace.tokens)
    _, rows, comments = read_csv(render("model", trace, "csv", ExportOptions()))
    assert any("estimated from 2 evenly spaced query rows per block" in line for line in comments)
    weights = eager_tiny("llama", ENGLISH)  # (layers, heads, query, key)
    factor = -(-n // 6)
    for layer, head, query, key, value in rows:
        block = [r for r in (int(query), min(n, int(query) + factor) - 1)]
        keys = slice(int(key), int(key) + factor)
        assert abs(float(value) - weights[int(layer), int(head)][block, keys].max()) < 1e-5


def test_long_inputs_estimate_head_metrics_from_evenly_spaced_rows(monkeypatch):
    from attnscope.render.exports import metrics as metrics_view

    monkeypatch.setattr(metrics_view, "EXACT_TOKENS", 8)
    monkeypatch.setattr(metrics_view, "SAMPLED_ROWS", 6)
    trace = trace_of("llama", ENGLISH)
    n = len(trace.tokens)
    header, rows, _ = read_csv(render("metrics", trace, "csv", ExportOptions()))
    sampled = np.unique(np.linspace(0, n - 1, 6).round().astype(int))
    weights = eager_tiny("llama", ENGLISH)[:, :, sampled]  # (layers, heads, rows, key)
    logs = np.log(np.where(weights > 0, weights, 1.0))
    entropy = -(weights * logs).sum(axis=-1).mean(axis=-1)  # (layers, heads)
    sink = weights[..., 0].mean(axis=-1)
    for row in rows:
        layer, head = int(row[0]), int(row[1])
        assert abs(float(row[header.index("entropy")]) - entropy[layer, head]) < 1e-5
        assert abs(float(row[header.index("sink")]) - sink[layer, head]) < 1e-5
    svg = render("metrics", trace, "svg", ExportOptions()).decode("utf-8")
    assert "estimated from 6 evenly spaced query rows" in svg


def test_long_token_views_are_bars_with_labelled_axes(monkeypatch):
    from attnscope.render.exports import tokens as tokens_view

    monkeypatch.setattr(tokens_view, "CHIP_TOKENS", 10)
    trace = trace_of("llama", ENGLISH)
    png = png_pixels(render("tokens", trace, "png", ExportOptions(layer=1, head=2)))
    assert png.shape[1] >= 1600 and not_blank(png) > 0.005
    texts = " ".join(
        n.text or "" for n in ElementTree.fromstring(render("tokens", trace, "svg", ExportOptions())).iter()
    )
    assert "token" in texts and "attention weight (raw probability)" in texts
