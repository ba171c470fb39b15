"""The one palette and number format of the web page and the HTML report, read from ``web/palette.json``.

The page reads the same file (``web/palette.js``, ``web/format.js``); the browser tests check that
both give identical strings and colours. Numbers: 3 significant digits, rounded half away from
zero on the exact value of the float (as JavaScript's ``toExponential`` does); fixed notation when
the rounded value's decimal exponent is within ``format.fixed_exponents`` (0.00123 … 9990), else
``d.dde±E`` (``1.23e+4``); probabilities as percentages (``0.5434`` → ``"54.3%"``).
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

RGB = tuple[int, int, int]


@cache
def palette() -> dict[str, Any]:
    """The parsed ``palette.json`` (read once)."""
    text = (resources.files("attnscope") / "web" / "palette.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def stops() -> list[RGB]:
    """The sequential colormap's stops (heatmaps of head metrics), low to high."""
    return [(int(r), int(g), int(b)) for r, g, b in palette()["sequential"]["stops"]]


def rgb(name: str) -> RGB:
    """A named colour: ``attention``, ``prediction``, ``positive`` or ``negative``."""
    data = palette()
    value = data["diverging"][name] if name in ("positive", "negative") else data[name]["rgb"]
    return (int(value[0]), int(value[1]), int(value[2]))


def hex_colour(colour: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def label_colour(label: str) -> str:
    """The colour of a head-type label (white for an unknown label)."""
    colours: dict[str, str] = palette()["labels"]
    return colours.get(label, "#ffffff")


def label_colours() -> dict[str, str]:
    return dict(palette()["labels"])


def sequential(t: float) -> RGB:
    """The sequential colormap at ``t`` in [0, 1], linear between the stops (as ``palette.js``)."""
    points = stops()
    x = min(1.0, max(0.0, t)) * (len(points) - 1)
    index = min(len(points) - 2, math.floor(x))
    share = x - index
    low, high = points[index], points[index + 1]
    r, g, b = (_round_js(a + (c - a) * share) for a, c in zip(low, high, strict=True))
    return (r, g, b)


def _round_js(value: float) -> int:
    return math.floor(value + 0.5)  # JavaScript's Math.round


def colour(value: float | None, scale: float) -> str:
    """A score's background on white: red positive, teal negative, opacity ``|value| / scale``
    (display scaling only); ``transparent`` when there is no score. Same string as ``scoreColour`` in
    ``palette.js``."""
    if value is None or not math.isfinite(value) or not scale > 0:
        return "transparent"
    r, g, b = rgb("positive" if value >= 0 else "negative")
    return f"rgba({r},{g},{b},{_fixed3(min(1.0, abs(value) / scale))})"


def contrast_ratio(first: RGB, second: RGB) -> float:
    """The WCAG 2 contrast ratio of two sRGB colours (1 to 21)."""

    def luminance(colour: RGB) -> float:
        def channel(c: int) -> float:
            s = c / 255
            return s / 12.92 if s <= 0.03928 else float(((s + 0.055) / 1.055) ** 2.4)

        r, g, b = (channel(c) for c in colour)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def readable_ink(background: RGB) -> str:
    """Black or white text, whichever contrasts more with ``background`` (always at least 4.58:1,
    above WCAG's 4.5); the page's ``readableInk`` gives the same answer."""
    black = contrast_ratio(background, (0, 0, 0))
    return "#000000" if black >= contrast_ratio(background, (255, 255, 255)) else "#ffffff"


def ink_on_css(css: str, base: RGB = (255, 255, 255)) -> str:
    """:func:`readable_ink` of a ``#rrggbb`` or ``rgba(r,g,b,a)`` colour drawn over ``base``."""
    if css.startswith("#"):
        return readable_ink((int(css[1:3], 16), int(css[3:5], 16), int(css[5:7], 16)))
    if not css.startswith("rgb"):  # "transparent": the base shows
        return readable_ink(base)
    parts = [float(p) for p in css[css.index("(") + 1 : css.index(")")].split(",")]
    alpha = parts[3] if len(parts) == 4 else 1.0
    r, g, b = (_round_js(low + (high - low) * alpha) for high, low in zip(parts[:3], base, strict=True))
    return readable_ink((r, g, b))


def _fixed3(value: float) -> str:
    """``value.toFixed(3)`` of JavaScript (exact value, ties away from zero)."""
    with localcontext() as context:
        context.prec = 1000
        return str(Decimal(value).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))


def colormap() -> Colormap:
    """A matplotlib colormap built from the same stops (for the report's figures)."""
    from matplotlib.colors import LinearSegmentedColormap

    points = [tuple(c / 255 for c in stop) for stop in stops()]
    # 64 entries between stops (plus one): every stop is an exact entry of the lookup table
    return LinearSegmentedColormap.from_list("attnscope", points, N=64 * (len(points) - 1) + 1)


def _digits(value: float, significant: int) -> tuple[str, int]:
    """The ``significant`` digits of ``|value|`` and its decimal exponent, rounded as JavaScript's
    ``toExponential(significant - 1)`` rounds (the exact binary value, ties away from zero)."""
    with localcontext() as context:
        context.prec = 1000  # a double's exact decimal expansion has at most 767 significant digits
        exact = abs(Decimal(value))
        exponent = exact.adjusted()
        mantissa = exact.scaleb(-exponent).quantize(Decimal(1).scaleb(1 - significant), rounding=ROUND_HALF_UP)
        if mantissa >= 10:
            exponent += 1
            mantissa = (mantissa / 10).quantize(Decimal(1).scaleb(1 - significant), rounding=ROUND_HALF_UP)
    return str(mantissa).replace(".", ""), exponent


def _place_point(digits: str, exponent: int) -> str:
    if exponent < 0:
        return "0." + "0" * (-exponent - 1) + digits
    if exponent + 1 >= len(digits):
        return digits + "0" * (exponent + 1 - len(digits))
    return digits[: exponent + 1] + "." + digits[exponent + 1 :]


def fmt(value: float | int | None) -> str:
    """``value`` in the house number format (``format`` in ``format.js`` gives the same string):
    1.3015 → ``1.30``, 0.0802 → ``0.0802``, 12345.6 → ``1.23e+4``, None or NaN → ``—``."""
    spec = palette()["format"]
    if value is None or isinstance(value, bool):
        return str(spec["missing"])
    number = float(value)
    if math.isnan(number):
        return str(spec["missing"])
    if math.isinf(number):
        return str(spec["infinity"]) if number > 0 else "-" + str(spec["infinity"])
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    significant = int(spec["significant"])
    digits, exponent = _digits(number, significant)
    low, high = spec["fixed_exponents"]
    if exponent < low or exponent > high:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent)}"
    return sign + _place_point(digits, exponent)


def fmt_prob(p: float | None) -> str:
    """A probability as a percentage in the same format: 0.5434 → ``54.3%``, 0.0802 → ``8.02%``."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return str(palette()["format"]["missing"])
    return fmt(float(p) * 100) + "%"
