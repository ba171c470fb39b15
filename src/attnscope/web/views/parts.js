// Prompt parts: name parts of the prompt ("name: text from the prompt", one per line) and see the
// attention mass from the query token (or a whole part) to each part, layer by layer.
import { postJSON } from "../api.js";
import { $, count, el, fillSelect, scaleLegend, table } from "../dom.js";
import { format } from "../format.js";
import { attentionRGB, colourBar, css, inkOnAlpha } from "../palette.js";
import { t } from "../i18n.js";
import "../locales/views.js";

let shown = null;

// One part per non-empty line (or sentence when the text is one line): "name: snippet".
export function suggestParts(text) {
  let pieces = text.split("\n").filter((line) => line.trim());
  if (pieces.length < 2) pieces = text.split(/(?<=[.!?。！？])\s*/).filter((s) => s.trim());
  return pieces.slice(0, 12).map((piece, i) => `part${i + 1}: ${piece.trim()}`).join("\n");
}

export function parseParts(text, spec) {
  const parts = [];
  let from = 0;
  for (const raw of spec.split("\n")) {
    if (!raw.trim()) continue;
    const colon = raw.indexOf(":");
    if (colon < 1) throw new Error(t("parts.line", { line: JSON.stringify(raw) }));
    const name = raw.slice(0, colon).trim();
    const snippet = raw.slice(colon + 1).trim();
    let start = text.indexOf(snippet, from);
    if (start < 0) start = text.indexOf(snippet);
    if (!snippet || start < 0) throw new Error(t("parts.missing", { name: JSON.stringify(name), snippet: JSON.stringify(snippet) }));
    parts.push({ name, start, end: start + snippet.length });
    from = start + snippet.length;
  }
  if (!parts.length) throw new Error(t("parts.empty"));
  return parts;
}

function render(container, data) {
  const rows = data.mean_over_heads.map((row, layer) => [t("parts.layer", { n: layer }), ...row.map((v) => el("span", {
    className: "mass", dataset: { value: String(v) },
    style: v === null ? {} : { background: css(attentionRGB(Math.min(1, v))), color: inkOnAlpha(v) },
  }, format(v)))]);
  const masses = table(rows, ["", ...data.parts]);
  masses.setAttribute("data-testid", "parts-table");
  masses.dataset.parts = data.parts.join("|");
  const note = el("p", { className: "muted" }, t("parts.note"), scaleLegend(colourBar(attentionRGB), 0, 1, t("parts.mass")));
  container.replaceChildren(note, masses);
}

function request(ctx) { // the body and cache options of the parts and query the inputs name
  const text = ctx.state.text;
  const parts = parseParts(text, $("parts-input").value);
  const query = $("parts-query").value || ctx.state.result.attention.query;
  return { text, parts, query };
}

function refreshQueries(text) {
  const select = $("parts-query");
  let names = [];
  try { names = parseParts(text, $("parts-input").value).map((p) => p.name); } catch (_) { /* shown on run */ }
  const current = select.value;
  fillSelect(select, [["", t("parts.the_query")], ...names.map((n) => [n, t("parts.part", { name: n })])], names.includes(current) ? current : "");
}

export default {
  id: "parts",
  get title() { return t("parts.title"); },

  mount(root, ctx) {
    shown = null; // a new DOM: the next update draws the answer again
    const input = el("textarea", { id: "parts-input", testid: "parts-input", rows: 4, spellcheck: false });
    const button = el("button", { type: "button", id: "parts-run", testid: "parts-run" }, t("parts.measure"));
    root.append(
      el("p", { className: "legend" }, t("parts.legend"), el("code", {}, t("parts.syntax")), t("parts.legend2")),
      input,
      el("div", { className: "actions" },
        el("label", {}, t("parts.from"), el("select", { id: "parts-query", testid: "parts-query" })), button),
      el("div", { id: "parts", testid: "parts-panel" }));
    input.addEventListener("input", () => refreshQueries(ctx.state.text));
    button.addEventListener("click", async () => {
      if (!ctx.state.result) return;
      ctx.showError("");
      try {
        const { text, parts, query } = request(ctx);
        const body = await ctx.cached("parts", { parts, query }, t("parts.job"),
          (id) => postJSON("/api/parts", { text, parts, query, progress_id: id }), { progress: text.length > 2000 });
        if (body) { shown = body; render($("parts"), body); }
      } catch (error) {
        ctx.fail(error);
      } finally {
        count("partRuns");
      }
    });
  },

  update(state, ctx) {
    const input = $("parts-input");
    if (input.dataset.forText !== state.text) {
      input.value = suggestParts(state.text);
      input.dataset.forText = state.text;
    }
    refreshQueries(state.text);
    let body = null;
    try {
      const { parts, query } = request(ctx);
      body = ctx.peek("parts", { parts, query });
    } catch (_) { /* not a valid list of parts: nothing measured */ }
    if (body === shown) return;
    shown = body || null;
    if (body) render($("parts"), body);
    else $("parts").replaceChildren(el("p", { className: "muted" }, t("parts.none")));
  },

  exportData() {
    return shown ? { name: "attnscope-parts.json", data: shown } : null;
  },
};
