"""One palette and one number format for the page and the HTML report (``web/palette.json``): the
page's ``format.js`` and ``palette.js``, run in Chromium, give the same strings and colours as
``attnscope.render.palette``, and the report draws with them."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest

from attnscope.render import palette
from attnscope.render.html import _heatmap_png, report_html

NUMBERS = [
    0.5434, 0.0802, 1.3015, 12345.6, 0.0, -0.0, 1.0, -1.0, 0.5, -0.3, 123.4, 1234.5, 9999.4, 9999.6, 999.5,
    99.95, 0.001, 0.000999, 0.00123456, 1e-9, -2.5e-7, 5e20, 3.14159, 2.675, 1.005,
    # exact binary ties at the fourth significant digit: both round half away from zero
    1.125, 0.1875, 10.25, 100.5, 1002.5, 0.0625, -1.125, 2.0**-10, 2.0**40,
    float("nan"), float("inf"), float("-inf"), None, 7, 30, 49152,
]  # fmt: skip
PROBABILITIES = [0.5434, 0.0802, 1.0, 0.0, 0.999999, 0.00012345, 1e-9, 0.1234567, 0.5, None]


def page_call(page, module: str, expression: str, values):
    return page.evaluate(
        f"async (values) => {{ const m = await import('/static/{module}'); return values.map((v) => {expression}); }}",
        [None if isinstance(v, float) and not np.isfinite(v) else v for v in values],
    )


def test_page_and_report_print_numbers_identically(page):
    finite = [v for v in NUMBERS if not (isinstance(v, float) and not np.isfinite(v))]
    assert page_call(page, "format.js", "m.format(v)", finite) == [palette.fmt(v) for v in finite]
    specials = page.evaluate(
        "async () => { const m = await import('/static/format.js');"
        " return [m.format(NaN), m.format(Infinity), m.format(-Infinity), m.format(undefined)]; }"
    )
    assert specials == [palette.fmt(float("nan")), palette.fmt(float("inf")), palette.fmt(float("-inf")), "—"]
    shown = page_call(page, "format.js", "m.formatProb(v)", PROBABILITIES)
    assert shown == [palette.fmt_prob(p) for p in PROBABILITIES]
    # the documented examples
    assert [palette.fmt(v) for v in (0.5434, 1.3015, 12345.6)] == ["0.543", "1.30", "1.23e+4"]
    assert [palette.fmt_prob(p) for p in (0.5434, 0.0802)] == ["54.3%", "8.02%"]


def test_page_and_report_use_the_same_colours(page):
    page_palette = page.evaluate(
        "async () => { const m = await import('/static/palette.js');"
        " return {stops: m.STOPS, labels: m.LABELS, attention: m.ATTENTION, positive: m.POSITIVE,"
        " negative: m.NEGATIVE, prediction: m.PREDICTION,"
        " css: getComputedStyle(document.documentElement).getPropertyValue('--attention').trim()}; }"
    )
    assert [tuple(s) for s in page_palette["stops"]] == palette.stops()
    assert page_palette["labels"] == palette.label_colours()
    for name in ("attention", "positive", "negative", "prediction"):
        assert tuple(page_palette[name]) == palette.rgb(name)
    assert page_palette["css"] == ", ".join(str(c) for c in palette.rgb("attention"))  # style.css reads it
    # the sequential colormap: page, Python and the report's matplotlib colormap agree
    ts = [i / 16 for i in range(17)]
    assert [tuple(c) for c in page_call(page, "palette.js", "m.sequential(v)", ts)] == [
        palette.sequential(t) for t in ts
    ]
    cmap = palette.colormap()
    for t, stop in zip(np.linspace(0, 1, len(palette.stops())), palette.stops(), strict=True):
        assert tuple(round(c * 255) for c in cmap(float(t))[:3]) == stop
    # signed scores on white
    scores = [0.3, -0.2, 0.0, 1.0, -1.5, None]
    assert page_call(page, "palette.js", "m.scoreColour(v, 0.6)", scores) == [palette.colour(s, 0.6) for s in scores]


def test_report_figures_and_views_are_drawn_with_the_palette(page):
    from matplotlib.image import imread

    values = [[(4 * i + j) / 15 for j in range(4)] for i in range(4)]  # 0 ... 1 in 16 steps
    png = base64.b64decode(_heatmap_png(values, "test").split(",", 1)[1])
    pixels = (imread(io.BytesIO(png))[..., :3] * 255).round().astype(int).reshape(-1, 3)
    expected = page_call(page, "palette.js", "m.sequential(v)", [v for row in values for v in row])
    for colour in expected:  # every cell's colour, as the page's metric grid draws it, is in the figure
        # (within 2 of 255: the figure's lookup table has 257 entries; viridis itself is 5 to 10 away)
        assert np.abs(pixels - np.array(colour)).max(axis=1).min() <= 2, colour
    units = [{"text": "a", "start": 0, "end": 1}, {"text": "b", "start": 1, "end": 2}]
    data = {
        "model": {"spec": "m", "kind": "causal", "layers": 1, "heads": 1},
        "text": "ab",
        "granularity": "token",
        "prediction": [{"token": "c", "id": 1, "prob": 0.5434}],
        "observations": [],
        "thresholds": {"sink": 0.5},
        "units": units,
        "methods": {"m": {"scores": [0.3, -0.6], "units": units, "details": {}}},
        "agreement": {"methods": ["m"], "spearman": [[1.0]], "kendall": [[1.0]]},
        "heads": {"metrics": {"entropy": [[0.5]]}, "labels": [["sink"]], "note": ""},
        "provenance": {},
    }  # fmt: skip
    page_html = report_html(data)
    backgrounds = re.findall(r'class="unit" data-score="([^"]*)" title="([^"]*)" style="background:([^"]*)"', page_html)
    colours = page_call(page, "palette.js", "m.scoreColour(v, 0.6)", [0.3, -0.6])
    titles = page_call(page, "format.js", "m.format(v)", [0.3, -0.6])
    assert backgrounds == [("0.3", titles[0], colours[0]), ("-0.6", titles[1], colours[1])]
    assert page_call(page, "format.js", "m.formatProb(v)", [0.5434])[0] in page_html  # 54.3%
    assert f"background:{palette.label_colour('sink')}" in page_html


@pytest.mark.parametrize("value", [0.5434, 1.3015, 12345.6, 0.0802])
def test_fmt_gives_three_significant_digits(value):
    digits = re.sub(r"[^0-9]", "", palette.fmt(value).split("e")[0]).lstrip("0")
    assert len(digits) == 3
    assert float(palette.fmt(value)) == pytest.approx(value, rel=5e-3)
