// Information flow as a Sankey (GET /api/traces/{id}/sankey; definitions in attnscope.analysis.sankey):
// columns are the layer boundaries from the input (left) to the output of the last layer (right), a node
// is a chosen token's share of the prediction at that boundary (its height), and a band between two
// columns is what that layer carries from one token to another (attention rollout: each node passes on
// exactly what it receives). The tokens not chosen are one grey "other" node per column.
import { ApiError, getJSON } from "../api.js";
import { $, count, el, tokenChip } from "../dom.js";
import { format, formatProb } from "../format.js";
import { strings, t } from "../i18n.js";
import { PALETTE, css, sequential } from "../palette.js";
import { sizeCanvas } from "../draw.js";

strings({
  en: {
    "sankey.title": "Flow",
    "sankey.legend": "How attention rollout carries the input tokens (left) through every layer to the prediction at the last position (right), with the heads of the head selector above. A node's height is the token's share of the prediction at that layer boundary; a band is what one layer passes from one token to another. Every node passes on exactly what it receives.",
    "sankey.top": "tokens with the most flow",
    "sankey.tokens": "also show tokens",
    "sankey.tokens.placeholder": "positions, e.g. 1,4",
    "sankey.residual": "residual share",
    "sankey.axis": "layer",
    "sankey.input": "input",
    "sankey.output": "output",
    "sankey.other": "other ({n} tokens)",
    "sankey.scale": "Height: share of the prediction; the bar at the right edge of the chart is {value}.",
    "sankey.summary": "Flow into position {query}{prediction}; {shown} of {tokens} tokens shown, {layers} layers, heads: {head}, residual share {residual}.",
    "sankey.predicts": " (predicts {token}, {prob})",
    "sankey.hover": "Hover a node or a band for its value.",
    "sankey.node": "at boundary {boundary} (after layer {layer}): {value} ({percent}) of the prediction",
    "sankey.node.input": "at the input: {value} ({percent}) of the prediction",
    "sankey.link": "layer {layer} carries {value} ({percent}) from",
    "sankey.to": "to",
    "sankey.share": "share at the input",
    "sankey.stack_note": " Cross-attention links two texts, so the flow follows the {stack} stack.",
  },
  "zh-CN": {
    "sankey.title": "信息流",
    "sankey.legend": "注意力展开（rollout）如何把输入词元（左）经过每一层传到最后一个位置的预测（右），注意力头按上方的选择合并。节点高度是该词元在这一层边界上占预测的份额；色带是某一层从一个词元传给另一个词元的量。每个节点传出的量恰好等于它收到的量。",
    "sankey.top": "流量最大的词元数",
    "sankey.tokens": "另外显示词元",
    "sankey.tokens.placeholder": "位置，例如 1,4",
    "sankey.residual": "残差份额",
    "sankey.axis": "层",
    "sankey.input": "输入",
    "sankey.output": "输出",
    "sankey.other": "其他（{n} 个词元）",
    "sankey.scale": "高度：占预测的份额；图右边缘的竖条为 {value}。",
    "sankey.summary": "流向位置 {query}{prediction}；显示 {tokens} 个词元中的 {shown} 个，共 {layers} 层，注意力头：{head}，残差份额 {residual}。",
    "sankey.predicts": "（预测 {token}，{prob}）",
    "sankey.hover": "悬停在节点或色带上可查看数值。",
    "sankey.node": "在第 {boundary} 个边界（第 {layer} 层之后）：占预测的 {value}（{percent}）",
    "sankey.node.input": "在输入处：占预测的 {value}（{percent}）",
    "sankey.link": "第 {layer} 层传递 {value}（{percent}），从",
    "sankey.to": "到",
    "sankey.share": "在输入处的份额",
    "sankey.stack_note": "交叉注意力连接两段文本，因此信息流沿{stack}计算。",
  },
});

const settings = { top: "5", tokens: "", residual: "0.5" }; // kept across mounts (language switch)
let shown = null; // {answer, address, geometry}
let current = null;
let ticket = 0; // the latest request: an older answer arriving late is dropped

const groupColour = (group, groups) => (group === groups - 1 ? PALETTE.ink.muted
  : css(sequential(groups > 2 ? group / (groups - 2) : 0.5)));

function address(r) {
  const params = new URLSearchParams({ head: r.attention.head, top: $("sankey-top").value, residual: $("sankey-residual").value });
  const tokens = $("sankey-tokens").value.replace(/\s+/g, "");
  if (tokens) params.set("tokens", tokens);
  // cross-attention (an encoder–decoder's default) has no flow: the decoder, whose last position predicts
  const stack = r.attention.stack === "cross" ? "decoder" : r.attention.stack;
  if (stack === "encoder" || stack === "decoder") params.set("stack", stack);
  return `/api/traces/${r.trace_id}/sankey?${params}`;
}

// Column x, node rectangles and band end points, in CSS pixels.
function geometry(answer, width) {
  const groups = answer.tokens.length + 1;
  const columns = answer.layers + 1;
  const left = 170;
  const right = 150;
  const top = 14;
  const scale = 260; // px for the whole prediction (a share of 1)
  const gap = 14; // px between nodes: room for a label beside each, however small its node
  const height = top + scale + gap * (groups - 1) + 44;
  const pitch = (width - left - right) / Math.max(columns - 1, 1);
  const nodeWidth = Math.max(3, Math.min(12, pitch * 0.35));
  const nodes = [];
  for (let b = 0; b < columns; b++) {
    let y = top;
    for (let g = 0; g < groups; g++) {
      const h = answer.values[b][g] * scale;
      nodes.push({ boundary: b, group: g, x: left + b * pitch - nodeWidth / 2, y, w: nodeWidth, h, value: answer.values[b][g] });
      y += h + gap;
    }
  }
  const node = (b, g) => nodes[b * groups + g];
  const bands = [];
  for (let layer = 0; layer < answer.layers; layer++) {
    const out = new Array(groups).fill(0); // px used on each node's right (below) and left (above) side
    const into = new Array(groups).fill(0);
    for (let below = 0; below < groups; below++) {
      for (let above = 0; above < groups; above++) {
        const value = answer.links[layer][above][below];
        if (!(value > 0)) continue;
        const h = value * scale;
        const from = node(layer, below);
        const to = node(layer + 1, above);
        bands.push({ layer, below, above, value, x0: from.x + from.w, y0: from.y + out[below], x1: to.x, y1: to.y + into[above], h });
        out[below] += h;
        into[above] += h;
      }
    }
  }
  return { width, height, left, top, scale, pitch, groups, columns, nodes, bands };
}

function draw(hover = null) {
  const canvas = $("sankey-canvas");
  if (!canvas || !shown) return;
  const { answer, geometry: geo } = shown;
  const g = sizeCanvas(canvas, geo.width, geo.height);
  g.fillStyle = PALETTE.ink.background;
  g.fillRect(0, 0, geo.width, geo.height);
  for (const band of geo.bands) {
    const lit = hover && (hover === band || (hover.group !== undefined && ((hover.boundary === band.layer && hover.group === band.below)
      || (hover.boundary === band.layer + 1 && hover.group === band.above))));
    g.globalAlpha = hover ? (lit ? 0.75 : 0.15) : 0.45;
    g.fillStyle = groupColour(band.below, geo.groups);
    const mid = (band.x0 + band.x1) / 2;
    g.beginPath();
    g.moveTo(band.x0, band.y0);
    g.bezierCurveTo(mid, band.y0, mid, band.y1, band.x1, band.y1);
    g.lineTo(band.x1, band.y1 + band.h);
    g.bezierCurveTo(mid, band.y1 + band.h, mid, band.y0 + band.h, band.x0, band.y0 + band.h);
    g.closePath();
    g.fill();
  }
  g.globalAlpha = 1;
  for (const node of geo.nodes) {
    if (node.h <= 0) continue;
    g.fillStyle = groupColour(node.group, geo.groups);
    g.fillRect(node.x, node.y, node.w, Math.max(node.h, 1));
  }
  g.font = "12px system-ui, 'Noto Sans CJK SC', sans-serif";
  g.textBaseline = "middle";
  g.fillStyle = PALETTE.ink.text;
  g.textAlign = "right";
  const names = groupNames(answer);
  let free = 0; // token labels beside the input column, at least 13 px apart
  for (let group = 0; group < geo.groups; group++) {
    const node = geo.nodes[group];
    const y = Math.max(node.y + node.h / 2, free);
    g.fillText(names[group], node.x - 6, y);
    free = y + 13;
  }
  g.textAlign = "left";
  const last = geo.nodes[(geo.columns - 1) * geo.groups + answer.tokens.findIndex((tok) => tok.index === answer.query)];
  if (last) {
    const predicted = answer.prediction ? ` → ${visible(answer.prediction.token)} (${formatProb(answer.prediction.prob)})` : "";
    g.fillText(`${names[geo.nodes.indexOf(last) % geo.groups]}${predicted}`, last.x + last.w + 6, last.y + last.h / 2);
  }
  // the axis: boundaries, with each layer's number between the columns it joins
  const axisY = geo.height - 26;
  g.strokeStyle = PALETTE.ink.line;
  g.lineWidth = 1;
  g.beginPath(); g.moveTo(geo.left, axisY); g.lineTo(geo.left + (geo.columns - 1) * geo.pitch, axisY); g.stroke();
  g.fillStyle = PALETTE.ink.muted;
  g.textAlign = "center";
  const step = Math.max(1, Math.ceil(28 / geo.pitch));
  for (let layer = 0; layer < answer.layers; layer += step) {
    g.fillText(String(layer), geo.left + (layer + 0.5) * geo.pitch, axisY + 9);
  }
  g.fillText(t("sankey.input"), geo.left, axisY + 21);
  g.fillText(t("sankey.output"), geo.left + (geo.columns - 1) * geo.pitch, axisY + 21);
  g.fillText(`${t("sankey.axis")} →`, geo.left + ((geo.columns - 1) * geo.pitch) / 2, axisY + 21);
  // the scale: a bar of a share of 1 (the whole prediction)
  g.fillStyle = PALETTE.ink.text;
  g.fillRect(geo.width - 8, geo.top, 3, geo.scale);
}

const visible = (text) => text.replace(/ /g, "␣").replace(/\t/g, "⇥").replace(/\r?\n/g, "↵") || "∅";

function groupNames(answer) {
  return [...answer.tokens.map((tok) => `${tok.index} ${visible(tok.text)}`), t("sankey.other", { n: answer.other })];
}

function hit(event) {
  const rect = $("sankey-canvas").getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  const geo = shown.geometry;
  const node = geo.nodes.find((n) => n.h > 0 && x >= n.x - 2 && x <= n.x + n.w + 2 && y >= n.y && y <= n.y + Math.max(n.h, 2));
  if (node) return node;
  return geo.bands.find((b) => {
    if (x < b.x0 || x > b.x1) return false;
    const f = (x - b.x0) / (b.x1 - b.x0);
    const s = f * f * (3 - 2 * f); // the bezier's vertical course, closely enough for hovering
    const yTop = b.y0 + (b.y1 - b.y0) * s;
    return y >= yTop && y <= yTop + Math.max(b.h, 2);
  }) || null;
}

function readout(item) {
  const box = $("sankey-readout");
  if (!item) { box.replaceChildren(t("sankey.hover")); delete box.dataset.value; return; }
  const { answer } = shown;
  const chip = (group) => (group < answer.tokens.length ? tokenChip(answer.tokens[group].text)
    : el("span", {}, t("sankey.other", { n: answer.other })));
  const index = (group) => (group < answer.tokens.length ? `${answer.tokens[group].index} ` : "");
  if (item.group !== undefined) {
    const words = item.boundary === 0
      ? t("sankey.node.input", { value: format(item.value), percent: formatProb(item.value) })
      : t("sankey.node", { boundary: item.boundary, layer: item.boundary - 1, value: format(item.value), percent: formatProb(item.value) });
    box.replaceChildren(index(item.group), chip(item.group), ` ${words}`);
  } else {
    box.replaceChildren(t("sankey.link", { layer: item.layer, value: format(item.value), percent: formatProb(item.value) }), " ",
      index(item.below), chip(item.below), ` ${t("sankey.to")} `, index(item.above), chip(item.above));
  }
  box.dataset.value = String(item.value);
}

function tokenLegend(answer, groups) {
  const items = [...answer.tokens.map((tok, group) => [group, tok]), [groups - 1, null]].map(([group, tok]) => {
    const swatch = el("span", { className: "swatch", style: { background: groupColour(group, groups) } });
    const share = answer.values[0][group];
    return el("li", { dataset: tok ? { index: String(tok.index), text: tok.text, share: String(share) } : { share: String(share) } },
      swatch, " ", tok ? `${tok.index} ` : "", tok ? tokenChip(tok.text) : t("sankey.other", { n: answer.other }),
      ` ${format(share)} (${formatProb(share)})`);
  });
  $("sankey-key").replaceChildren(el("span", { className: "muted" }, `${t("sankey.share")}:`),
    el("ul", { className: "sankey-tokens", testid: "sankey-tokens-legend" }, ...items),
    el("span", { className: "muted" }, t("sankey.scale", { value: `${format(1)} (${formatProb(1)})` })));
}

async function refresh() {
  if (!current) return;
  const r = current.result;
  const url = address(r);
  const error = $("sankey-error");
  const mine = ++ticket;
  let answer;
  try {
    answer = shown && shown.address === url ? shown.answer : await getJSON(url);
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    if (mine !== ticket) return;
    error.textContent = failure.message;
    error.hidden = false;
    count("sankeys");
    return;
  }
  if (mine !== ticket || current.result !== r || !$("sankey-canvas")) return;
  error.hidden = true;
  const width = Math.max(560, Math.min(1100, ($("view-sankey")?.clientWidth || 900) - 24));
  shown = { answer, address: url, geometry: geometry(answer, width) };
  const predicted = answer.prediction
    ? t("sankey.predicts", { token: visible(answer.prediction.token), prob: formatProb(answer.prediction.prob) }) : "";
  $("sankey-summary").textContent = t("sankey.summary", { query: answer.query, prediction: predicted,
    shown: answer.tokens.length, tokens: answer.n_tokens, layers: answer.layers, head: answer.view.head,
    residual: format(answer.view.residual) }) + (answer.view.stack !== r.attention.stack
    ? t("sankey.stack_note", { stack: t(`shell.stack.${answer.view.stack}`) }) : "");
  $("sankey-canvas").dataset.groups = JSON.stringify(groupNames(answer));
  $("sankey-canvas").dataset.address = url;
  tokenLegend(answer, shown.geometry.groups);
  readout(null);
  draw();
  count("sankeys");
}

export default {
  id: "sankey",
  testid: "flow-sankey",
  get title() { return t("sankey.title"); },

  mount(root) {
    const top = el("input", { id: "sankey-top", type: "number", min: "0", max: "20", step: "1", value: settings.top });
    top.setAttribute("data-testid", "sankey-top");
    const tokens = el("input", { id: "sankey-tokens", value: settings.tokens, placeholder: t("sankey.tokens.placeholder"), size: 12 });
    tokens.setAttribute("data-testid", "sankey-tokens");
    const residual = el("input", { id: "sankey-residual", type: "number", min: "0", max: "1", step: "0.05", value: settings.residual });
    residual.setAttribute("data-testid", "sankey-residual");
    const canvas = el("canvas", { id: "sankey-canvas", testid: "sankey-canvas" });
    root.append(
      el("p", { className: "legend" }, t("sankey.legend")),
      el("div", { className: "actions" },
        el("label", {}, `${t("sankey.top")} `, top),
        el("label", {}, `${t("sankey.tokens")} `, tokens),
        el("label", {}, `${t("sankey.residual")} `, residual)),
      el("p", { id: "sankey-summary", testid: "sankey-summary", className: "muted" }),
      el("p", { id: "sankey-error", testid: "sankey-error", className: "error", hidden: true }),
      el("div", { className: "canvas-wrap" }, canvas),
      el("div", { id: "sankey-key", testid: "sankey-legend", className: "legend" }),
      el("p", { id: "sankey-readout", testid: "sankey-readout", className: "muted" }));
    for (const input of [top, tokens, residual]) {
      input.addEventListener("change", () => {
        Object.assign(settings, { top: top.value, tokens: tokens.value, residual: residual.value });
        refresh();
      });
    }
    canvas.addEventListener("mousemove", (event) => {
      if (!shown) return;
      const item = hit(event);
      readout(item);
      draw(item);
    });
    canvas.addEventListener("mouseleave", () => { readout(null); draw(); });
    current = null;
  },

  async update(state) {
    current = state;
    await refresh();
  },

  exportPNG() {
    return $("sankey-canvas");
  },

  exportData() {
    return shown ? { name: "flow-sankey.json", data: shown.answer } : null;
  },
};
