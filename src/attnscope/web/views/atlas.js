// The head atlas: every head of the model as a point (POST /api/atlas: PCA, t-SNE or UMAP of each
// head's mean-pooled whole map and its metrics, standardised), coloured by layer or head type; click a
// point to open that head in the Heatmap view. And AttentionViz's joint query–key space of one layer
// (POST /api/qk-projection): queries and keys as points of one space, translated and scaled so that
// nearness shows attention, coloured query/key or by position; hover a point for its token.
import { postJSON } from "../api.js";
import { $, el, fillSelect, hideTip, scaleLegend, showTip, tokenChip } from "../dom.js";
import { format, formatProb } from "../format.js";
import { t, strings } from "../i18n.js";
import { headLabel } from "../locales/views.js";
import { ATTENTION, LABELS, PREDICTION, colourBar, css, inkOn, sequential } from "../palette.js";
import { drawScatter, nearest } from "../scatter.js";

strings({
  en: {
    "atlas.title": "Head atlas",
    "atlas.legend.heads": "Every head of the model as a point: its whole attention map mean-pooled to at most 16 × 16 cells plus its six head metrics, each column standardised over the heads, projected to two dimensions. Nearby heads attend alike. Click a point to open that head in the Heatmap view.",
    "atlas.legend.qk": "One layer's queries (●) and keys (■) in one space (AttentionViz): per head, keys moved onto the queries' centroid and queries × s, keys ÷ s so their spreads match — every attention weight stays exactly the model's — then projected together. A query lies near the keys it attends to.",
    "atlas.mode": "show ",
    "atlas.mode.heads": "every head",
    "atlas.mode.qk": "queries and keys of one layer",
    "atlas.projection": "projection ",
    "atlas.colour": "colour by ",
    "atlas.colour.layer": "layer",
    "atlas.colour.label": "head type",
    "atlas.colour.kind": "query or key",
    "atlas.colour.position": "token position",
    "atlas.layer": "layer ",
    "atlas.head": "head ",
    "atlas.head.all": "all heads",
    "atlas.layer_n": "layer {n}",
    "atlas.head_n": "head {n}",
    "atlas.axis.pca": "component {n} ({share} of variance)",
    "atlas.axis": "{method} component {n}",
    "atlas.tip.head": "layer {layer}, head {head} · {label}",
    "atlas.tip.query": "query of token {position}, head {head}",
    "atlas.tip.key": "key of token {position}, head {head}",
    "atlas.query": "query",
    "atlas.key": "key",
    "atlas.position": "token position",
    "atlas.points": "{n} heads",
    "atlas.sampled_rows": "; long input: metrics and maps read {n} evenly spaced query rows (all their keys)",
    "atlas.qk_points": "{q} queries and {k} keys",
    "atlas.qk_stack": " of the {stack} stack (cross-attention links two texts; the joint space needs self-attention)",
    "atlas.subsampled": "; subsampled from {total} points at evenly spaced positions ({method} takes at most {max})",
    "atlas.inexact": " Soft-capping or a position bias also shapes this layer's scores: dot products are not the whole score.",
    "atlas.job": "head atlas",
    "atlas.qk_job": "queries and keys",
    "atlas.hover": "hover a point",
  },
  "zh-CN": {
    "atlas.title": "注意力头图谱",
    "atlas.legend.heads": "模型的每个注意力头是一个点：其完整注意力矩阵按平均池化缩到至多 16 × 16 格，再加上六项注意力头指标，每一列在所有注意力头上标准化后投影到二维。相近的点注意力模式相似。点击一个点即可在热力图视图中打开该注意力头。",
    "atlas.legend.qk": "同一层的查询（●）与键（■）位于同一空间（AttentionViz）：对每个注意力头，把键平移到查询的质心，并将查询乘以 s、键除以 s 使两者的分散程度一致——每个注意力权重与模型完全相同——再一起投影。查询靠近它所关注的键。",
    "atlas.mode": "显示 ",
    "atlas.mode.heads": "全部注意力头",
    "atlas.mode.qk": "某一层的查询与键",
    "atlas.projection": "投影方法 ",
    "atlas.colour": "着色依据 ",
    "atlas.colour.layer": "层",
    "atlas.colour.label": "注意力头类型",
    "atlas.colour.kind": "查询或键",
    "atlas.colour.position": "词元位置",
    "atlas.layer": "层 ",
    "atlas.head": "注意力头 ",
    "atlas.head.all": "全部注意力头",
    "atlas.layer_n": "第 {n} 层",
    "atlas.head_n": "第 {n} 个注意力头",
    "atlas.axis.pca": "第 {n} 主成分（解释方差 {share}）",
    "atlas.axis": "{method} 第 {n} 维",
    "atlas.tip.head": "第 {layer} 层，第 {head} 个注意力头 · {label}",
    "atlas.tip.query": "词元 {position} 的查询，第 {head} 个注意力头",
    "atlas.tip.key": "词元 {position} 的键，第 {head} 个注意力头",
    "atlas.query": "查询",
    "atlas.key": "键",
    "atlas.position": "词元位置",
    "atlas.points": "{n} 个注意力头",
    "atlas.sampled_rows": "；长输入：指标和矩阵只读取等间隔的 {n} 行查询（及其全部键）",
    "atlas.qk_points": "{q} 个查询和 {k} 个键",
    "atlas.qk_stack": "（来自{stack}；交叉注意力连接两段文本，联合空间需要自注意力）",
    "atlas.subsampled": "；从 {total} 个点中按等间隔位置抽样（{method} 至多处理 {max} 个点）",
    "atlas.inexact": " 该层的得分还受软截断或位置偏置影响：点积并非得分的全部。",
    "atlas.job": "注意力头图谱",
    "atlas.qk_job": "查询与键",
    "atlas.hover": "悬停查看数据点",
  },
});

const METHODS = { pca: "PCA", tsne: "t-SNE", umap: "UMAP" };
let shown = null; // {body, plot, mode, colour}

const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

function axisTitles(projection) {
  if (projection.method === "pca" && projection.explained_variance) {
    return [1, 2].map((n) => t("atlas.axis.pca", { n, share: formatProb(projection.explained_variance[n - 1]) }));
  }
  return [1, 2].map((n) => t("atlas.axis", { method: METHODS[projection.method], n }));
}

function chips(entries) {
  return el("span", { className: "chips" }, ...entries.map(([text, colour]) =>
    el("span", { className: "chip", style: { background: colour, color: colour.startsWith("#") ? inkOn(colour) : "#fff" } }, text)));
}

function drawHeads(body, colourBy) {
  const layers = Math.max(...body.layers);
  const colour = colourBy === "label"
    ? (i) => LABELS[body.labels[i]] || "#888888"
    : (i) => rgb(sequential(layers > 0 ? body.layers[i] / layers : 0.5));
  const [xTitle, yTitle] = axisTitles(body.projection);
  const plot = drawScatter($("atlas-canvas"), body.points, { colour, xTitle, yTitle, radius: 5 });
  const legend = colourBy === "label"
    ? chips([...new Set(body.labels)].sort().map((label) => [headLabel(label), LABELS[label] || "#888888"]))
    : scaleLegend(colourBar((x) => sequential(x)), 0, layers, t("atlas.colour.layer"));
  $("atlas-key").replaceChildren(legend);
  $("atlas-note").textContent = t("atlas.points", { n: body.points.length }) +
    (body.sampled_rows ? t("atlas.sampled_rows", { n: body.sampled_rows }) : "");
  return plot;
}

function drawQK(body, colourBy, pageStack) {
  const last = Math.max(1, body.tokens.length - 1);
  const colour = colourBy === "position"
    ? (i) => rgb(sequential(body.positions[i] / last))
    : (i) => rgb(body.kinds[i] === "q" ? PREDICTION : ATTENTION);
  const shape = (i) => (body.kinds[i] === "q" ? "circle" : "square");
  const [xTitle, yTitle] = axisTitles(body.projection);
  const plot = drawScatter($("atlas-canvas"), body.points, { colour, shape, xTitle, yTitle, radius: body.points.length > 4000 ? 2 : 3 });
  const legend = colourBy === "position"
    ? scaleLegend(colourBar((x) => sequential(x)), 0, last, t("atlas.position"))
    : chips([[`● ${t("atlas.query")}`, css(PREDICTION)], [`■ ${t("atlas.key")}`, css(ATTENTION)]]);
  $("atlas-key").replaceChildren(legend);
  const count = (kind) => body.kinds.filter((k) => k === kind).length;
  $("atlas-note").textContent = t("atlas.qk_points", { q: count("q"), k: count("k") }) +
    (body.stack !== pageStack ? t("atlas.qk_stack", { stack: t(`shell.stack.${body.stack}`) }) : "") +
    (body.subsampled ? t("atlas.subsampled", { total: body.total_points.toLocaleString(), method: METHODS[body.projection.method],
      max: body.max_points.toLocaleString() }) : "") + (body.exact ? "" : t("atlas.inexact"));
  return plot;
}

function pointAt(event) {
  if (!shown) return -1;
  const rect = $("atlas-canvas").getBoundingClientRect();
  return nearest(shown.plot, shown.body.points, event.clientX - rect.left, event.clientY - rect.top);
}

function describe(body, i) {
  if (body.result === "head-atlas") {
    return [t("atlas.tip.head", { layer: body.layers[i], head: body.heads[i], label: headLabel(body.labels[i]) })];
  }
  const key = body.kinds[i] === "q" ? "atlas.tip.query" : "atlas.tip.key";
  return [t(key, { position: body.positions[i], head: body.point_heads[i] }), " ", tokenChip(body.tokens[body.positions[i]])];
}

function select(id, options, value) {
  const node = $(id);
  const keep = options.some(([v]) => String(v) === String(value));
  if ([...node.options].map((o) => `${o.value}=${o.text}`).join() !== options.map(([v, l]) => `${v}=${l}`).join()) {
    fillSelect(node, options, keep ? value : options[0][0]);
  } else if (keep) node.value = String(value);
  return node.value;
}

export default {
  id: "atlas",
  testid: "atlas",
  get title() { return t("atlas.title"); },

  mount(root, ctx) {
    const control = (label, id) => el("label", { id: `${id}-box` }, t(label), el("select", { id, testid: id }));
    root.append(
      el("p", { id: "atlas-legend", className: "legend" }),
      el("div", { className: "actions" }, control("atlas.mode", "atlas-mode"), control("atlas.projection", "atlas-projection"),
        control("atlas.colour", "atlas-colour"), control("atlas.layer", "atlas-layer"), control("atlas.head", "atlas-head")),
      el("p", {}, el("span", { id: "atlas-key", testid: "atlas-key" }), " ", el("span", { id: "atlas-note", testid: "atlas-note", className: "muted" })),
      el("p", { id: "atlas-readout", testid: "atlas-readout", className: "readout" }, t("atlas.hover")),
      el("canvas", { id: "atlas-canvas", testid: "atlas-canvas" }));
    select("atlas-mode", [["heads", t("atlas.mode.heads")], ["qk", t("atlas.mode.qk")]], "heads");
    select("atlas-projection", Object.entries(METHODS), "pca");
    for (const id of ["atlas-mode", "atlas-projection", "atlas-colour", "atlas-layer", "atlas-head"]) {
      $(id).addEventListener("change", () => ctx.render());
    }
    const canvas = $("atlas-canvas");
    canvas.addEventListener("mousemove", (event) => {
      const i = pointAt(event);
      if (i < 0) { hideTip(); return; }
      showTip(event, ...describe(shown.body, i));
      const readout = $("atlas-readout");
      readout.replaceChildren(...describe(shown.body, i));
      readout.dataset.point = String(i);
    });
    canvas.addEventListener("mouseleave", () => hideTip());
    canvas.addEventListener("click", (event) => {
      const i = pointAt(event);
      if (i < 0 || !shown) return;
      const body = shown.body;
      if (body.result === "head-atlas") ctx.selectHead(body.layers[i], body.heads[i], "heatmap");
      else ctx.selectHead(body.layer, body.point_heads[i], "heatmap");
    });
    shown = null;
  },

  async update(state, ctx) {
    const r = state.result;
    const text = state.text;
    const mode = $("atlas-mode").value;
    const projection = $("atlas-projection").value;
    $("atlas-legend").textContent = t(mode === "qk" ? "atlas.legend.qk" : "atlas.legend.heads");
    $("atlas-layer-box").hidden = $("atlas-head-box").hidden = mode !== "qk";
    let body;
    let colour;
    if (mode === "qk") {
      const { layers, heads } = r.view;
      const layer = Number(select("atlas-layer", [...Array(layers).keys()].map((l) => [l, t("atlas.layer_n", { n: l })]),
        $("atlas-layer").value || r.attention.layer));
      const chosen = select("atlas-head", [["all", t("atlas.head.all")], ...[...Array(heads).keys()].map((h) => [h, t("atlas.head_n", { n: h })])],
        $("atlas-head").value || "all");
      const head = chosen === "all" ? "all" : Number(chosen);
      colour = select("atlas-colour", [["kind", t("atlas.colour.kind")], ["position", t("atlas.colour.position")]], $("atlas-colour").value);
      // the joint space needs self-attention: with the page on cross-attention, the encoder (the typed text)
      const stack = r.attention.stack === "cross" ? "encoder" : r.attention.stack || null;
      body = await ctx.cached("qk", { projection, layer, head, stack }, t("atlas.qk_job"),
        (id) => postJSON("/api/qk-projection", { text, projection, layer, head, stack, progress_id: id }), { progress: true });
    } else {
      colour = select("atlas-colour", [["layer", t("atlas.colour.layer")], ["label", t("atlas.colour.label")]], $("atlas-colour").value);
      const stack = r.attention.stack || null; // the page's stack: cross-attention heads are points too
      body = await ctx.cached("atlas", { projection, stack }, t("atlas.job"),
        (id) => postJSON("/api/atlas", { text, projection, stack, progress_id: id }), { progress: true });
    }
    if (!body || state.result !== r) return;
    const plot = mode === "qk" ? drawQK(body, colour, r.attention.stack) : drawHeads(body, colour);
    shown = { body, plot };
    const canvas = $("atlas-canvas");
    Object.assign(canvas.dataset, { mode, projection, colour, count: String(body.points.length), plot: JSON.stringify(plot) });
    $("atlas-readout").textContent = t("atlas.hover");
  },

  exportPNG() {
    return document.querySelector("[data-testid=atlas-canvas]");
  },

  exportData() {
    return shown ? { name: `attnscope-${shown.body.result}.json`, data: shown.body } : null;
  },
};
