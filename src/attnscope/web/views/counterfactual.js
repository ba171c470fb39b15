// Counterfactuals: the analysed text and the text edited (replace, delete, insert a span, or swap the
// gender terms) side by side — both texts with the changes marked, both predictions and each top
// token's probability under the other text, the query's attention rows aligned by characters with
// their difference, the difference map of the shared tokens, the heads that changed most and the
// attribution shift (POST /api/counterfactual; every difference is counterfactual − original).
// runEdits(): another view's edits run as they are (the Rules view's "Try without it").
import { postJSON } from "../api.js";
import { $, count, el, scaleLegend, table, tokenChip } from "../dom.js";
import { drawDifferenceMap, signedRGB, tokenText } from "../counterfactual-map.js";
import { format, formatProb } from "../format.js";
import { attentionRGB, colourBar, css, inkOnAlpha, inkOnScore, scoreColour } from "../palette.js";
import { t } from "../i18n.js";
import { plural } from "../locales/counterfactual.js";

const MAX_COLUMNS = 200; // aligned token columns shown; longer texts show the tokens that changed most
const MAX_UNMATCHED = 40;
const MAX_ATTRIBUTION_ROWS = 60;
let shown = null; // {body, scale}
let fromRule = null; // {edits, label, text}: another view's edits of text, sent as they are until the form is edited

// ---- the request ------------------------------------------------------------------------------------
function edit() { // the inputs as the request's edits and swap (throws on a missing field)
  const kind = $("cf-kind").value;
  const occurrence = $("cf-occurrence").value;
  const old = $("cf-old").value;
  const added = $("cf-new").value;
  if (kind === "swap") return { edits: [], swap: "gender" };
  if (kind !== "insert" && !old) throw new Error(t("cf.need_old", { kind }));
  if (kind === "replace") return { edits: [{ replace: old, with: added, occurrence }], swap: null };
  if (kind === "delete") return { edits: [{ delete: old, occurrence }], swap: null };
  const at = $("cf-at").value.trim();
  if (!added || !at) throw new Error(t("cf.need_insert"));
  return { edits: [{ insert: added, at: /^\d+$/.test(at) ? Number(at) : at, occurrence }], swap: null };
}

function request(state) { // the options of the request (also the cache key with the model and text)
  const { layer, head, query } = state.result.attention;
  if (fromRule && fromRule.text !== state.text) { fromRule = null; showRule(); } // the offsets were another text's
  return { ...(fromRule ? { edits: fromRule.edits, swap: null } : edit()), layer, head, query };
}

function showRule() { // the form says whose edits run while they are a rule's, not its own inputs
  const line = $("cf-from-rule");
  if (!line) return;
  line.hidden = !fromRule;
  line.dataset.rule = fromRule ? fromRule.label : "";
  line.dataset.edits = fromRule ? String(fromRule.edits.length) : "";
  line.replaceChildren(...(fromRule ? [el("strong", {}, t("cf.from_rule", { rule: fromRule.label })),
    plural("cf.from_rule.detail", fromRule.edits.length)] : []));
}

function showInputs() {
  const kind = $("cf-kind").value;
  $("cf-old-box").hidden = kind === "insert" || kind === "swap";
  $("cf-new-box").hidden = kind === "delete" || kind === "swap";
  $("cf-at-box").hidden = kind !== "insert";
  $("cf-occurrence-box").hidden = kind === "swap";
}

// ---- both texts, changes marked ---------------------------------------------------------------------
// `text` with [start, end) spans (code points, as the server counts them) marked; an empty span is a caret.
function marked(text, spans, testid, what) {
  const chars = Array.from(text);
  const box = el("div", { className: "cf-text", testid, dir: "auto" });
  let cursor = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    box.append(chars.slice(cursor, span.start).join(""));
    const inner = chars.slice(span.start, span.end).join("");
    box.append(el("mark", { className: inner ? "cf-change" : "cf-change cf-caret", title: span.title,
      dataset: { start: String(span.start), end: String(span.end) } }, inner || "‸"));
    cursor = Math.max(cursor, span.end);
  }
  box.append(chars.slice(cursor).join(""));
  return el("div", { className: "cf-side" }, el("div", { className: "cf-label" }, what), box);
}

function texts(body) {
  const original = body.changes.map((c) => ({ start: c.start, end: c.end, title: t("cf.now", { text: JSON.stringify(c.new) }) }));
  const edited = body.changes.map((c) => ({ start: c.edited_start, end: c.edited_end, title: t("cf.was", { text: JSON.stringify(c.old) }) }));
  return el("div", { className: "cf-pair", testid: "counterfactual-texts" },
    marked(body.original.text, original, "counterfactual-original-text", t("cf.original")),
    marked(body.counterfactual.text, edited, "counterfactual-edited-text", plural("cf.changes", body.changes.length)));
}

// ---- predictions ------------------------------------------------------------------------------------
function candidates(side, name) {
  const prediction = side.prediction;
  if (!prediction) return el("p", { className: "muted" }, t("cf.no_prediction"));
  return el("ol", { className: "cf-top", testid: `counterfactual-top-${name}` }, ...prediction.top.map((c) =>
    el("li", { dataset: { token: c.token, prob: String(c.prob) } }, tokenChip(c.token), " ",
      el("span", { className: "cf-bar", style: { width: `${Math.max(1, c.prob * 80)}px` } }), ` ${formatProb(c.prob)}`)));
}

function crossLine(entry, given, testid) {
  return el("p", { className: "cf-cross", testid, dataset: { token: entry.token, prob: String(entry.prob) } },
    "p(", tokenChip(entry.token), ` | ${given}) = ${formatProb(entry.prob)}`);
}

function predictions(body) {
  const cross = body.prediction;
  const box = el("div", { className: "cf-pair", testid: "counterfactual-predictions" },
    el("div", { className: "cf-side" }, el("div", { className: "cf-label" }, t("cf.after.original", { n: body.original.query })),
      candidates(body.original, "original"),
      cross ? crossLine(cross.counterfactual_top_in_original, "original", "counterfactual-cross-original") : null),
    el("div", { className: "cf-side" }, el("div", { className: "cf-label" },
      t("cf.after.counterfactual", { n: body.counterfactual.query })), candidates(body.counterfactual, "counterfactual"),
    cross ? crossLine(cross.original_top_in_counterfactual, "counterfactual", "counterfactual-cross-counterfactual") : null));
  if (cross) box.dataset.sameTop = String(cross.same_top);
  return box;
}

// ---- the query's attention rows, aligned by characters ----------------------------------------------
// Columns in text order: the matched pairs, and between two pairs the tokens without a partner of
// each side, zipped (the original's "he" above the counterfactual's "she"). Long texts keep the
// first MAX_UNMATCHED columns without partners and the matched tokens whose weight changed most.
function columns(body) {
  const shiftOf = new Map(body.attention.matched.map((m) => [m.original, m.shift]));
  const ends = [body.original.tokens.length, body.counterfactual.tokens.length];
  const all = [];
  let [lastI, lastJ] = [-1, -1];
  for (const [i, j] of [...body.alignment.pairs, ends]) {
    const width = Math.max(i - lastI - 1, j - lastJ - 1);
    for (let k = 0; k < width; k++) {
      all.push({ i: lastI + 1 + k < i ? lastI + 1 + k : null, j: lastJ + 1 + k < j ? lastJ + 1 + k : null, shift: null });
    }
    if (i < ends[0]) all.push({ i, j, shift: shiftOf.get(i) });
    [lastI, lastJ] = [i, j];
  }
  all.forEach((c, at) => { c.at = at; });
  const matched = all.filter((c) => c.shift !== null);
  if (all.length <= MAX_COLUMNS) return { all, total: all.length, matched: matched.length, shownMatched: matched.length };
  const unmatched = all.filter((c) => c.shift === null).slice(0, MAX_UNMATCHED);
  const kept = new Set([...unmatched, ...[...matched].sort((a, b) => Math.abs(b.shift) - Math.abs(a.shift))
    .slice(0, MAX_COLUMNS - unmatched.length)]);
  return { all: all.filter((c) => kept.has(c)), total: all.length, matched: matched.length,
    shownMatched: MAX_COLUMNS - unmatched.length };
}

function cell(side, index, weight, scale, role) {
  if (index === null) return el("span", { className: "cf-cell cf-none", title: t("cf.no_partner", { role: t(`cf.${role}`) }) }, "—");
  const token = side.tokens[index];
  const alpha = Math.min(1, Math.max(0, weight / scale));
  return el("span", { className: "cf-cell", title: `${t(`cf.${role}`)} #${index}: ${format(weight)}`,
    dataset: { index: String(index), weight: String(weight) },
    style: { background: css(attentionRGB(alpha)), color: inkOnAlpha(alpha) } }, tokenText(side, token));
}

function rows(body, display) {
  const { all, total, shownMatched, matched } = columns(body);
  const before = body.attention.original;
  const after = body.attention.counterfactual;
  const scale = display.scale === "minmax" ? Math.max(...before, ...after, 1e-12) : 1;
  const top = Math.max(1e-12, ...body.attention.matched.map((m) => Math.abs(m.shift)));
  const strip = el("div", { className: "cf-strip" }, el("div", { className: "cf-col cf-heads" },
    el("span", {}, t("cf.original")), el("span", {}, t("cf.counterfactual")), el("span", {}, t("cf.difference"))),
  ...all.flatMap((c, k) => {
    const { shift } = c;
    const gap = k > 0 && c.at !== all[k - 1].at + 1 ? [el("div", { className: "cf-col cf-gap", title: t("cf.not_shown") }, "…")] : [];
    const column = el("div", { className: "cf-col", testid: "counterfactual-column" },
      cell(body.original, c.i, c.i === null ? 0 : before[c.i], scale, "original"),
      cell(body.counterfactual, c.j, c.j === null ? 0 : after[c.j], scale, "counterfactual"),
      el("span", { className: "cf-cell cf-diff", title: shift === null ? t("cf.changed_token") : `Δ ${format(shift)}`,
        style: shift === null ? {} : { background: scoreColour(shift, top), color: inkOnScore(shift, top) } },
      shift === null ? "" : format(shift)));
    Object.assign(column.dataset, { original: String(c.i), counterfactual: String(c.j) });
    if (shift !== null) column.dataset.shift = String(shift);
    return [...gap, column];
  }));
  const mass = body.attention.unmatched_mass;
  const note = total > all.length ? t("cf.showing", { shown: shownMatched, matched, unmatched: all.length - shownMatched,
    without: total - matched }) : "";
  return el("div", { testid: "counterfactual-rows", dataset: { shown: String(all.length), total: String(total) } },
    el("p", { className: "legend" }, t("cf.rows.legend", { label: body.view.label, query: body.view.query_counterfactual,
      before: format(mass.original), after: format(mass.counterfactual), note }),
    scaleLegend(colourBar(attentionRGB), 0, scale, scale === 1 ? t("cf.weight") : t("cf.scaled")), " ",
    scaleLegend(colourBar(signedRGB), -top, top, t("cf.difference"))),
    strip);
}

// ---- heads and attribution --------------------------------------------------------------------------
function heads(body, ctx) {
  const list = table(body.heads.top.map((h) => [String(h.layer), String(h.head), format(h.tvd), format(h.l1)]),
    [t("cf.layer"), t("cf.head"), "TVD", "L1"]);
  list.setAttribute("data-testid", "counterfactual-heads");
  [...list.tBodies[0].rows].forEach((row, k) => {
    const h = body.heads.top[k];
    Object.assign(row.dataset, { layer: String(h.layer), head: String(h.head), tvd: String(h.tvd), l1: String(h.l1) });
    row.title = t("cf.show_head");
    row.addEventListener("click", () => {
      list.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
      row.classList.add("selected");
      if (ctx.selectHead) ctx.selectHead(h.layer, h.head);
    });
  });
  return el("div", { className: "cf-block" }, el("p", { className: "legend" }, t("cf.heads.legend")), list);
}

function attribution(body) {
  const a = body.attribution;
  if (!a) {
    return el("div", { className: "cf-block", testid: "counterfactual-attribution" },
      el("p", { className: "muted" }, t("cf.no_attribution", { notes: body.notes.length ? ` (${body.notes.join("; ")})` : "" })));
  }
  let matched = a.matched;
  if (matched.length > MAX_ATTRIBUTION_ROWS) {
    const kept = new Set([...matched].sort((x, y) => Math.abs(y.shift ?? 0) - Math.abs(x.shift ?? 0)).slice(0, MAX_ATTRIBUTION_ROWS));
    matched = matched.filter((m) => kept.has(m));
  }
  const top = Math.max(1e-12, ...a.matched.map((m) => Math.abs(m.shift ?? 0)));
  const shifts = table(matched.map((m) => [`${m.original}`, tokenText(body.original, body.original.tokens[m.original]),
    format(m.before), format(m.after), el("span", { className: "cf-shift",
      style: { background: scoreColour(m.shift, top), color: inkOnScore(m.shift, top) } }, format(m.shift))]),
  ["#", t("cf.token"), t("cf.before"), t("cf.after"), t("cf.shift")]);
  [...shifts.tBodies[0].rows].forEach((row, k) => Object.assign(row.dataset, { original: String(matched[k].original),
    before: String(matched[k].before), after: String(matched[k].after), shift: String(matched[k].shift) }));
  const target = a.target_mode === "original" ? [t("cf.explaining"), tokenChip(a.targets[0].text), t("cf.in_both")]
    : a.target_mode === "own" ? [t("cf.own")] : [];
  const more = matched.length < a.matched.length ? t("cf.more", { shown: matched.length, n: a.matched.length }) : "";
  return el("div", { className: "cf-block", testid: "counterfactual-attribution",
    dataset: { spearman: String(a.spearman), kendall: String(a.kendall), method: a.method } },
  el("p", { className: "legend" }, t("cf.shift.legend", { method: a.method }), ...target, t("cf.shift.legend2", {
    spearman: format(a.spearman), kendall: format(a.kendall), n: a.n_compared, more })), shifts);
}

// ---- the request sent, the answer drawn ----------------------------------------------------------------
async function run(ctx) {
  if (!ctx.state.result) return;
  ctx.showError("");
  try {
    const text = ctx.state.text;
    const options = request(ctx.state);
    const body = await ctx.cached("counterfactual", options, t("cf.job"),
      (id) => postJSON("/api/counterfactual", { text, ...options, progress_id: id }), { progress: true });
    if (body) { shown = { body, scale: ctx.state.display.scale }; render($("counterfactual-result"), body, ctx, ctx.state.display); }
  } catch (error) {
    ctx.fail(error);
  } finally {
    count("counterfactuals");
  }
}

// The view shown and run on `edits` (the request's JSON forms, e.g. a rule's [{remove, start}, ...])
// exactly as given, the form marked "edits from rule LABEL" until the user changes one of its inputs.
export async function runEdits(ctx, edits, label) {
  fromRule = { edits: edits.map((one) => ({ ...one })), label: String(label), text: ctx.state.text };
  $("tab-counterfactual").click(); // shows (and on first use builds) the view
  showRule();
  await run(ctx);
}

// ---- the whole answer -------------------------------------------------------------------------------
function render(container, body, ctx, display) {
  const map = el("div", { className: "cf-block", testid: "counterfactual-map" });
  container.replaceChildren(
    el("h3", {}, t("cf.h.texts")), texts(body),
    el("h3", {}, t("cf.h.predictions")), predictions(body),
    el("h3", {}, t("cf.h.attention")), rows(body, display),
    el("h3", {}, t("cf.h.map")), map,
    el("h3", {}, t("cf.h.heads")), heads(body, ctx),
    el("h3", {}, t("cf.h.attribution")), attribution(body),
    ...body.notes.map((note) => el("p", { className: "muted" }, t("cf.note", { note }))));
  drawDifferenceMap(map, body);
  container.dataset.runId = body.run_id || "";
  for (const box of container.querySelectorAll(".cf-text")) { // a long text: its first change in view
    const mark = box.querySelector("mark");
    if (mark && box.scrollHeight > box.clientHeight) box.scrollTop = Math.max(0, mark.offsetTop - 24);
  }
}

export default {
  id: "counterfactual",
  get title() { return t("cf.title"); },
  testid: "counterfactual",

  mount(root, ctx) {
    const input = (id, placeholder) => el("input", { id, testid: id.replace("cf-", "counterfactual-"), placeholder, spellcheck: false });
    const occurrence = el("select", { id: "cf-occurrence", testid: "counterfactual-occurrence" },
      ...["all", "first", "last"].map((o) => new Option(t(`cf.occurrence.${o}`), o)));
    shown = null; // a new DOM: the next update draws the answer again
    const kind = el("select", { id: "cf-kind", testid: "counterfactual-kind" },
      ...["replace", "delete", "insert", "swap"].map((v) => new Option(t(`cf.kind.${v}`), v)));
    const button = el("button", { type: "button", id: "counterfactual-run", testid: "counterfactual-run" }, t("cf.run"));
    const inputs = el("div", { className: "actions cf-inputs" }, el("label", {}, t("cf.edit"), kind),
      el("label", { id: "cf-old-box" }, "OLD ", input("cf-old", t("cf.old.placeholder"))),
      el("label", { id: "cf-new-box" }, "NEW ", input("cf-new", t("cf.new.placeholder"))),
      el("label", { id: "cf-at-box", hidden: true }, "AT ", input("cf-at", t("cf.at.placeholder"))),
      el("label", { id: "cf-occurrence-box" }, t("cf.occurrence"), occurrence), button);
    root.append(
      el("p", { className: "legend" }, t("cf.legend")),
      el("p", { id: "cf-from-rule", className: "legend", testid: "counterfactual-from-rule", hidden: true }),
      inputs,
      el("div", { id: "counterfactual-result", testid: "counterfactual-result" }));
    kind.addEventListener("change", showInputs);
    const own = () => { if (fromRule) { fromRule = null; showRule(); } }; // the user edits: the form's edit again
    for (const type of ["input", "change"]) inputs.addEventListener(type, own);
    button.addEventListener("click", () => run(ctx));
    showRule();
  },

  update(state, ctx) { // the answer for this model, text, edit and view when there is one
    showInputs(); // the edit's kind may have come back with a re-mount
    let body = null;
    try { body = ctx.peek("counterfactual", request(state)); } catch (_) { /* the edit is incomplete */ }
    if (shown && body === shown.body && shown.scale === state.display.scale) return;
    shown = body ? { body, scale: state.display.scale } : null;
    if (body) render($("counterfactual-result"), body, ctx, state.display);
    else $("counterfactual-result").replaceChildren(el("p", { className: "muted" },
      fromRule ? t("cf.press_rule", { rule: fromRule.label }) : t("cf.press")));
  },

  exportPNG() {
    return document.querySelector("[data-testid=counterfactual-map-canvas]");
  },

  exportData() {
    return shown ? { name: "attnscope-counterfactual.json", data: shown.body } : null;
  },
};
