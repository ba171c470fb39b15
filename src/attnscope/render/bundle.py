"""The web page as one HTML file: every module of ``web/`` inlined, no build tool, no server.

How the page's own ES modules run from a ``file://`` page (or an ``<iframe srcdoc>``):

- each module's relative imports (``from "./api.js"``, ``import "../i18n.js"``) are rewritten to bare
  specifiers (``"attnscope/api.js"``), and ``new URL("./palette.json", import.meta.url)`` to the
  address the server would give it (``"/static/palette.json"``: :mod:`web/standalone.js` answers it);
- the sources travel deflated and base64-encoded in one ``<script type="application/octet-stream">``;
- a small classic script (:data:`BOOT`) inflates them with the browser's ``DecompressionStream``,
  turns each into a ``blob:`` URL, inserts an import map from the bare specifiers to those URLs
  (before any module loads, as import maps require) and then loads ``attnscope/standalone.js``, the
  module that answers the page's requests from the embedded trace and imports ``app.js``.

Every ``.js`` file of ``web/`` is bundled (not just those reachable from ``app.js``), so a view that
imports a module lazily finds it too; the stylesheet is inlined as a ``<style>``. The page's body is
``index.html``'s, unchanged but for the prompt, so the controls are the page's own.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import zlib
from importlib import resources
from posixpath import dirname, join, normpath

# from "./x.js" · import "./x.js" · import("./x.js") · export ... from "../x.js"
_SPECIFIER = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(["'])(\.{1,2}/[^"']+)\2""")
_META_URL = re.compile(r"""new URL\(\s*(["'])\./([^"']+)\1\s*,\s*import\.meta\.url\s*\)""")
PREFIX = "attnscope/"  # the bare specifier of a web module: attnscope/<path under web/>

# The classic script that starts the page: modules → blob: URLs → import map → standalone.js.
# It has no user-visible text; window.attnscopeStandalone carries what standalone.js needs.
BOOT = """
(async () => {
  const bytes = (id) => Uint8Array.from(atob(document.getElementById(id).textContent.trim()), (c) => c.charCodeAt(0));
  const inflate = async (data) => new Uint8Array(await new Response(
    new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate"))).arrayBuffer());
  let storage = null;
  try { storage = window.localStorage; storage.getItem("attnscope"); } catch (_) { storage = null; }
  if (!storage) { // a sandboxed frame has no storage: the page keeps its choices in memory
    const kept = new Map();
    const memory = { getItem: (k) => (kept.has(k) ? kept.get(k) : null), setItem: (k, v) => { kept.set(k, String(v)); },
      removeItem: (k) => { kept.delete(k); }, clear: () => kept.clear(), key: (i) => [...kept.keys()][i] ?? null,
      get length() { return kept.size; } };
    Object.defineProperty(window, "localStorage", { value: memory, configurable: true });
  }
  const sources = JSON.parse(new TextDecoder().decode(await inflate(bytes("attnscope-modules"))));
  const types = { js: "text/javascript", json: "application/json", css: "text/css" };
  const urls = {};
  for (const [path, source] of Object.entries(sources)) {
    urls[path] = URL.createObjectURL(new Blob([source], { type: types[path.split(".").pop()] || "text/plain" }));
  }
  const imports = {};
  for (const [path, url] of Object.entries(urls)) if (path.endsWith(".js")) imports[PREFIX + path] = url;
  const map = document.createElement("script");
  map.type = "importmap";
  map.textContent = JSON.stringify({ imports });
  document.head.append(map);
  const settings = JSON.parse(document.getElementById("attnscope-settings").textContent);
  window.attnscopeStandalone = { ...settings, sources, urls, payload: await inflate(bytes("attnscope-data")) };
  const entry = document.createElement("script");
  entry.type = "module";
  entry.textContent = 'import "' + PREFIX + 'standalone.js";';
  document.head.append(entry);
})().catch((error) => {
  const box = document.getElementById("error");
  if (box) { box.hidden = false; box.textContent = String(error && error.message || error); }
});
""".replace("PREFIX", json.dumps(PREFIX))


def web_files() -> dict[str, str]:
    """{path under ``web/``: text} of every ``.js``, ``.json``, ``.css`` and ``.html`` file of the
    page, as packaged (``importlib.resources``: works from a wheel too)."""
    root = resources.files("attnscope") / "web"
    found: dict[str, str] = {}

    def walk(folder: object, prefix: str) -> None:
        for entry in folder.iterdir():  # type: ignore[attr-defined]
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
            elif entry.name.rsplit(".", 1)[-1] in ("js", "json", "css", "html"):
                found[name] = entry.read_text(encoding="utf-8")

    walk(root, "")
    return dict(sorted(found.items()))


def rewrite_module(path: str, source: str) -> str:
    """``source`` of the module at ``path`` (under ``web/``) with its relative imports made bare
    (``attnscope/<resolved path>``) and ``new URL("./x", import.meta.url)`` made ``"/static/x"``."""
    folder = dirname(path)

    def bare(match: re.Match[str]) -> str:
        target = normpath(join(folder, match.group(3)))
        if target.startswith(".."):
            raise ValueError(f"{path}: import {match.group(3)!r} leaves web/")
        return f"{match.group(1)}{match.group(2)}{PREFIX}{target}{match.group(2)}"

    source = _SPECIFIER.sub(bare, source)
    return _META_URL.sub(lambda m: json.dumps("/static/" + normpath(join(folder, m.group(2)))), source)


def bundled_modules() -> dict[str, str]:
    """Every module and data file of ``web/`` as the standalone page loads it (see :func:`rewrite_module`)."""
    files = web_files()
    return {
        path: rewrite_module(path, text) if path.endswith(".js") else text
        for path, text in files.items()
        if not path.endswith((".html", ".css"))
    }


def packed(data: bytes) -> str:
    """``data`` deflated (zlib, level 9) and base64-encoded: what ``DecompressionStream("deflate")`` reads."""
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


@functools.lru_cache(maxsize=2)
def _packed_modules(modules: bytes) -> str:
    """:func:`packed` of the bundled modules: the same for every page of this install (each tier tried
    by ``standalone_html``, each ``Trace.show()``), so compressed once."""
    return packed(modules)


def _json_script(value: object) -> str:
    """JSON that is safe inside ``<script>``: ``</`` and ``<!--`` cannot end or open anything."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def page(*, payload: bytes, settings: dict[str, object], prompt: str, language: str) -> str:
    """The whole standalone page: ``index.html``'s body (the prompt box holding ``prompt``), the
    stylesheet inline, the modules and ``payload`` (the embedded trace, :mod:`attnscope.render.standalone`)
    deflated, and :data:`BOOT`. ``settings`` reaches ``standalone.js`` as ``window.attnscopeStandalone``."""
    files = web_files()
    index = files["index.html"]
    body = index[index.index("<body>") : index.index("</html>")]
    area = re.compile(r'(<textarea id="prompt"[^>]*>)(.*?)(</textarea>)', re.DOTALL)
    if not area.search(body):
        raise RuntimeError("index.html has no prompt box: the standalone page cannot be built")
    body = area.sub(lambda m: m.group(1) + html.escape(prompt, quote=False) + m.group(3), body, count=1)
    icon = re.search(r'<link rel="icon"[^>]*>', index)
    modules = json.dumps(bundled_modules(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    style = files["style.css"].replace("</style", "<\\/style")
    return "\n".join(
        [
            "<!doctype html>",
            f'<html lang="{html.escape(language)}">',
            "<head>",
            '  <meta charset="utf-8">',
            '  <meta name="viewport" content="width=device-width, initial-scale=1">',
            f"  <title>{html.escape(str(settings.get('title', 'attnscope')))}</title>",
            f"  {icon.group(0) if icon else ''}",
            f"  <style>\n{style}\n  </style>",
            f'  <script type="application/json" id="attnscope-settings">{_json_script(settings)}</script>',
            f'  <script type="application/octet-stream" id="attnscope-modules">{_packed_modules(modules)}</script>',
            f'  <script type="application/octet-stream" id="attnscope-data">{packed(payload)}</script>',
            f"  <script>{BOOT}</script>",
            "</head>",
            body,
            "</html>",
            "",
        ]
    )
