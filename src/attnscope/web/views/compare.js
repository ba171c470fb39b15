// Compare: the loaded model (A) against a second model or an adapter (B) on the analysed text
// (POST /api/compare/models). Both tokenizations side by side with each token's character span and
// common unit, both top-k predictions, the difference map A − B of one matched layer on the words
// both models cover (canvas, labelled axes, signed colour bar), the per-layer head-metric means of A
// beside B's matched layer, and one attribution method on both with its rank agreement.
import { getJSON, postJSON } from "../api.js";
import { $, count, el, fillSelect, scaleLegend, table, tokenChip } from "../dom.js";
import { remPx, textWidth, tickStep } from "../draw.js";
import { format, formatProb } from "../format.js";
import { colourBar, inkOnScore, scoreColour } from "../palette.js";
import { signedRGB } from "../counterfactual-map.js";
import { strings, t } from "../i18n.js";
import "../locales/views.js"; // the head-metric titles (metric.*)

strings({
  en: {
    "compare.title": "Compare models",
    "compare.legend": "The loaded model (A) against a second model or a PEFT adapter (B) on the analysed text. Differences are A − B, on the words both tokenizations cover; layers are matched by depth (j = round(i·(L_B − 1)/(L_A − 1))), heads by their mean.",
    "compare.model": "model B", "compare.same": "(the loaded model)",
    "compare.adapter": "adapter folder", "compare.adapter.placeholder": "a folder with adapter_config.json + adapter_model.safetensors",
    "compare.method": "attribution", "compare.layer": "layer of A",
    "compare.layer.n": "A {a} ↔ B {b}",
    "compare.run": "Compare", "compare.job": "model comparison",
    "compare.press": "Analyse a text, choose model B (or an adapter) and press Compare.",
    "compare.h.tokens": "Tokens and predictions", "compare.h.map": "Difference map A − B (layer {a} of A, layer {b} of B)",
    "compare.h.heads": "Head metrics per layer (mean over heads)", "compare.h.attribution": "Attribution side by side",
    "compare.side": "{side}: {name} · {layers} layers × {heads} heads · {n} tokens",
    "compare.more_tokens": "… {n} more tokens",
    "compare.no_prediction": "No next-token prediction.",
    "compare.same_model": "A and B are the same model: every difference is 0.",
    "compare.bar": "difference of attention (A − B)",
    "compare.axes": "rows: query words · columns: key words",
    "compare.hover": "Hover over the map to read a cell.",
    "compare.cell": "query {q} → key {k}: A {a}, B {b}, A − B {d}",
    "compare.special": "Attention to special tokens is left out of the map (A: {a}, B: {b}, mean over query words).",
    "compare.layer.col": "layer A", "compare.layer.b": "layer B",
    "compare.unit": "word", "compare.score.a": "A", "compare.score.b": "B",
    "compare.agreement": "{method}: Spearman ρ {spearman}, Kendall τ-b {kendall} over {n} words. A explains {ta}, B explains {tb}.",
    "compare.no_attribution": "No attribution (method: none).",
    "compare.more_units": "The {shown} of {n} words whose scores are largest.",
  },
  "zh-CN": {
    "compare.title": "模型对比",
    "compare.legend": "在当前分析的文本上，将已加载的模型（A）与第二个模型或 PEFT 适配器（B）对比。差值为 A − B，按两种分词都完整覆盖的词计算；层按深度比例匹配（j = round(i·(L_B − 1)/(L_A − 1))），注意力头取平均。",
    "compare.model": "模型 B", "compare.same": "（已加载的模型）",
    "compare.adapter": "适配器文件夹", "compare.adapter.placeholder": "含 adapter_config.json 和 adapter_model.safetensors 的文件夹",
    "compare.method": "归因方法", "compare.layer": "A 的层",
    "compare.layer.n": "A 第 {a} 层 ↔ B 第 {b} 层",
    "compare.run": "对比", "compare.job": "模型对比",
    "compare.press": "先分析一段文本，选择模型 B（或适配器），再点击“对比”。",
    "compare.h.tokens": "词元与预测", "compare.h.map": "差值图 A − B（A 第 {a} 层，B 第 {b} 层）",
    "compare.h.heads": "各层的注意力头指标（头平均）", "compare.h.attribution": "归因对照",
    "compare.side": "{side}：{name} · {layers} 层 × {heads} 个头 · {n} 个词元",
    "compare.more_tokens": "……另有 {n} 个词元",
    "compare.no_prediction": "没有下一个词元的预测。",
    "compare.same_model": "A 与 B 是同一个模型：所有差值均为 0。",
    "compare.bar": "注意力差值（A − B）",
    "compare.axes": "行：查询词 · 列：键词",
    "compare.hover": "将鼠标移到图上查看单元格数值。",
    "compare.cell": "查询 {q} → 键 {k}：A {a}，B {b}，A − B {d}",
    "compare.special": "图中不含对特殊词元的注意力（A：{a}，B：{b}，按查询词平均）。",
    "compare.layer.col": "A 的层", "compare.layer.b": "B 的层",
    "compare.unit": "词", "compare.score.a": "A", "compare.score.b": "B",
    "compare.agreement": "{method}：Spearman ρ {spearman}，Kendall τ-b {kendall}，共 {n} 个词。A 解释 {ta}，B 解释 {tb}。",
    "compare.no_attribution": "未计算归因（方法：none）。",
    "compare.more_units": "显示得分绝对值最大的 {shown} 个词（共 {n} 个）。",
  },
});

const METHODS = ["grad-x-input", "grad-norm", "integrated-gradients", "attention", "none"];
const METRICS = ["entropy", "sparsity", "locality", "sink", "previous_token", "focus_consistency"];
const MAX_TOKENS = 400; // token chips shown per model; the rest counted
const MAX_UNIT_ROWS = 200; // attribution rows; the largest scores kept
const LABELLED = 40; // maps with at most this many words label both axes with them
let shown = null; // the answer drawn
let layerOfA = -1; // the layer of A the map shows (-1: the last)

function request() {
  const model = $("compare-model").value || null;
  const adapter = $("compare-adapter").value.trim() || null;
  return { model, adapter, layers: [layerOfA], method: $("compare-method").value };
}

async function fillModels(ctx) {
  const models = await getJSON("/api/models");
  const select = $("compare-model");
  const kept = select.value;
  const options = [["", t("compare.same")],
    ...models.models.filter((m) => m.installed).map((m) => [m.alias, `${m.alias} — ${m.title}`])];
  const current = ctx.state.model ? ctx.state.model.spec : "";
  if (current && !options.some(([alias]) => alias === current)) options.push([current, current]);
  fillSelect(select, options, options.some(([v]) => v === kept) ? kept : "");
}

function side(body, index) {
  const info = body.models[index];
  const model = index === 0 ? body.model : body.model_b;
  const chars = Array.from(body.text);
  const chips = info.tokens.slice(0, MAX_TOKENS).map((token) => {
    const text = token.start === null ? token.text : chars.slice(token.start, token.end).join("");
    const chip = tokenChip(text);
    Object.assign(chip.dataset, { index: String(token.index), start: String(token.start), end: String(token.end),
      unit: String(token.unit) });
    chip.title = token.start === null ? token.text : `[${token.start}, ${token.end})`;
    return chip;
  });
  const more = info.tokens.length > MAX_TOKENS ? t("compare.more_tokens", { n: info.tokens.length - MAX_TOKENS }) : null;
  const top = info.predictions
    ? el("ol", { className: "cf-top", testid: `compare-top-${index ? "b" : "a"}` }, ...info.predictions.map((c) =>
      el("li", { dataset: { token: c.token, prob: String(c.prob) } }, tokenChip(c.token), ` ${formatProb(c.prob)}`)))
    : el("p", { className: "muted" }, t("compare.no_prediction"));
  return el("div", { className: "cf-side" },
    el("div", { className: "cf-label" }, t("compare.side", { side: index ? "B" : "A", name: model.name,
      layers: info.layers, heads: info.heads, n: info.tokens.length })),
    el("div", { className: "compare-tokens", testid: `compare-tokens-${index ? "b" : "a"}`, dir: "auto" }, ...chips, more),
    top);
}

function ticks(n, pitch, axis, label) {
  const px = 0.72 * remPx();
  const step = label ? 1 : tickStep(pitch, axis === "x" ? textWidth(String(n - 1), px) + 2 : px * 1.2, axis === "x" ? 4 : 1);
  const out = [];
  for (let k = 0; k < n; k += step) {
    const where = axis === "x" ? { left: `${(k + 0.5) * pitch}px` } : { top: `${(k + 0.5) * pitch}px` };
    out.push(el("span", { className: `tick ${axis}${label && axis === "x" ? " cf-vertical" : ""}`, style: where },
      ...(label ? [`${k} `, tokenChip(label(k))] : [String(k)])));
  }
  return out;
}

function differenceMap(body) {
  const map = body.difference.maps[0];
  const [a, b] = body.layer_match.pairs[0];
  const units = body.units;
  const n = units.length;
  const top = Math.max(1e-12, ...map.map((row) => Math.max(...row.map(Math.abs))));
  const canvas = el("canvas", { testid: "compare-map-canvas", dataset: { size: String(n), maxAbs: String(top),
    layerA: String(a), layerB: String(b) } });
  canvas.width = n; canvas.height = n;
  const context = canvas.getContext("2d");
  const image = context.createImageData(n, n);
  map.forEach((row, r) => row.forEach((value, c) => {
    image.data.set([...signedRGB(0.5 + value / (2 * top)), 255], 4 * (r * n + c));
  }));
  context.putImageData(image, 0, 0);
  const labelled = n <= LABELLED;
  const label = labelled ? (k) => units[k].text : null;
  const width = Math.min(560, Math.max(240, n * (labelled ? 22 : 4)));
  Object.assign(canvas.style, { width: `${width}px`, height: `${width}px`, imageRendering: "pixelated" });
  const longest = labelled ? Math.max(...units.map((u, k) => textWidth(`${k} ${u.text}`, 0.72 * remPx()))) + 24 : 0;
  const readout = el("p", { className: "readout", testid: "compare-map-readout" }, t("compare.hover"));
  canvas.addEventListener("mousemove", (event) => {
    const rect = canvas.getBoundingClientRect();
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * n);
    const row = Math.floor(((event.clientY - rect.top) / rect.height) * n);
    if (row < 0 || col < 0 || row >= n || col >= n) return;
    readout.textContent = t("compare.cell", { q: `${row} ${units[row].text}`, k: `${col} ${units[col].text}`,
      a: format(body.models[0].maps[0][row][col]), b: format(body.models[1].maps[0][row][col]), d: format(map[row][col]) });
    readout.dataset.value = String(map[row][col]);
  });
  const mean = (values) => (values.length ? values.reduce((x, y) => x + y, 0) / values.length : 0);
  const plot = el("div", { className: "plot cf-plot", style: { marginBottom: `${longest}px` } }, canvas,
    ...ticks(n, width / n, "y", label), ...ticks(n, width / n, "x", label));
  return el("div", { className: "cf-block", testid: "compare-map" },
    el("p", { className: "legend" }, scaleLegend(colourBar(signedRGB), -top, top, t("compare.bar"))),
    el("p", { className: "legend" }, t("compare.special", { a: format(mean(body.models[0].to_special[0])),
      b: format(mean(body.models[1].to_special[0])) })),
    el("div", { className: `cf-map${labelled ? " labelled" : ""}`, style: { paddingLeft: `${labelled ? longest : 48}px` } },
      el("div", { className: "axis-title" }, t("compare.axes")), plot),
    readout);
}

function heads(body) {
  const { metrics } = body.head_metrics;
  const rows = body.layer_match.all.map(([a, b], i) => [String(a), String(b),
    ...METRICS.flatMap((name) => [format(metrics[name].a[i]), format(metrics[name].b[i])])]);
  const list = table(rows, [t("compare.layer.col"), t("compare.layer.b"), ...METRICS.flatMap((name) => {
    const title = t(`metric.${name}`, { threshold: "0.01" }); // head_metrics' default threshold
    return [`${title} A`, `${title} B`];
  })]);
  list.setAttribute("data-testid", "compare-heads");
  [...list.tBodies[0].rows].forEach((row, i) => Object.assign(row.dataset, { layerA: String(body.layer_match.all[i][0]),
    entropyA: String(metrics.entropy.a[i]), entropyB: String(metrics.entropy.b[i]) }));
  return el("div", { className: "cf-block compare-heads" }, list);
}

function attribution(body) {
  const a = body.attribution;
  if (!a) return el("p", { className: "muted", testid: "compare-attribution" }, t("compare.no_attribution"));
  let order = body.units.map((_, k) => k);
  if (order.length > MAX_UNIT_ROWS) {
    const kept = new Set([...order].sort((x, y) => Math.max(Math.abs(a.a[y]), Math.abs(a.b[y]))
      - Math.max(Math.abs(a.a[x]), Math.abs(a.b[x]))).slice(0, MAX_UNIT_ROWS));
    order = order.filter((k) => kept.has(k));
  }
  const top = Math.max(1e-12, ...a.a.map((v) => Math.abs(v ?? 0)), ...a.b.map((v) => Math.abs(v ?? 0)));
  const score = (value) => el("span", { className: "cf-shift", style: { background: scoreColour(value, top),
    color: inkOnScore(value, top) } }, format(value));
  const rows = table(order.map((k) => [String(k), tokenChip(body.units[k].text), score(a.a[k]), score(a.b[k])]),
    ["#", t("compare.unit"), t("compare.score.a"), t("compare.score.b")]);
  [...rows.tBodies[0].rows].forEach((row, i) => Object.assign(row.dataset, { unit: String(order[i]),
    a: String(a.a[order[i]]), b: String(a.b[order[i]]) }));
  const target = (k) => (a.targets[k] && a.targets[k].text !== undefined ? JSON.stringify(a.targets[k].text) : "—");
  return el("div", { className: "cf-block", testid: "compare-attribution",
    dataset: { spearman: String(a.spearman), kendall: String(a.kendall), method: a.method } },
  el("p", { className: "legend" }, t("compare.agreement", { method: a.method, spearman: format(a.spearman),
    kendall: format(a.kendall), n: a.n_units, ta: target(0), tb: target(1) }),
  order.length < body.units.length ? t("compare.more_units", { shown: order.length, n: body.units.length }) : ""),
  scaleLegend(colourBar((x) => signedRGB(x)), -top, top, a.method), rows);
}

function render(body) {
  const container = $("compare-result");
  const layers = $("compare-layer");
  fillSelect(layers, body.layer_match.all.map(([a, b]) => [a, t("compare.layer.n", { a, b })]), body.layer_match.pairs[0][0]);
  const [a, b] = body.layer_match.pairs[0];
  container.replaceChildren(
    body.same_model ? el("p", { className: "muted" }, t("compare.same_model")) : "",
    el("h3", {}, t("compare.h.tokens")), el("div", { className: "cf-pair", testid: "compare-sides" }, side(body, 0), side(body, 1)),
    el("h3", {}, t("compare.h.map", { a, b })), differenceMap(body),
    el("h3", {}, t("compare.h.heads")), heads(body),
    el("h3", {}, t("compare.h.attribution")), attribution(body));
  container.dataset.fingerprintB = body.model_b.fingerprint;
}

async function run(ctx) {
  if (!ctx.state.result) return;
  ctx.showError("");
  try {
    const text = ctx.state.text;
    const options = request();
    const body = await ctx.cached("compare-models", options, t("compare.job"),
      (id) => postJSON("/api/compare/models", { text, ...options, progress_id: id }), { progress: true });
    if (body) { shown = body; render(body); }
  } catch (error) {
    ctx.fail(error);
  } finally {
    count("comparisons");
  }
}

export default {
  id: "compare",
  get title() { return t("compare.title"); },
  testid: "compare",

  mount(root, ctx) {
    shown = null; // a new DOM: the next update draws the answer again
    const method = el("select", { id: "compare-method", testid: "compare-method" }, ...METHODS.map((m) => new Option(m, m)));
    const layer = el("select", { id: "compare-layer", testid: "compare-layer" }, new Option("−1", "-1"));
    const button = el("button", { type: "button", id: "compare-run", testid: "compare-run" }, t("compare.run"));
    root.append(
      el("p", { className: "legend" }, t("compare.legend")),
      el("div", { className: "actions cf-inputs" },
        el("label", {}, `${t("compare.model")} `, el("select", { id: "compare-model", testid: "compare-model-select" })),
        el("label", {}, `${t("compare.adapter")} `, el("input", { id: "compare-adapter", testid: "compare-adapter",
          placeholder: t("compare.adapter.placeholder"), spellcheck: false })),
        el("label", {}, `${t("compare.method")} `, method),
        el("label", {}, `${t("compare.layer")} `, layer), button),
      el("div", { id: "compare-result", testid: "compare-result" }));
    button.addEventListener("click", () => run(ctx));
    layer.addEventListener("change", () => { layerOfA = Number(layer.value); run(ctx); });
    fillModels(ctx).catch((error) => ctx.fail(error));
  },

  update(state, ctx) { // the answer for this model, text and options when there is one
    let body = null;
    try { body = ctx.peek("compare-models", request()); } catch (_) { /* the form is being built */ }
    if (body && body === shown) return;
    shown = body;
    if (body) render(body);
    else $("compare-result").replaceChildren(el("p", { className: "muted" }, t("compare.press")));
  },

  exportPNG() {
    return document.querySelector("[data-testid=compare-map-canvas]");
  },

  exportData() {
    return shown ? { name: "attnscope-compare-models.json", data: shown } : null;
  },
};
