"""The export views: one :class:`ExportView` per view name, and :func:`render` that writes one.

Two kinds of view:

- **trace views** (:data:`TRACE_VIEWS`): their numbers are read from a
  :class:`~attnscope.capture.trace.Trace` (attention of a layer/head, the whole model's maps, head
  metrics, graph, Sankey). The token view also takes an ``attribution`` answer: then it shows that
  method's scores, not attention.
- **answer views**: every other module ``attnscope.render.exports.<name>`` that defines ``figure``
  and ``table``; their numbers come from a method's JSON answer (the page already has it, a stored
  run holds it). A module may say which answers it reads with ``ANSWER_KINDS`` (the answers'
  ``"result"`` values, default ``(name,)``) and its title with ``TITLE``. The view's name is the
  module's name with ``_`` written ``-`` (``compare_models`` → ``compare-models``). Such modules
  are found when first asked for, so adding one needs no line here.

Each module's functions: ``figure(data, options) -> Figure`` and ``table(data, options) -> Table``
(:mod:`.frame`); a malformed answer or an out-of-range option raises a one-line
:class:`~attnscope.errors.InputError`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from attnscope.errors import InputError
from attnscope.render.exports.frame import FIGURE_FORMATS, FORMATS, TABLE_FORMATS, ExportOptions, Table, encode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# name -> (title, module): the views drawn from a trace (the page's tabs of the same ids)
TRACE_VIEWS: dict[str, tuple[str, str]] = {
    "tokens": ("token view", "tokens"),
    "heatmap": ("attention heatmap", "heatmap"),
    "grid": ("all heads", "grid"),
    "model": ("model view", "model"),
    "lines": ("head view (lines)", "lines"),
    "graph": ("attention graph", "graph"),
    "sankey": ("attention flow (Sankey)", "sankey"),
    "metrics": ("head metrics", "metrics"),
}
_NOT_VIEWS = {"frame", "registry", "build", "sources", "common"}  # helper modules of this package


@dataclass(frozen=True)
class ExportView:
    """One exportable view: its name, title, the module that draws it, and what it reads."""

    name: str
    title: str
    module: str  # attnscope.render.exports.<module>
    needs: str  # "trace" (a Trace; the token view also takes an attribution answer) or "answer"
    answer_kinds: tuple[str, ...] = ()

    @property
    def formats(self) -> tuple[str, ...]:
        return (*FIGURE_FORMATS, *TABLE_FORMATS) + (("html",) if html_available() else ())

    def _module(self) -> Any:
        return importlib.import_module(f"attnscope.render.exports.{self.module}")

    def figure(self, data: Any, options: ExportOptions) -> Figure:
        self.check(data)
        figure: Figure = self._module().figure(data, options)
        return figure

    def table(self, data: Any, options: ExportOptions) -> Table:
        self.check(data)
        table: Table = self._module().table(data, options)
        return table

    def reads_answer(self, answer: Mapping[str, Any]) -> bool:
        """Whether this view draws ``answer`` (its ``"result"`` is one of :attr:`answer_kinds`)."""
        return isinstance(answer, Mapping) and answer.get("result") in self.answer_kinds

    def check(self, data: Any) -> None:
        """Refuse data this view cannot draw (one line)."""
        if isinstance(data, Mapping):
            if not self.answer_kinds:
                raise InputError(f"the {self.name} view is drawn from a trace, not from an answer")
            if not self.reads_answer(data):
                kinds = ", ".join(self.answer_kinds)
                raise InputError(f"the {self.name} view needs a {kinds} answer, not {data.get('result')!r}")
        elif self.needs == "answer":
            raise InputError(f"the {self.name} view is drawn from a {', '.join(self.answer_kinds)} answer, not a trace")


@cache
def views() -> dict[str, ExportView]:
    """Every export view by name: the trace views, then the answer modules found in this package."""
    found: dict[str, ExportView] = {}
    for name, (title, module) in TRACE_VIEWS.items():
        kinds = {"tokens": ("attribution",), "metrics": ("heads",)}.get(name, ())
        found[name] = ExportView(name, title, module, "trace", kinds)
    from attnscope.render import exports

    for info in sorted(pkgutil.iter_modules(exports.__path__), key=lambda m: m.name):
        module = info.name
        if module in _NOT_VIEWS or module.startswith("_") or module in {m for _, m in TRACE_VIEWS.values()}:
            continue
        loaded = importlib.import_module(f"attnscope.render.exports.{module}")
        if not (callable(getattr(loaded, "figure", None)) and callable(getattr(loaded, "table", None))):
            continue
        name = module.replace("_", "-")
        kinds = tuple(getattr(loaded, "ANSWER_KINDS", (name,)))
        title = str(getattr(loaded, "TITLE", name.replace("-", " ")))
        found[name] = ExportView(name, title, module, "answer", kinds)
    return found


def view(name: str) -> ExportView:
    """The view called ``name``; an unknown name is refused with the list of views."""
    known = views()
    if name not in known:
        raise InputError(f"unknown view {name!r}; views: {', '.join(known)}")
    return known[name]


def check_format(form: str, chosen: ExportView | None = None) -> str:
    formats = chosen.formats if chosen is not None else FORMATS
    if form not in formats:
        raise InputError(f"unknown format {form!r}; formats: {', '.join(formats)}")
    return form


def views_for_answer(answer: Mapping[str, Any]) -> list[str]:
    """The views that draw ``answer`` (a stored run's result), by name; a view's own first, then the
    views of a part of it (a generation: ``timeline`` before ``step-attribution``)."""
    found = [name for name, one in views().items() if one.reads_answer(answer)]
    return sorted(found, key=lambda name: ("-" in name and views()[name].needs == "answer", found.index(name)))


def html_available() -> bool:
    """Whether the standalone HTML writer (``attnscope.render.standalone``) is installed in this tree."""
    import importlib.util

    return importlib.util.find_spec("attnscope.render.standalone") is not None


def render(name: str, data: Any, form: str, options: ExportOptions) -> bytes:
    """View ``name`` of ``data`` as ``form`` bytes: a figure (png, svg, pdf) or its numbers (csv, json).
    HTML is written by :func:`attnscope.render.standalone.standalone_html` (the caller's job: it needs
    the whole trace or generation, not one view)."""
    chosen = view(name)
    check_format(form, chosen)
    if form in FIGURE_FORMATS:
        return encode(chosen.figure(data, options), form)
    if form == "html":
        raise InputError("HTML is written from a whole trace or generation (standalone_html), not from one view")
    table = chosen.table(data, options)
    return table.csv() if form == "csv" else table.json()
