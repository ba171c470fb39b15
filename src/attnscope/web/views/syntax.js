// Syntax: the analysed text's dependency parse (spaCy, jieba's Chinese parts of speech, or a pasted
// CoNLL-U) drawn as arcs over its words, a hover read-out of each word's part of speech, relation and
// head, and Clark et al. (2019)'s table of the head that tracks each relation best, beside the best
// fixed-offset baseline (POST /api/syntax). A row of the table (or a cell of the accuracy map) opens
// that layer and head in the page's views. When no parser is installed the view says which command
// installs one. Arcs: one canvas; words: at most MAX_WORDS spans (long texts show their first words).
import { ApiError, postJSON } from "../api.js";
import { $, count, el, fillSelect, scaleLegend, table } from "../dom.js";
import { remPx, sizeCanvas, textWidth, tickStep } from "../draw.js";
import { formatProb } from "../format.js";
import { t } from "../i18n.js";
import "../locales/syntax.js";
import { PALETTE, colourBar, css, sequential, ATTENTION } from "../palette.js";

const MAX_WORDS = 400; // words drawn (DOM spans and arcs); the table scores every word
const CELL = 14; // CSS pixels per head in the accuracy map
const DIRECTIONS = ["dependent_to_head", "head_to_dependent"];
let shown = null; // {body}
let chosen = { relation: null, direction: DIRECTIONS[0] }; // the map's relation and direction, kept across mounts

// ---- the request ------------------------------------------------------------------------------------
let parser = "auto"; // the parser chosen (auto, spacy, jieba), kept across mounts; a pasted CoNLL-U wins

function request() {
  const conllu = $("syntax-conllu") ? $("syntax-conllu").value : "";
  if (conllu.trim()) return { conllu };
  return parser === "auto" ? {} : { parser };
}

async function run(ctx) {
  if (!ctx.state.result) return;
  ctx.showError("");
  const text = ctx.state.text;
  const options = request();
  try {
    const body = await ctx.cached("syntax", options, t("syntax.job"),
      (id) => postJSON("/api/syntax", { text, ...options, progress_id: id }), { progress: true });
    if (body) { shown = { body }; render(body, ctx); }
  } catch (error) {
    if (error instanceof ApiError && error.code === "parser_missing") missing(error.message);
    else ctx.fail(error);
  } finally {
    count("syntaxes");
  }
}

function missing(detail) {
  shown = null;
  $("syntax-result").replaceChildren(el("div", { className: "syntax-missing", testid: "syntax-missing" },
    t("syntax.missing.none"), el("br"), el("code", {}, detail)));
}

// ---- words and arcs ---------------------------------------------------------------------------------
function parserName(parser) {
  if (parser.parser === "spacy") return t("syntax.parser.spacy", { model: parser.model });
  return t(`syntax.parser.${parser.parser}`);
}

// "ns (place name)": a jieba (ICTCLAS) or universal (UD) tag with its name, when the view knows it.
function posName(parser, tag) {
  const key = `syntax.pos.${parser.parser === "jieba" ? "jieba" : "upos"}.${tag}`;
  const name = t(key);
  return name === key ? tag : `${tag} (${name})`;
}

function hover(body, word) {
  const box = $("syntax-hover");
  const words = body.words;
  const parts = [t("syntax.hover.word", { word: word.text, pos: posName(body.parser, word.pos) })];
  if (word.relation) {
    parts.push(word.head === null ? t("syntax.hover.root")
      : t("syntax.hover.relation", { relation: word.relation, head: words[word.head].text }));
    const below = words.filter((w) => w.head === word.index);
    if (below.length) parts.push(t("syntax.hover.dependents", { list: below.map((w) => `${w.text} (${w.relation})`).join(", ") }));
  }
  parts.push(word.tokens.length ? t("syntax.hover.tokens", { list: word.tokens.join(", ") }) : t("syntax.hover.notokens"));
  box.textContent = parts.join(" · ");
  Object.assign(box.dataset, { word: String(word.index), text: word.text, pos: word.pos, relation: word.relation ?? "",
    head: word.head === null ? "" : String(word.head) });
}

// Arcs from each head to its dependents over the words' row: height grows with the distance, the
// relation written at the top; the hovered word's arcs drawn in the attention colour.
function drawArcs(canvas, row, words, focus = -1) {
  const spans = [...row.children];
  const centre = (k) => spans[k].offsetLeft + spans[k].offsetWidth / 2;
  const arcs = words.filter((w) => w.head !== null && w.head !== undefined && w.head < spans.length && w.index < spans.length);
  const longest = Math.max(1, ...arcs.map((w) => Math.abs(w.head - w.index)));
  const unit = Math.min(28, 150 / longest);
  const height = Math.round(unit * longest + 30);
  const width = Math.max(row.scrollWidth, 10);
  const g = sizeCanvas(canvas, width, height);
  g.font = `${0.72 * remPx()}px sans-serif`;
  g.textAlign = "center";
  for (const word of arcs) {
    const near = word.index === focus || word.head === focus;
    const [from, to] = [centre(word.head), centre(word.index)];
    const top = height - 6 - unit * Math.abs(word.head - word.index) - 8;
    g.strokeStyle = near ? css(ATTENTION) : PALETTE.ink.muted;
    g.lineWidth = near ? 2 : 1;
    g.beginPath();
    g.moveTo(from, height);
    g.bezierCurveTo(from, top, to, top, to, height - 4);
    g.stroke();
    g.beginPath(); // the arrow head at the dependent
    g.moveTo(to - 3, height - 8); g.lineTo(to, height - 2); g.lineTo(to + 3, height - 8);
    g.stroke();
    g.fillStyle = near ? css(ATTENTION) : PALETTE.ink.text;
    g.fillText(word.relation, (from + to) / 2, top + unit * 0.2 + 4);
  }
}

function wordsBlock(body) {
  const words = body.words.slice(0, MAX_WORDS);
  const row = el("div", { className: "syntax-row" }, ...words.map((word) =>
    el("span", { className: "syntax-word", testid: "syntax-word", dir: "auto",
      dataset: { index: String(word.index), pos: word.pos, relation: word.relation ?? "", head: word.head === null ? "" : String(word.head) } },
    el("span", { className: "syntax-text" }, word.text), el("span", { className: "syntax-pos" }, word.pos))));
  const canvas = el("canvas", { testid: "syntax-arcs" });
  const box = el("div", { className: "syntax-parse", testid: "syntax-parse" }, body.parser.dependencies ? canvas : null, row);
  row.addEventListener("mouseover", (event) => {
    const span = event.target.closest(".syntax-word");
    if (!span) return;
    const word = body.words[Number(span.dataset.index)];
    hover(body, word);
    row.querySelectorAll(".syntax-word.focus").forEach((s) => s.classList.remove("focus"));
    span.classList.add("focus");
    if (body.parser.dependencies) drawArcs(canvas, row, words, word.index);
  });
  const more = body.words.length > words.length ? ` ${t("syntax.words.more", { shown: words.length, n: body.words.length })}` : "";
  return { box: el("div", {}, el("p", { className: "legend" }, t(body.parser.dependencies ? "syntax.words" : "syntax.words.pos", { n: body.words.length }) + more), box),
    draw: () => { if (body.parser.dependencies) drawArcs(canvas, row, words); } };
}

// ---- the table and the accuracy map ----------------------------------------------------------------
function bestCell(best) {
  return t("syntax.cell", { layer: best.layer, head: best.head, accuracy: formatProb(best.accuracy) });
}

function relationsTable(body, ctx) {
  const rows = [...body.relations, body.overall];
  const open = (best) => { if (ctx.selectHead) ctx.selectHead(best.layer, best.head); };
  const tbl = table(rows.map((r) => [r.relation === "all" ? t("syntax.all") : r.relation, String(r.count),
    bestCell(r.dependent_to_head), el("span", { className: "syntax-reverse", testid: "syntax-reverse" }, bestCell(r.head_to_dependent)),
    t("syntax.offset", { offset: r.baseline.offset > 0 ? `+${r.baseline.offset}` : String(r.baseline.offset),
      accuracy: formatProb(r.baseline.accuracy) })]),
  [t("syntax.col.relation"), t("syntax.col.count"), t("syntax.col.dep"), t("syntax.col.head"), t("syntax.col.baseline")]);
  tbl.setAttribute("data-testid", "syntax-table");
  [...tbl.tBodies[0].rows].forEach((tr, k) => {
    const r = rows[k];
    Object.assign(tr.dataset, { relation: r.relation, count: String(r.count), layer: String(r.dependent_to_head.layer),
      head: String(r.dependent_to_head.head), accuracy: String(r.dependent_to_head.accuracy),
      reverseLayer: String(r.head_to_dependent.layer), reverseHead: String(r.head_to_dependent.head),
      reverseAccuracy: String(r.head_to_dependent.accuracy), offset: String(r.baseline.offset), baseline: String(r.baseline.accuracy) });
    tr.className = "clickable";
    tr.addEventListener("click", () => open(r.dependent_to_head));
    tr.querySelector(".syntax-reverse").addEventListener("click", (event) => { event.stopPropagation(); open(r.head_to_dependent); });
  });
  return tbl;
}

function accuracyMap(body, ctx) {
  const relations = ["all", ...body.relations.map((r) => r.relation)];
  if (!relations.includes(chosen.relation)) chosen.relation = relations[0];
  const relationSelect = el("select", { testid: "syntax-relation" });
  fillSelect(relationSelect, relations.map((r) => [r, r === "all" ? t("syntax.all") : r]), chosen.relation);
  const directionSelect = el("select", { testid: "syntax-direction" });
  fillSelect(directionSelect, DIRECTIONS.map((d) => [d, t(`syntax.direction.${d}`)]), chosen.direction);
  const plot = el("div", {});
  const readout = el("span", { className: "readout", testid: "syntax-map-readout" }, t("syntax.map.readout"));
  const draw = () => {
    const values = body.accuracy[chosen.direction][chosen.relation]; // (layers, heads), null: not captured
    const n = chosen.relation === "all" ? body.overall.count : body.relations.find((r) => r.relation === chosen.relation).count;
    const [layers, heads] = [values.length, values[0].length];
    const canvas = el("canvas", { testid: "syntax-map", dataset: { relation: chosen.relation, direction: chosen.direction } });
    canvas.width = heads * CELL; canvas.height = layers * CELL;
    Object.assign(canvas.style, { width: `${heads * CELL}px`, height: `${layers * CELL}px` });
    const g = canvas.getContext("2d");
    values.forEach((row, l) => row.forEach((v, h) => {
      g.fillStyle = v === null ? PALETTE.ink.background : css(sequential(v));
      g.fillRect(h * CELL, l * CELL, CELL - 1, CELL - 1);
    }));
    canvas.addEventListener("mousemove", (event) => {
      const rect = canvas.getBoundingClientRect();
      const [h, l] = [Math.floor((event.clientX - rect.left) / CELL), Math.floor((event.clientY - rect.top) / CELL)];
      if (l < 0 || h < 0 || l >= layers || h >= heads) return;
      const v = values[l][h];
      readout.textContent = t("syntax.map.cell", { layer: l, head: h, count: n, relation: chosen.relation === "all" ? t("syntax.all") : chosen.relation,
        accuracy: v === null ? t("syntax.not_captured") : formatProb(v) });
      Object.assign(readout.dataset, { layer: String(l), head: String(h), value: String(v) });
    });
    canvas.addEventListener("click", (event) => {
      const rect = canvas.getBoundingClientRect();
      const [h, l] = [Math.floor((event.clientX - rect.left) / CELL), Math.floor((event.clientY - rect.top) / CELL)];
      if (l >= 0 && h >= 0 && l < layers && h < heads && ctx.selectHead) ctx.selectHead(l, h);
    });
    const px = 0.65 * remPx();
    const ticks = (count, extent, gap, at) => { const step = tickStep(CELL, extent, gap); const out = []; for (let i = 0; i < count; i += step) out.push(at(i)); return out; };
    const top = el("div", { className: "grid-ticks x" }, ...ticks(heads, textWidth(String(heads - 1), px) + 1, 3, (h) =>
      el("span", { className: "tick", style: { left: `${(h + 0.5) * CELL}px` } }, String(h))));
    const left = el("div", { className: "grid-ticks y" }, ...ticks(layers, px, 2, (l) =>
      el("span", { className: "tick", style: { top: `${(l + 0.5) * CELL}px` } }, String(l))));
    plot.replaceChildren(el("div", { className: "grid-chart" }, el("div", { className: "axis-title" }, t("syntax.axis.head")),
      el("div", { className: "grid-plot" }, top, left, canvas), el("div", { className: "axis-title" }, t("syntax.axis.layer"))),
    el("p", {}, scaleLegend(colourBar(sequential), 0, 1, t("syntax.map.bar"))));
  };
  relationSelect.addEventListener("change", () => { chosen.relation = relationSelect.value; draw(); });
  directionSelect.addEventListener("change", () => { chosen.direction = directionSelect.value; draw(); });
  draw();
  return el("div", { className: "syntax-map-block" }, el("div", { className: "actions" },
    el("label", {}, t("syntax.map.relation"), relationSelect), el("label", {}, t("syntax.map.direction"), directionSelect), readout), plot);
}

// ---- the whole answer -------------------------------------------------------------------------------
function render(body, ctx) {
  const container = $("syntax-result");
  const words = wordsBlock(body);
  const parts = [el("p", { className: "muted", testid: "syntax-parser", dataset: { parser: body.parser.parser } },
    t("syntax.parser", { parser: parserName(body.parser) })), words.box,
  el("p", { className: "readout", id: "syntax-hover", testid: "syntax-hover" }, t("syntax.hover.none"))];
  if (!body.parser.dependencies) {
    parts.push(el("div", { className: "syntax-missing", testid: "syntax-missing" },
      t("syntax.missing.zh", { install: body.install })));
  } else {
    parts.push(el("h3", {}, t("syntax.table")),
      el("p", { className: "legend" }, t("syntax.table.legend", { note: body.notes.join(" ") })), relationsTable(body, ctx),
      el("h3", {}, t("syntax.map")), accuracyMap(body, ctx));
  }
  container.replaceChildren(...parts);
  container.dataset.words = String(body.words.length);
  words.draw();
}

export default {
  id: "syntax",
  get title() { return t("syntax.title"); },
  testid: "syntax",

  mount(root, ctx) {
    const area = el("textarea", { id: "syntax-conllu", testid: "syntax-conllu", rows: 4, spellcheck: false,
      placeholder: t("syntax.conllu.placeholder") });
    const button = el("button", { type: "button", testid: "syntax-run" }, t("syntax.run"));
    const select = el("select", { testid: "syntax-parser-select" });
    fillSelect(select, ["auto", "spacy", "jieba"].map((p) => [p, t(`syntax.choice.${p}`)]), parser);
    select.addEventListener("change", () => { parser = select.value; run(ctx); });
    root.append(el("p", { className: "legend" }, t("syntax.about")),
      el("div", { className: "actions" }, el("label", {}, t("syntax.choice"), select)),
      el("details", { className: "syntax-input" }, el("summary", {}, t("syntax.conllu")), area, el("div", { className: "actions" }, button)),
      el("div", { id: "syntax-result", testid: "syntax-result" }));
    button.addEventListener("click", () => run(ctx));
    shown = null;
  },

  async update(state, ctx) { // the cached answer for this model and text, else asked for now
    const body = ctx.peek("syntax", request());
    if (body) { if (!shown || shown.body !== body || !$("syntax-result").childElementCount) { shown = { body }; render(body, ctx); } return; }
    await run(ctx);
  },

  exportPNG() {
    return document.querySelector("[data-testid=syntax-arcs]") || document.querySelector("[data-testid=syntax-map]");
  },

  exportData() {
    return shown ? { name: "attnscope-syntax.json", data: shown.body } : null;
  },
};
