// Head metrics: a layers × heads heatmap (canvas, the palette's sequential colormap) of one metric
// with axes, a colour bar and a hover read-out, and the head-type label of every head.
import { postJSON } from "../api.js";
import { $, el, fillSelect, scaleLegend } from "../dom.js";
import { remPx, textWidth, tickStep } from "../draw.js";
import { format } from "../format.js";
import { LABELS, colourBar, inkOn, sequential } from "../palette.js";
import { t } from "../i18n.js";
import { headLabel, metricTitle } from "../locales/views.js";

const CELL = 14; // CSS pixels per head (the canvas is only the grid: tests hover by cell)
let shown = null; // {body, metric}
let chosen = null; // the metric chosen last

const TICK_REM = 0.65; // style.css: .grid-ticks .tick

// A label every `step` cells, the step thinned until labels never touch (14 heads: 0 2 4 … 12).
function ticks(count, extent, gap, at) {
  const step = tickStep(CELL, extent, gap);
  const out = [];
  for (let i = 0; i < count; i += step) out.push(at(i));
  return out;
}

function drawGrid(canvas, values) {
  const layers = values.length;
  const heads = layers ? values[0].length : 0;
  const flat = values.flat().filter((v) => v !== null);
  const low = Math.min(...flat);
  const high = Math.max(...flat);
  canvas.width = heads * CELL;
  canvas.height = layers * CELL;
  canvas.style.width = `${heads * CELL}px`;
  canvas.style.height = `${layers * CELL}px`;
  const ctx = canvas.getContext("2d");
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const v = values[l][h];
      const [r, g, b] = v === null ? [255, 255, 255] : sequential(high > low ? (v - low) / (high - low) : 0.5);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(h * CELL, l * CELL, CELL - 1, CELL - 1);
    }
  }
  return { low, high, layers, heads };
}

// A grid with head numbers above and layer numbers on the left.
function axes(inner, layers, heads) {
  const px = TICK_REM * remPx();
  const top = el("div", { className: "grid-ticks x" }, ...ticks(heads, textWidth(String(heads - 1), px) + 1, 3, (h) =>
    el("span", { className: "tick", style: { left: `${(h + 0.5) * CELL}px` } }, String(h))));
  const left = el("div", { className: "grid-ticks y" }, ...ticks(layers, px, 2, (l) =>
    el("span", { className: "tick", style: { top: `${(l + 0.5) * CELL}px` } }, String(l))));
  return el("div", { className: "grid-chart" },
    el("div", { className: "axis-title" }, t("metrics.head_axis")), el("div", { className: "grid-plot" }, top, left, inner),
    el("div", { className: "axis-title" }, t("metrics.layer_axis")));
}

// The metric grid and the label grid of `data` (a /api/heads answer) into `container`.
export function render(container, data, metric) {
  const values = data.metrics[metric];
  const canvas = el("canvas", { testid: "metric-canvas", dataset: { metric } });
  const { low, high, layers, heads } = drawGrid(canvas, values);
  const title = metricTitle(metric, (data.titles || {})[metric]);
  canvas.addEventListener("mousemove", (event) => {
    const rect = canvas.getBoundingClientRect();
    const h = Math.floor((event.clientX - rect.left) / CELL);
    const l = Math.floor((event.clientY - rect.top) / CELL);
    if (l < 0 || h < 0 || l >= layers || h >= heads) return;
    const readout = $("metric-readout");
    readout.textContent = t("metrics.readout", { layer: l, head: h, metric, value: format(values[l][h]), label: headLabel(data.labels[l][h]) });
    Object.assign(readout.dataset, { layer: String(l), head: String(h), value: String(values[l][h]) });
  });
  const bar = scaleLegend(colourBar(sequential), low, high, title);
  const labels = el("div", { className: "label-grid", testid: "head-labels",
    style: { gridTemplateColumns: `repeat(${heads}, ${CELL - 1}px)` } });
  data.labels.forEach((row, l) => row.forEach((label, h) => {
    labels.append(el("span", { title: `L${l} H${h}: ${headLabel(label)}`, dataset: { label }, style: { background: LABELS[label] || "#fff" } }));
  }));
  const legend = el("p", { className: "chips" }, ...Object.entries(LABELS).map(([label, colour]) =>
    el("span", { className: "chip", style: { background: colour, color: inkOn(colour) } }, headLabel(label))));
  const counts = {};
  data.labels.flat().forEach((label) => { counts[label] = (counts[label] || 0) + 1; });
  const summary = el("p", { className: "muted" }, t("metrics.types", { counts:
    Object.entries(counts).map(([k, v]) => `${headLabel(k)} ${v}`).join(", ") }) + (data.note ? ` (${data.note})` : ""));
  container.replaceChildren(el("div", { className: "metrics-wrap" },
    el("div", {}, el("p", { className: "muted" }, t("metrics.of", { title })), axes(canvas, layers, heads), el("p", {}, bar)),
    el("div", {}, el("p", { className: "muted" }, t("metrics.labels")), axes(labels, layers, heads), legend, summary)));
}

export default {
  id: "metrics",
  get title() { return t("metrics.title"); },

  mount(root, ctx) {
    const select = el("select", { id: "metric", testid: "metric-select" });
    root.append(el("div", { className: "actions" }, el("label", {}, t("metrics.metric"), select),
      el("span", { id: "metric-readout", testid: "metric-readout", className: "readout" }, t("metrics.hover"))),
    el("div", { id: "head-metrics", testid: "head-metrics" }));
    select.addEventListener("change", () => ctx.render());
  },

  async update(state, ctx) {
    const text = state.text;
    const body = await ctx.cached("heads", {}, t("metrics.job"), // the catalogue's default threshold
      (id) => postJSON("/api/heads", { text, progress_id: id }), { progress: true });
    if (!body) return;
    const select = $("metric");
    const names = Object.keys(body.metrics);
    if ([...select.options].map((o) => o.value).join() !== names.join()) {
      const kept = names.includes(select.value) ? select.value : names.includes(chosen) ? chosen : names[0];
      fillSelect(select, names.map((n) => [n, metricTitle(n, (body.titles || {})[n])]), kept);
    }
    if (!shown || shown.body !== body || shown.metric !== select.value) {
      $("metric-readout").textContent = t("metrics.hover");
      delete $("metric-readout").dataset.value;
    }
    shown = { body, metric: select.value };
    chosen = select.value; // kept when the view is mounted again (a language switch)
    render($("head-metrics"), body, select.value);
  },

  exportPNG() {
    return document.querySelector("[data-testid=metric-canvas]");
  },

  exportData() {
    return shown ? { name: "attnscope-heads.json", data: shown.body } : null;
  },
};
