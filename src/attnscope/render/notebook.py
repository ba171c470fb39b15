"""A trace in a notebook (Jupyter, JupyterLab, VS Code): the standalone page in a sandboxed iframe.

``Trace._repr_html_`` and ``Trace.show()`` call :func:`notebook_html`: the page of
:func:`attnscope.render.standalone.standalone_html` — the web app's own views and controls, every
script inline, no CDN, no server — in an ``<iframe srcdoc=…>`` with ``sandbox="allow-scripts
allow-downloads"``: it runs its scripts in an opaque origin of its own, so it reads nothing of the
notebook and the notebook's styles do not touch it. The output is plain HTML in the ``.ipynb``: it
displays again offline, in any front end that shows HTML outputs (GitHub's viewer strips scripts).
"""

from __future__ import annotations

import html
import os
import tempfile
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace

DEFAULT_HEIGHT = 900  # CSS pixels of the iframe (the page scrolls inside it)


def notebook_html(trace: Trace, *, height: int = DEFAULT_HEIGHT, **options: Any) -> str:
    """``<iframe srcdoc>`` of the standalone page of ``trace``; ``options`` go to
    :func:`~attnscope.render.standalone.standalone_html` (``language``, ``pii_policy``, ``budget_bytes``, ``top_k``)."""
    from attnscope.render.standalone import standalone_html

    if isinstance(height, bool) or not isinstance(height, int) or not 200 <= height <= 10_000:
        raise InputError(f"height must be an integer from 200 to 10000 CSS pixels, not {height!r}")
    page = standalone_html(trace, **options).decode("utf-8")
    title = html.escape(f"attnscope — {trace.model.spec}")
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" title="{title}" '
        f'sandbox="allow-scripts allow-downloads" data-attnscope="standalone" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd;border-radius:4px"></iframe>'
    )


class TraceDisplay:
    """What ``Trace.show()`` displays in a notebook: the page (``_repr_html_``)."""

    def __init__(self, markup: str) -> None:
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup


def _in_notebook() -> bool:
    """Whether an IPython kernel with a rich front end runs this (not a terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell" and hasattr(shell, "kernel")


def show(trace: Trace, *, open_browser: bool = True, **options: Any) -> Path | None:
    """In a notebook: display the page of ``trace`` and return None (a returned display object would
    be shown a second time when ``trace.show()`` ends a cell, as plt.show() avoids too). Elsewhere:
    write the standalone file to a temporary folder, open it in the default browser (unless
    ``open_browser=False``) and return its path."""
    if _in_notebook():
        from IPython.display import display

        display(TraceDisplay(notebook_html(trace, **options)))
        return None
    from attnscope.render.standalone import write_standalone

    folder = Path(tempfile.mkdtemp(prefix="attnscope-"))
    options.pop("height", None)
    path = write_standalone(trace, folder / "trace.html", **options)
    if open_browser and not os.environ.get("ATTNSCOPE_NO_BROWSER"):
        webbrowser.open(path.as_uri())
    return path
