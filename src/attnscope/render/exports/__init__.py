"""Publication exports of every view: figures (PNG ≥ 1600 px, SVG, PDF) made with matplotlib so they
look like the page, and the numbers as CSV and JSON, each with its provenance.

:mod:`.frame` is the shared frame (options, table, figure helpers, ``encode``); :mod:`.registry`
names the views and writes one (``render(view, data, format, options) -> bytes``); one module per
view draws it. Nothing here is imported by ``import attnscope``: matplotlib loads on first use.
"""
