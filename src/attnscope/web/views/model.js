// The model view (after bertviz's): every layer × head as a thumbnail of its WHOLE attention map
// (query rows × key columns), all drawn on one canvas. Long inputs arrive pooled from the server
// (GET /api/traces/{id}/model-view: blocks of f × f tokens, max or mean, at most size × size cells).
// Filter and sort the heads by a head metric or a head-type label (POST /api/heads, asked only when
// needed); click a thumbnail to open that layer and head in the Heatmap view.
import { getArray, postJSON } from "../api.js";
import { $, el, fillSelect, scaleLegend } from "../dom.js";
import { format } from "../format.js";
import { t, strings } from "../i18n.js";
import { headLabel, metricTitle } from "../locales/views.js";
import { LABELS, attentionRGB, colourBar } from "../palette.js";
import { sizeCanvas } from "../draw.js";

strings({
  en: {
    "model.title": "Model view",
    "model.legend": "Every layer × head: each thumbnail is that head's whole attention map, query tokens top to bottom, key tokens left to right. Click one to open it in the Heatmap view.",
    "model.size": "thumbnail cells ",
    "model.pool": "pooling ",
    "model.pool.max": "maximum of each block",
    "model.pool.mean": "mean of each block",
    "model.sort": "order ",
    "model.sort.layer": "layer, head",
    "model.sort.label": "head type, then layer",
    "model.sort.metric": "{metric} (highest first)",
    "model.filter": "show ",
    "model.filter.all": "every head",
    "model.filter.label": "only {label} heads",
    "model.pooled": "{n} × {n} tokens per cell ({how}) for {q} × {k} tokens",
    "model.whole": "one cell per token pair ({q} × {k} tokens)",
    "model.sampled": "; long input: each cell reads {r} evenly spaced query rows of its {n} (all their keys)",
    "model.weight": "attention weight",
    "model.scaled": "attention weight ÷ each thumbnail's maximum",
    "model.readout": "layer {layer}, head {head}",
    "model.readout.cell": " · queries {q0}–{q1} → keys {k0}–{k1}: {value}",
    "model.hover": "hover a thumbnail; click to open it",
    "model.job": "head metrics",
    "model.shown": "{shown} of {total} heads",
    "model.head_axis": "head →",
    "model.layer_axis": "↓ layer",
  },
  "zh-CN": {
    "model.title": "模型总览",
    "model.legend": "每一层 × 每个注意力头：每个缩略图是该注意力头完整的注意力矩阵，查询词元自上而下，键词元从左到右。点击缩略图即可在热力图视图中打开。",
    "model.size": "缩略图格数 ",
    "model.pool": "池化方式 ",
    "model.pool.max": "每块取最大值",
    "model.pool.mean": "每块取平均值",
    "model.sort": "排序 ",
    "model.sort.layer": "按层、注意力头",
    "model.sort.label": "按注意力头类型，再按层",
    "model.sort.metric": "{metric}（从高到低）",
    "model.filter": "显示 ",
    "model.filter.all": "全部注意力头",
    "model.filter.label": "仅{label}注意力头",
    "model.pooled": "每格 {n} × {n} 个词元（{how}），共 {q} × {k} 个词元",
    "model.whole": "每个词元对一格（{q} × {k} 个词元）",
    "model.sampled": "；长输入：每格只读取其 {n} 行查询中等间隔的 {r} 行（及其全部键）",
    "model.weight": "注意力权重",
    "model.scaled": "注意力权重 ÷ 各缩略图的最大值",
    "model.readout": "第 {layer} 层，第 {head} 个注意力头",
    "model.readout.cell": " · 查询 {q0}–{q1} → 键 {k0}–{k1}：{value}",
    "model.hover": "悬停查看缩略图，点击即可打开",
    "model.job": "注意力头指标",
    "model.shown": "显示 {shown} / {total} 个注意力头",
    "model.head_axis": "注意力头 →",
    "model.layer_axis": "↓ 层",
  },
});

const SIZES = [16, 32, 64];
const METRICS = ["entropy", "sparsity", "locality", "sink", "previous_token", "focus_consistency", "induction"];
const GAP = 6; // CSS pixels between thumbnails
const CAPTION = 13; // CSS pixels under each thumbnail for its "L3 H2"
const LEFT = 18; // the layer axis title
const TOP = 16; // the head axis title
let data = null; // {key, header, values}: the pooled maps of the trace shown
let layout = null; // {order: [[layerIndex, head]], columns, thumb, header, values, scale}

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#000";

function thumbSize(heads) {
  return Math.max(32, Math.min(64, Math.floor(900 / Math.max(1, heads)) - GAP));
}

// The heads shown, in order: [[layer row in the maps, head]], filtered and sorted by the controls.
function ordered(header, heads, body, sort, filter) {
  const order = [];
  header.layers.forEach((layer, row) => { for (let h = 0; h < heads; h++) order.push([row, h]); });
  const label = (row, h) => body.labels[header.layers[row]][h];
  const kept = body && filter !== "all" ? order.filter(([row, h]) => label(row, h) === filter) : order;
  if (body && sort === "label") kept.sort((a, b) => label(...a).localeCompare(label(...b)) || a[0] - b[0] || a[1] - b[1]);
  else if (body && sort !== "layer") {
    const value = ([row, h]) => body.metrics[sort][header.layers[row]][h] ?? -Infinity;
    kept.sort((a, b) => value(b) - value(a));
  }
  return kept;
}

function draw(canvas) {
  const { order, columns, thumb, header, values, scale } = layout;
  const [, , cellsQ, cellsK] = header.shape;
  const heads = header.shape[1];
  const rows = Math.ceil(order.length / columns);
  const width = LEFT + columns * (thumb + GAP);
  const height = TOP + rows * (thumb + CAPTION + GAP);
  const ctx = sizeCanvas(canvas, width, height);
  ctx.clearRect(0, 0, width, height);
  const cell = document.createElement("canvas"); // one thumbnail's cells, scaled up without smoothing
  cell.width = cellsK;
  cell.height = cellsQ;
  const cellCtx = cell.getContext("2d");
  const image = cellCtx.createImageData(cellsK, cellsQ);
  ctx.imageSmoothingEnabled = false;
  ctx.font = "10px sans-serif";
  ctx.fillStyle = css("--muted");
  ctx.fillText(t("model.head_axis"), LEFT, 11);
  ctx.save();
  ctx.translate(11, TOP + 4);
  ctx.rotate(Math.PI / 2);
  ctx.fillText(t("model.layer_axis"), 0, 0);
  ctx.restore();
  order.forEach(([row, head], index) => {
    const offset = (row * heads + head) * cellsQ * cellsK;
    const map = values.subarray(offset, offset + cellsQ * cellsK);
    let max = 0;
    for (const v of map) if (v > max) max = v;
    const divisor = scale === "minmax" && max > 0 ? max : 1;
    for (let i = 0; i < map.length; i++) {
      const [r, g, b] = attentionRGB(map[i] / divisor);
      image.data.set([r, g, b, 255], 4 * i);
    }
    cellCtx.putImageData(image, 0, 0);
    const x = LEFT + (index % columns) * (thumb + GAP);
    const y = TOP + Math.floor(index / columns) * (thumb + CAPTION + GAP);
    ctx.drawImage(cell, x, y, thumb, thumb);
    ctx.strokeStyle = css("--line");
    ctx.strokeRect(x - 0.5, y - 0.5, thumb + 1, thumb + 1);
    ctx.fillStyle = css("--muted");
    ctx.fillText(`L${header.layers[row]} H${head}`, x, y + thumb + 10);
  });
}

// The thumbnail (and its cell) under a pointer event: {index, layer, head, cellQ, cellK} or null.
function hit(event) {
  if (!layout) return null;
  const rect = event.target.getBoundingClientRect();
  const x = event.clientX - rect.left - LEFT;
  const y = event.clientY - rect.top - TOP;
  const { columns, thumb, order, header } = layout;
  const column = Math.floor(x / (thumb + GAP));
  const line = Math.floor(y / (thumb + CAPTION + GAP));
  const dx = x - column * (thumb + GAP);
  const dy = y - line * (thumb + CAPTION + GAP);
  const index = line * columns + column;
  if (x < 0 || y < 0 || column >= columns || dx > thumb || dy > thumb || index >= order.length) return null;
  const [row, head] = order[index];
  const [, , cellsQ, cellsK] = header.shape;
  return { index, row, layer: header.layers[row], head,
    cellQ: Math.min(cellsQ - 1, Math.floor((dy / thumb) * cellsQ)), cellK: Math.min(cellsK - 1, Math.floor((dx / thumb) * cellsK)) };
}

function readout(found) {
  const box = $("model-readout");
  if (!found) { box.textContent = t("model.hover"); return; }
  const { header, values } = layout;
  const [, heads, cellsQ, cellsK] = header.shape;
  const f = header.factor;
  const value = values[((found.row * heads + found.head) * cellsQ + found.cellQ) * cellsK + found.cellK];
  const [nq, nk] = header.tokens;
  box.textContent = t("model.readout", { layer: found.layer, head: found.head }) + t("model.readout.cell", {
    q0: found.cellQ * f, q1: Math.min(nq, (found.cellQ + 1) * f) - 1, k0: found.cellK * f,
    k1: Math.min(nk, (found.cellK + 1) * f) - 1, value: format(value) });
  Object.assign(box.dataset, { layer: String(found.layer), head: String(found.head), value: String(value) });
}

// Head metrics to sort by: the answer's (with its titles), or the known ones before it is asked for.
function sortOptions(body, value) {
  const names = body ? Object.keys(body.metrics) : METRICS;
  const title = (m) => (body ? metricTitle(m, (body.titles || {})[m]) : t(`metric.${m}`, { threshold: "0.01" }));
  select("model-sort", [["layer", t("model.sort.layer")], ["label", t("model.sort.label")],
    ...names.map((m) => [m, t("model.sort.metric", { metric: title(m) })])], value);
}

function filterOptions(labels, value) {
  select("model-filter", [["all", t("model.filter.all")], ...labels.map((l) => [l, t("model.filter.label", { label: headLabel(l) })])], value);
}

function select(id, options, value) {
  const node = $(id);
  fillSelect(node, options, options.some(([v]) => String(v) === String(value)) ? value : options[0][0]);
  return node;
}

export default {
  id: "model",
  testid: "model-view",
  get title() { return t("model.title"); },

  mount(root, ctx) {
    const control = (label, id) => el("label", {}, t(label), el("select", { id, testid: id }));
    root.append(
      el("p", { className: "legend" }, t("model.legend")),
      el("div", { className: "actions" }, control("model.size", "model-size"), control("model.pool", "model-pool"),
        control("model.sort", "model-sort"), control("model.filter", "model-filter"),
        el("span", { id: "model-count", testid: "model-count", className: "muted" })),
      el("p", {}, el("span", { id: "model-scale" }), " ", el("span", { id: "model-note", testid: "model-note", className: "muted" })),
      el("p", { id: "model-readout", testid: "model-readout", className: "readout" }, t("model.hover")),
      el("div", { className: "canvas-wrap" }, el("canvas", { id: "model-canvas", testid: "model-canvas" })));
    select("model-size", SIZES.map((n) => [n, `${n} × ${n}`]), 32);
    select("model-pool", [["max", t("model.pool.max")], ["mean", t("model.pool.mean")]], "max");
    sortOptions(null, "layer");
    filterOptions(Object.keys(LABELS).filter((l) => l !== "not captured"), "all");
    for (const id of ["model-size", "model-pool", "model-sort", "model-filter"]) $(id).addEventListener("change", () => ctx.render());
    const canvas = $("model-canvas");
    canvas.addEventListener("mousemove", (event) => readout(hit(event)));
    canvas.addEventListener("mouseleave", () => readout(null));
    canvas.addEventListener("click", (event) => {
      const found = hit(event);
      if (found) ctx.selectHead(found.layer, found.head, "heatmap");
    });
    data = null; // a re-mount (language switch) draws again from the kept arrays' key
  },

  async update(state, ctx) {
    const r = state.result;
    const size = $("model-size").value;
    const pool = $("model-pool").value;
    const stack = r.attention.stack;
    const key = `${r.trace_id}|${stack}|${size}|${pool}`;
    if (!data || data.key !== key) {
      const { header, values } = await getArray(`/api/traces/${r.trace_id}/model-view?size=${size}&pool=${pool}&stack=${stack}`);
      if (state.result !== r) return;
      data = { key, header, values };
    }
    const sort = $("model-sort").value;
    const filter = $("model-filter").value;
    let body = null;
    if (sort !== "layer" || filter !== "all" || ctx.peek("heads", {})) { // head metrics only when asked for (or known)
      const text = state.text;
      body = await ctx.cached("heads", {}, t("model.job"), (id) => postJSON("/api/heads", { text, progress_id: id }), { progress: true });
      if (!body || state.result !== r) return;
    }
    if (body) {
      sortOptions(body, sort);
      filterOptions([...new Set(body.labels.flat())].sort(), filter);
    }
    const { header, values } = data;
    const [, heads] = header.shape;
    const order = ordered(header, heads, body, $("model-sort").value, $("model-filter").value);
    layout = { order, columns: heads, thumb: thumbSize(heads), header, values, scale: state.display.scale };
    const canvas = $("model-canvas");
    draw(canvas);
    Object.assign(canvas.dataset, { thumb: String(layout.thumb), columns: String(heads), gap: String(GAP),
      caption: String(CAPTION), left: String(LEFT), top: String(TOP), factor: String(header.factor), pool: header.pool,
      sort: $("model-sort").value, filter: $("model-filter").value,
      order: order.map(([row, h]) => `${header.layers[row]}:${h}`).join(",") });
    $("model-count").textContent = t("model.shown", { shown: order.length, total: header.layers.length * heads });
    $("model-scale").replaceChildren(scaleLegend(colourBar(attentionRGB), 0, 1,
      state.display.scale === "minmax" ? t("model.scaled") : t("model.weight")));
    const [nq, nk] = header.tokens;
    $("model-note").textContent = header.factor > 1
      ? t("model.pooled", { n: header.factor, how: t(`model.pool.${header.pool}`), q: nq, k: nk })
      : t("model.whole", { q: nq, k: nk });
    if (header.rows_per_block) $("model-note").textContent += t("model.sampled", { r: header.rows_per_block, n: header.factor });
  },

  exportPNG() {
    return document.querySelector("[data-testid=model-canvas]");
  },
};
