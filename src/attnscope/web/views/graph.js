// The attention graph: tokens as nodes and an edge query → key for every attention weight of the page's
// layer and head (heads combined as the head selector says) at least the threshold, computed by the
// server (GET /api/traces/{id}/graph: the heaviest max_edges of them). Two layouts on one canvas:
// columns (queries left, keys right, like bertviz's head view) and force. Edge width and opacity grow
// with the raw weight (the legend gives the scale); hover a node to highlight its edges and read their
// weights. Only the tokens an edge touches are drawn, so long inputs keep a bounded picture and DOM.
import { ApiError, getJSON } from "../api.js";
import { $, count, el, tokenChip } from "../dom.js";
import { format, formatProb } from "../format.js";
import { columnsLayout, forceLayout } from "../graph-layout.js";
import { strings, t } from "../i18n.js";
import { ATTENTION, PALETTE, css } from "../palette.js";
import { sizeCanvas } from "../draw.js";

strings({
  en: {
    "graph.title": "Graph",
    "graph.legend": "Tokens as nodes; an edge from a query token to a key token for every attention weight of the layer and head above that is at least the threshold. Hover a node to highlight its edges.",
    "graph.layout": "layout",
    "graph.layout.columns": "columns (queries → keys)",
    "graph.layout.force": "force",
    "graph.threshold": "threshold",
    "graph.max_edges": "at most",
    "graph.edges": "edges",
    "graph.count": "{shown} of {above} edges with weight ≥ {threshold} shown ({nodes} of {tokens} tokens); {view}.",
    "graph.capped": "Only the heaviest are drawn: raise the threshold or the edge limit to see others.",
    "graph.none": "No attention weight reaches the threshold {threshold}: lower it.",
    "graph.queries": "query tokens",
    "graph.keys": "key tokens",
    "graph.scale": "edge width and opacity: attention weight (raw probability)",
    "graph.labels_thinned": "{labelled} of {nodes} nodes labelled (the ones with the heaviest edges); hover any node for its token.",
    "graph.hover": "Hover a node for its edges.",
    "graph.as_query": "as the query, attends to",
    "graph.as_key": "as a key, is attended by",
    "graph.more": "and {n} more",
    "graph.no_edges": "no edge",
  },
  "zh-CN": {
    "graph.title": "关系图",
    "graph.legend": "词元为节点；上方所选层与注意力头中，凡注意力权重不低于阈值的，就从查询词元向键词元连一条边。将鼠标悬停在节点上可突出显示它的边。",
    "graph.layout": "布局",
    "graph.layout.columns": "两列（查询 → 键）",
    "graph.layout.force": "力导向",
    "graph.threshold": "阈值",
    "graph.max_edges": "最多",
    "graph.edges": "条边",
    "graph.count": "显示权重 ≥ {threshold} 的 {above} 条边中的 {shown} 条（{tokens} 个词元中的 {nodes} 个）；{view}。",
    "graph.capped": "只画出权重最大的边：提高阈值或边数上限可查看其他边。",
    "graph.none": "没有注意力权重达到阈值 {threshold}，请降低阈值。",
    "graph.queries": "查询词元",
    "graph.keys": "键词元",
    "graph.scale": "边的粗细与不透明度：注意力权重（原始概率）",
    "graph.labels_thinned": "{nodes} 个节点中标注了 {labelled} 个（边权重最大的那些）；悬停任一节点可查看其词元。",
    "graph.hover": "悬停在节点上可查看它的边。",
    "graph.as_query": "作为查询，关注",
    "graph.as_key": "作为键，被关注于",
    "graph.more": "另有 {n} 条",
    "graph.no_edges": "无边",
  },
});

const MAX_LABELS = 150; // force layout: nodes labelled beyond the hovered one
const READOUT_ROWS = 10;
let shown = null; // {answer, address, layout, texts: {q, k}: Map(index -> text), labelled: Set(node id)}
let hovered = null; // the hovered node object of shown.layout
let current = null; // the last update's state (the controls redraw it)
let ticket = 0; // the latest request: an older answer arriving late is dropped
const settings = { layout: "columns", threshold: "0.1", maxEdges: "300" }; // kept across mounts (language switch)

const visible = (text) => text.replace(/ /g, "␣").replace(/\t/g, "⇥").replace(/\r?\n/g, "↵") || "∅";
const edgeWidth = (w) => 0.6 + 5.4 * w;
const edgeAlpha = (w) => 0.12 + 0.8 * w;

function url(r) {
  const a = r.attention;
  const params = new URLSearchParams({ layer: a.layer, head: a.head, threshold: $("graph-threshold").value,
    max_edges: $("graph-max-edges").value });
  if (a.stack) params.set("stack", a.stack);
  return `/api/traces/${r.trace_id}/graph?${params}`;
}

// a token's text: a query's, a key's, or (one node per token, side "n") whichever list has it
const textOf = (side, index) => (side === "k" ? shown.texts.k.get(index)
  : side === "q" ? shown.texts.q.get(index) : shown.texts.q.get(index) ?? shown.texts.k.get(index)) ?? "";
const labelOf = (node) => `${node.index} ${visible(textOf(node.side, node.index))}`;

function drawEdge(g, from, to, weight, alpha, self) {
  g.strokeStyle = css(ATTENTION, alpha);
  g.lineWidth = edgeWidth(weight);
  g.beginPath();
  if (shown.layout.kind === "columns") {
    const mid = (from.x + to.x) / 2;
    g.moveTo(from.x + 4, from.y);
    g.bezierCurveTo(mid, from.y, mid, to.y, to.x - 4, to.y);
  } else if (self) {
    g.arc(from.x, from.y - 9, 8, 0, 2 * Math.PI);
  } else {
    g.moveTo(from.x, from.y);
    g.lineTo(to.x, to.y);
  }
  g.stroke();
  if (shown.layout.kind === "force" && !self) { // an arrowhead before the key: the edge's direction
    const angle = Math.atan2(to.y - from.y, to.x - from.x);
    const tipX = to.x - 6 * Math.cos(angle);
    const tipY = to.y - 6 * Math.sin(angle);
    const size = 5 + 2 * weight;
    g.fillStyle = css(ATTENTION, alpha);
    g.beginPath();
    g.moveTo(tipX, tipY);
    g.lineTo(tipX - size * Math.cos(angle - 0.45), tipY - size * Math.sin(angle - 0.45));
    g.lineTo(tipX - size * Math.cos(angle + 0.45), tipY - size * Math.sin(angle + 0.45));
    g.closePath();
    g.fill();
  }
}

function draw() {
  const canvas = $("graph-canvas");
  if (!canvas || !shown) return;
  const { layout, answer } = shown;
  const g = sizeCanvas(canvas, layout.width, layout.height);
  g.fillStyle = PALETTE.ink.background;
  g.fillRect(0, 0, layout.width, layout.height);
  const touches = (edge) => hovered && (hovered.side === "n"
    ? edge.query === hovered.index || edge.key === hovered.index
    : (hovered.side === "q" ? edge.query : edge.key) === hovered.index);
  const order = [...answer.edges].reverse(); // the lightest first: the heaviest are drawn on top
  for (const edge of order) {
    if (touches(edge)) continue;
    const [from, to] = layout.ends(edge);
    drawEdge(g, from, to, edge.weight, edgeAlpha(edge.weight) * (hovered ? 0.25 : 1), from === to);
  }
  for (const edge of order.filter(touches)) {
    const [from, to] = layout.ends(edge);
    drawEdge(g, from, to, edge.weight, Math.max(0.35, edgeAlpha(edge.weight)), from === to);
  }
  g.font = "12px system-ui, 'Noto Sans CJK SC', sans-serif";
  g.textBaseline = "middle";
  if (layout.kind === "columns") {
    g.fillStyle = PALETTE.ink.muted;
    g.textAlign = "right";
    g.fillText(t("graph.queries"), layout.label, 10);
    g.textAlign = "left";
    g.fillText(t("graph.keys"), layout.width - layout.label, 10);
  }
  for (const node of layout.nodes) {
    const lit = hovered && node.id === hovered.id;
    g.fillStyle = lit ? css(ATTENTION) : PALETTE.ink.text;
    if (layout.kind === "columns") {
      g.fillRect(node.x - 2, node.y - 2, 4, 4);
      if (!shown.labelled.has(node.id) && !lit) continue;
      g.textAlign = node.side === "q" ? "right" : "left";
      g.font = `${lit ? "bold " : ""}12px system-ui, 'Noto Sans CJK SC', sans-serif`;
      g.fillText(labelOf(node), node.x + (node.side === "q" ? -6 : 6), node.y);
    } else {
      g.beginPath();
      g.arc(node.x, node.y, lit ? 6 : 4, 0, 2 * Math.PI);
      g.fill();
      if (!shown.labelled.has(node.id) && !lit) continue;
      g.textAlign = "left";
      g.font = `${lit ? "bold " : ""}12px system-ui, 'Noto Sans CJK SC', sans-serif`;
      g.fillText(labelOf(node), node.x + 7, node.y);
    }
  }
}

// Nodes labelled on the canvas: every node when the rows leave room (columns) or when there are at most
// MAX_LABELS (force); otherwise those with the heaviest edges.
function chooseLabels(layout, answer) {
  if (layout.kind === "columns") {
    const each = layout.nodes.filter((node) => node.pitch >= 11);
    if (each.length === layout.nodes.length) return new Set(each.map((n) => n.id));
  } else if (layout.nodes.length <= MAX_LABELS) return new Set(layout.nodes.map((n) => n.id));
  const strength = new Map();
  for (const edge of answer.edges) {
    for (const node of layout.ends(edge)) strength.set(node.id, (strength.get(node.id) || 0) + edge.weight);
  }
  const ranked = [...strength.entries()].sort((a, b) => b[1] - a[1]).map(([id]) => id);
  if (layout.kind === "columns") { // keep labels at least 11 px apart in each column
    const kept = new Set();
    const taken = { q: [], k: [] };
    const byId = new Map(layout.nodes.map((n) => [n.id, n]));
    for (const id of ranked) {
      const node = byId.get(id);
      if (taken[node.side].some((y) => Math.abs(y - node.y) < 11)) continue;
      taken[node.side].push(node.y);
      kept.add(id);
    }
    return kept;
  }
  return new Set(ranked.slice(0, MAX_LABELS));
}

function legend(answer) {
  const weights = answer.edges.map((e) => e.weight);
  const high = weights.length ? Math.max(...weights) : 1;
  const low = weights.length ? Math.min(...weights) : answer.threshold;
  const samples = [...new Set([low, (low + high) / 2, high])];
  const items = samples.map((w) => {
    const sample = el("canvas", { width: 40, height: 12, className: "graph-sample" });
    const g = sample.getContext("2d");
    g.strokeStyle = css(ATTENTION, edgeAlpha(w));
    g.lineWidth = edgeWidth(w);
    g.beginPath(); g.moveTo(2, 6); g.lineTo(38, 6); g.stroke();
    return el("span", { className: "scale", dataset: { weight: String(w) } }, sample, ` ${format(w)} (${formatProb(w)})`);
  });
  $("graph-scale").replaceChildren(el("span", { className: "muted" }, `${t("graph.scale")}: `), ...items);
}

function readout(node) {
  const box = $("graph-readout");
  if (!node) { box.replaceChildren(t("graph.hover")); delete box.dataset.index; return; }
  const { answer } = shown;
  const sections = [];
  const sides = node.side === "n" ? ["q", "k"] : [node.side];
  for (const side of sides) {
    const mine = answer.edges.filter((e) => (side === "q" ? e.query : e.key) === node.index);
    const rows = mine.slice(0, READOUT_ROWS).map((e) => {
      const other = side === "q" ? e.key : e.query;
      return el("li", { dataset: { other: String(other), weight: String(e.weight) } },
        `${other} `, tokenChip(textOf(side === "q" ? "k" : "q", other)), ` ${format(e.weight)} (${formatProb(e.weight)})`);
    });
    if (mine.length > READOUT_ROWS) rows.push(el("li", { className: "muted" }, t("graph.more", { n: mine.length - READOUT_ROWS })));
    if (!mine.length) rows.push(el("li", { className: "muted" }, t("graph.no_edges")));
    sections.push(el("div", { className: "graph-side", dataset: { side } },
      el("span", { className: "muted" }, t(side === "q" ? "graph.as_query" : "graph.as_key")),
      el("ul", { className: "plain" }, ...rows)));
  }
  box.replaceChildren(el("strong", {}, `${node.index} `, tokenChip(textOf(node.side, node.index))), ...sections);
  box.dataset.index = String(node.index);
  box.dataset.side = node.side;
}

function nodeAt(event) {
  if (!shown) return null;
  const rect = $("graph-canvas").getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  let best = null;
  let distance = Infinity;
  for (const node of shown.layout.nodes) {
    if (shown.layout.kind === "columns") { // a row: the whole label's side of the canvas
      const onSide = node.side === "q" ? x <= node.x + 8 : x >= node.x - 8;
      const d = Math.abs(node.y - y);
      if (onSide && d <= Math.max(node.pitch / 2, 3) && d < distance) { best = node; distance = d; }
    } else {
      const d = Math.hypot(node.x - x, node.y - y);
      if (d <= 10 && d < distance) { best = node; distance = d; }
    }
  }
  return best;
}

async function refresh() {
  if (!current) return;
  const state = current;
  const r = state.result;
  const address = url(r);
  const error = $("graph-error");
  const mine = ++ticket;
  let answer;
  try {
    answer = shown && shown.address === address ? shown.answer : await getJSON(address);
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    if (mine !== ticket) return;
    error.textContent = failure.message;
    error.hidden = false;
    count("graphs");
    return;
  }
  if (mine !== ticket || state.result !== r || !$("graph-canvas")) return;
  error.hidden = true;
  const texts = { q: new Map(answer.query_nodes.map((n) => [n.index, n.text])),
    k: new Map(answer.key_nodes.map((n) => [n.index, n.text])) };
  const cross = answer.view.stack === "cross"; // queries and keys are different texts' tokens
  const width = Math.max(480, Math.min(960, ($("view-graph")?.clientWidth || 800) - 24));
  const layout = $("graph-layout").value === "force" ? forceLayout(answer.edges, width, cross) : columnsLayout(answer.edges, width);
  shown = { answer, address, layout, texts, labelled: new Set() };
  shown.labelled = chooseLabels(layout, answer);
  hovered = null;
  const canvas = $("graph-canvas");
  canvas.dataset.layout = layout.kind;
  canvas.dataset.nodes = JSON.stringify(layout.nodes.map((n) => ({ index: n.index, side: n.side, x: Math.round(n.x),
    y: Math.round(n.y), text: textOf(n.side, n.index), labelled: shown.labelled.has(n.id) })));
  const status = $("graph-count");
  status.dataset.shown = String(answer.shown);
  status.dataset.above = String(answer.above_threshold);
  status.dataset.threshold = String(answer.threshold);
  status.dataset.maxEdges = String(answer.max_edges);
  status.replaceChildren(answer.shown
    ? t("graph.count", { shown: answer.shown, above: answer.above_threshold, threshold: format(answer.threshold),
      nodes: new Set([...texts.q.keys(), ...(cross ? [] : texts.k.keys())]).size, tokens: answer.n_tokens,
      view: answer.view.label })
    : t("graph.none", { threshold: format(answer.threshold) }));
  if (answer.shown < answer.above_threshold) status.append(" ", t("graph.capped"));
  const labelled = shown.labelled.size;
  const distinct = layout.nodes.length;
  $("graph-labels").textContent = labelled < distinct ? t("graph.labels_thinned", { labelled, nodes: distinct }) : "";
  legend(answer);
  readout(null);
  draw();
  count("graphs");
}

export default {
  id: "graph",
  testid: "graph",
  get title() { return t("graph.title"); },

  mount(root) {
    const layout = el("select", { id: "graph-layout", testid: "graph-layout" },
      new Option(t("graph.layout.columns"), "columns"), new Option(t("graph.layout.force"), "force"));
    const threshold = el("input", { id: "graph-threshold", type: "number", min: "0", max: "1", step: "0.01", value: "0.1" });
    threshold.setAttribute("data-testid", "graph-threshold");
    const limit = el("input", { id: "graph-max-edges", type: "number", min: "1", max: "5000", step: "1", value: "300" });
    limit.setAttribute("data-testid", "graph-max-edges");
    const canvas = el("canvas", { id: "graph-canvas", testid: "graph-canvas" });
    root.append(
      el("p", { className: "legend" }, t("graph.legend")),
      el("div", { className: "actions" },
        el("label", {}, `${t("graph.layout")} `, layout),
        el("label", {}, `${t("graph.threshold")} `, threshold),
        el("label", {}, `${t("graph.max_edges")} `, limit, ` ${t("graph.edges")}`)),
      el("p", { id: "graph-count", testid: "graph-count", className: "muted" }),
      el("p", { id: "graph-error", testid: "graph-error", className: "error", hidden: true }),
      el("p", { id: "graph-scale", testid: "graph-legend" }),
      el("div", { className: "canvas-wrap" }, canvas),
      el("p", { id: "graph-labels", className: "muted" }),
      el("div", { id: "graph-readout", testid: "graph-readout", className: "muted" }));
    layout.value = settings.layout; threshold.value = settings.threshold; limit.value = settings.maxEdges;
    for (const input of [layout, threshold, limit]) {
      input.addEventListener("change", () => {
        Object.assign(settings, { layout: layout.value, threshold: threshold.value, maxEdges: limit.value });
        refresh();
      });
    }
    canvas.addEventListener("mousemove", (event) => {
      const node = nodeAt(event);
      if ((node && node.id) === (hovered && hovered.id)) return;
      hovered = node;
      readout(node);
      draw();
    });
    canvas.addEventListener("mouseleave", () => { hovered = null; readout(null); draw(); });
    current = null; // a fresh mount (a language switch): the next update draws again
  },

  async update(state) {
    current = state;
    await refresh();
  },

  exportPNG() {
    return $("graph-canvas");
  },

  exportData() {
    return shown ? { name: "attention-graph.json", data: shown.answer } : null;
  },
};
