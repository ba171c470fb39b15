"""Text on coloured cells is readable: black or white by WCAG contrast (at least 4.5:1) for every step of
every palette in palette.json, in the report's number cells too. The ratio is computed here from the
WCAG 2 definition, not with the code under test."""

from __future__ import annotations

import re

from attnscope.render import palette
from attnscope.render.html import report_html

STEPS = [i / 64 for i in range(65)]


def wcag(first, second) -> float:
    def luminance(colour) -> float:
        linear = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in colour]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def hex_rgb(text: str) -> tuple[int, int, int]:
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


def ramp(colour, t, base):
    return tuple(round(b + (c - b) * t) for c, b in zip(colour, base, strict=True))


def between(stops, t):
    x = t * (len(stops) - 1)
    i = min(len(stops) - 2, int(x))
    return tuple(round(a + (b - a) * (x - i)) for a, b in zip(stops[i], stops[i + 1], strict=True))


def palette_colours():
    data = palette.palette()
    backgrounds = [hex_rgb(data["ink"]["background"]), hex_rgb(data["ink_dark"]["background"])]
    for name, choice in data["palettes"].items():
        if not isinstance(choice, dict):
            continue
        for base in backgrounds:
            for t in STEPS:
                scheme = choice["attention"]
                shown = between(scheme["stops"], t) if "stops" in scheme else ramp(scheme["ramp"], t, base)
                yield name, "attention", shown
                yield name, "positive", ramp(choice["positive"], t, base)
                yield name, "negative", ramp(choice["negative"], t, base)


def test_every_palette_step_gets_readable_text():
    entries = list(palette_colours())
    assert len(entries) == 4 * 2 * len(STEPS) * 3  # 4 palettes, light and dark page, 3 scales
    for name, scale, colour in entries:
        ink = hex_rgb(palette.readable_ink(colour))
        assert ink in ((0, 0, 0), (255, 255, 255))
        assert wcag(colour, ink) >= 4.5, (name, scale, colour)


def test_labels_and_report_cells_are_readable():
    for label, colour in palette.label_colours().items():
        assert wcag(hex_rgb(colour), hex_rgb(palette.ink_on_css(colour))) >= 4.5, label
    units = [{"text": "a", "start": 0, "end": 1}, {"text": "b", "start": 1, "end": 2}]
    values = [1.0, 0.56, 0.3, -0.2, -0.7, -1.0]
    data = {
        "model": {"spec": "m", "kind": "causal", "layers": 1, "heads": 1},
        "text": "ab",
        "granularity": "token",
        "prediction": [{"token": "c", "id": 1, "prob": 0.5}],
        "observations": [],
        "thresholds": {"sink": 0.5},
        "units": units,
        "methods": {f"m{i}": {"scores": [0.3, -0.6], "units": units, "details": {}} for i in range(len(values))},
        "agreement": {
            "methods": [f"m{i}" for i in range(len(values))],
            "spearman": [values for _ in values],
            "kendall": [values for _ in values],
        },
        "heads": {"metrics": {"entropy": [[0.5]]}, "labels": [["sink"]], "note": ""},
        "provenance": {},
    }
    cells = re.findall(
        r"style='background:rgba\((\d+),(\d+),(\d+),([0-9.]+)\);color:(#[0-9a-f]{6})'", report_html(data)
    )
    assert len(cells) >= 2 * len(values) ** 2
    for r, g, b, alpha, ink in cells:
        shown = ramp((int(r), int(g), int(b)), float(alpha), (255, 255, 255))  # on the report's white page
        assert wcag(shown, hex_rgb(ink)) >= 4.5, (r, g, b, alpha, ink)
