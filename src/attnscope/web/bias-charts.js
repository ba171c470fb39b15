// The Bias view's two charts, drawn on canvases from a bias answer (POST /api/bias):
// - drawGaps: one bar per pair (its log-probability gap, first − second variant), coloured by sign
//   in the palette's diverging colours, then the mean over pairs and each tag's mean with their
//   bootstrap intervals as error bars; a zero line, a labelled y axis, the pairs named below
//   (rotated; Chinese stacked upright; the full text on hover);
// - drawHeads: the mean difference of attention mass to a term (layers × heads) with a signed colour
//   bar, the top heads outlined, a hover read-out.
import { signedRGB } from "./counterfactual-map.js";
import { el, hideTip, scaleLegend, showTip, tokenChip } from "./dom.js";
import { remPx, textWidth, tickStep } from "./draw.js";
import { format, formatProb } from "./format.js";
import { NEGATIVE, PALETTE, POSITIVE, colourBar, colourWords, css } from "./palette.js";
import { interval, pairLabel, signed } from "./bias-summary.js";
import { t } from "./i18n.js";
import "./locales/bias.js";

const FONT = 12; // px: tick and pair labels
const FAMILY = "system-ui, -apple-system, 'Segoe UI', 'Noto Sans', 'Noto Sans CJK SC', sans-serif";
const PLOT_HEIGHT = 260;
const MAX_LABEL = 240; // px below the axis for the pairs' names (longer ones end in …)
const CJK = /[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/;
const ink = PALETTE.ink;

function niceStep(span, wanted = 5) {
  const raw = span / wanted;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
}

// A label as drawn: upright characters top to bottom when it has CJK characters, else rotated.
function labelShape(context, text) {
  const upright = CJK.test(text);
  const chars = Array.from(text);
  const extent = (s) => (upright ? Array.from(s).length * (FONT + 1) : context.measureText(s).width);
  let shown = text;
  if (extent(shown) > MAX_LABEL) {
    let kept = chars.length;
    while (kept > 1 && extent(`${chars.slice(0, kept).join("")}…`) > MAX_LABEL) kept -= 1;
    shown = `${chars.slice(0, kept).join("")}…`;
  }
  return { text: shown, upright, extent: extent(shown) };
}

function drawLabel(context, shape, x, y) {
  context.save();
  if (shape.upright) {
    context.textAlign = "center";
    context.textBaseline = "top";
    Array.from(shape.text).forEach((ch, k) => context.fillText(ch, x, y + k * (FONT + 1)));
  } else {
    context.translate(x, y);
    context.rotate(-Math.PI / 2);
    context.textAlign = "right";
    context.textBaseline = "middle";
    context.fillText(shape.text, 0, 0);
  }
  context.restore();
}

// The bars' items in drawing order: pairs, then (after a gap) the mean and the tags' means.
function items(body) {
  const { summary } = body;
  const pairs = body.pairs.map((pair, index) => ({ kind: "pair", index, label: pairLabel(pair), mean: pair.gap.logprob, pair }));
  const means = [{ kind: "mean", label: t("bias.mean_all"), ...summary.gap.logprob },
    ...Object.entries(summary.by_tag).map(([tag, group]) => ({ kind: "tag", tag, label: t("bias.tag", { tag }), ...group.gap.logprob }))];
  return [...pairs, null, ...means]; // null: the gap between the two groups
}

function tip(item, body) {
  const [first, second] = body.summary.order;
  if (item.kind !== "pair") {
    return [el("strong", {}, item.label), el("div", {}, t("bias.tip.mean", { mean: signed(item.mean),
      confidence: formatProb(body.summary.confidence), interval: interval(item), n: item.n }))];
  }
  const lines = item.pair.variants.map((v, k) => el("div", { className: "wrap" }, `${k ? second : first}: ${v.text}`,
    tokenChip(v.continuation), ` p = ${formatProb(v.prob)}, log p = ${format(v.logprob)}`));
  return [el("div", { className: "wrap" }, el("strong", {}, `pair ${item.pair.id}: `), item.pair.template), ...lines,
    el("div", {}, t("bias.tip.pair", { mean: signed(item.mean), first, share: formatProb(item.pair.gap.share) }) +
      (item.pair.tags.length ? t("bias.tip.tags", { tags: item.pair.tags.join(", ") }) : ""))];
}

export function drawGaps(container, body) {
  const all = items(body);
  const [first, second] = body.summary.order;
  const canvas = el("canvas", { className: "bias-canvas", testid: "bias-gaps" });
  const readout = el("p", { className: "readout", testid: "bias-gaps-readout" }, t("bias.hover_bar"));
  container.replaceChildren(el("p", { className: "legend" }, t("bias.gaps.legend", { ...colourWords(), first, second,
    confidence: formatProb(body.summary.confidence) })), canvas, readout);
  const width = Math.max(520, Math.min(container.clientWidth || 1100, 1160));
  const context = canvas.getContext("2d");
  context.font = `${FONT}px ${FAMILY}`;
  const shapes = all.map((item) => (item ? labelShape(context, item.label) : null));
  const below = Math.max(...shapes.filter(Boolean).map((s) => s.extent)) + 10;
  const whole = `Δ log p (${first} − ${second})`; // the y axis title: two lines when it is longer than the axis
  const title = context.measureText(whole).width > PLOT_HEIGHT - 8 ? ["Δ log p", `(${first} − ${second})`] : [whole];
  const margin = { left: 58 + 15 * title.length, right: 12, top: 14 };
  const height = margin.top + PLOT_HEIGHT + below;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  context.scale(ratio, ratio);
  context.font = `${FONT}px ${FAMILY}`;
  context.fillStyle = ink.background;
  context.fillRect(0, 0, width, height);
  // y range: every bar and interval end, and 0
  const values = [0, ...all.filter(Boolean).flatMap((item) => (item.kind === "pair" ? [item.mean] : [item.low, item.high, item.mean]))];
  let [lo, hi] = [Math.min(...values), Math.max(...values)];
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const step = niceStep(hi - lo);
  lo = Math.floor(lo / step - 0.05) * step;
  hi = Math.ceil(hi / step + 0.05) * step;
  const y = (v) => margin.top + ((hi - v) / (hi - lo)) * PLOT_HEIGHT;
  const plotWidth = width - margin.left - margin.right;
  const pitch = plotWidth / all.length;
  const xOf = (k) => margin.left + (k + 0.5) * pitch;
  // grid, ticks and the axis title
  context.textAlign = "right";
  context.textBaseline = "middle";
  for (let v = lo; v <= hi + step / 2; v += step) {
    const at = y(Math.abs(v) < step / 1e6 ? 0 : v);
    context.strokeStyle = ink.line;
    context.lineWidth = 1;
    context.beginPath(); context.moveTo(margin.left, at); context.lineTo(width - margin.right, at); context.stroke();
    context.fillStyle = ink.muted;
    context.fillText(signed(Math.abs(v) < step / 1e6 ? 0 : Number(v.toPrecision(12))), margin.left - 6, at);
  }
  context.save();
  context.translate(0, margin.top + PLOT_HEIGHT / 2);
  context.rotate(-Math.PI / 2);
  context.textAlign = "center";
  context.fillStyle = ink.text;
  title.forEach((line, k) => context.fillText(line, 0, 12 + k * (FONT + 3)));
  context.restore();
  // bars, error bars, separator and labels
  const barWidth = Math.max(3, Math.min(22, pitch * 0.7));
  all.forEach((item, k) => {
    const x = xOf(k);
    if (!item) {
      context.strokeStyle = ink.muted;
      context.setLineDash([3, 3]);
      context.beginPath(); context.moveTo(x, margin.top); context.lineTo(x, margin.top + PLOT_HEIGHT); context.stroke();
      context.setLineDash([]);
      return;
    }
    const colour = item.mean >= 0 ? POSITIVE : NEGATIVE;
    const summaryBar = item.kind !== "pair";
    context.fillStyle = css(colour, summaryBar ? 0.45 : 0.85);
    const top = Math.min(y(item.mean), y(0));
    context.fillRect(x - barWidth / 2, top, barWidth, Math.max(1, Math.abs(y(item.mean) - y(0))));
    if (summaryBar) {
      context.strokeStyle = css(colour);
      context.strokeRect(x - barWidth / 2, top, barWidth, Math.max(1, Math.abs(y(item.mean) - y(0))));
      context.strokeStyle = ink.text;
      context.lineWidth = 1.5;
      const cap = barWidth * 0.35;
      context.beginPath();
      context.moveTo(x, y(item.low)); context.lineTo(x, y(item.high));
      context.moveTo(x - cap, y(item.low)); context.lineTo(x + cap, y(item.low));
      context.moveTo(x - cap, y(item.high)); context.lineTo(x + cap, y(item.high));
      context.stroke();
      context.lineWidth = 1;
    }
    context.fillStyle = ink.text;
    context.font = `${summaryBar ? "600 " : ""}${FONT}px ${FAMILY}`;
    drawLabel(context, shapes[k], x, margin.top + PLOT_HEIGHT + 6);
  });
  context.font = `${FONT}px ${FAMILY}`;
  context.strokeStyle = ink.text;
  context.beginPath(); context.moveTo(margin.left, y(0)); context.lineTo(width - margin.right, y(0)); context.stroke();
  Object.assign(canvas.dataset, { bars: String(body.pairs.length), means: String(all.length - body.pairs.length - 1),
    low: String(lo), high: String(hi), left: String(margin.left), pitch: String(pitch) }); // CSS px: where bar k is
  const at = (event) => {
    const rect = canvas.getBoundingClientRect();
    const k = Math.floor((event.clientX - rect.left - margin.left) / pitch);
    return k >= 0 && k < all.length ? all[k] : null;
  };
  canvas.addEventListener("mousemove", (event) => {
    const item = at(event);
    if (!item) { hideTip(); return; }
    showTip(event, ...tip(item, body));
    readout.replaceChildren(...tip(item, body));
    Object.assign(readout.dataset, { kind: item.kind, index: String(item.index ?? ""), tag: item.tag ?? "", value: String(item.mean) });
  });
  canvas.addEventListener("mouseleave", hideTip);
  return canvas;
}

// ---- head × layer ------------------------------------------------------------------------------------
export function drawHeads(container, body, role, onHead) {
  const heads = body.summary.heads[role];
  const map = heads.mean_difference; // (layers, heads)
  const [first, second] = body.summary.order;
  const rows = map.length;
  const cols = rows ? map[0].length : 0;
  const top = Math.max(1e-12, ...map.flat().map(Math.abs));
  const cell = { w: Math.max(16, Math.min(40, Math.floor(360 / cols))), h: Math.max(12, Math.min(28, Math.floor(480 / rows))) };
  const canvas = el("canvas", { testid: "bias-heads", dataset: { role, layers: String(rows), heads: String(cols), maxAbs: String(top) } });
  canvas.width = cols;
  canvas.height = rows;
  canvas.style.width = `${cols * cell.w}px`;
  canvas.style.height = `${rows * cell.h}px`;
  const context = canvas.getContext("2d");
  const image = context.createImageData(cols, rows);
  map.flat().forEach((value, k) => image.data.set([...signedRGB(0.5 + value / (2 * top)), 255], 4 * k));
  context.putImageData(image, 0, 0);
  const px = 0.72 * remPx();
  const ys = tickStep(cell.h, px * 1.15, 1);
  const xs = tickStep(cell.w, textWidth(String(cols - 1), px) + 2, 4);
  const ticks = [];
  for (let c = 0; c < cols; c += xs) ticks.push(el("span", { className: "tick x", style: { left: `${(c + 0.5) * cell.w}px` } }, String(c)));
  for (let r = 0; r < rows; r += ys) {
    ticks.push(el("span", { className: "tick y", style: { top: `${(r + 0.5) * cell.h}px` } }, String(heads.layers[r])));
  }
  const marks = heads.top.map((h, rank) => el("span", { className: "bias-mark", title: `top ${rank + 1}`,
    style: { left: `${h.head * cell.w}px`, top: `${heads.layers.indexOf(h.layer) * cell.h}px`, width: `${cell.w}px`, height: `${cell.h}px` } }));
  const plot = el("div", { className: "plot bias-plot" }, canvas, ...ticks, ...marks);
  const readout = el("p", { className: "readout", testid: "bias-heads-readout" }, "hover a cell for its layer, head and value");
  canvas.addEventListener("mousemove", (event) => {
    const rect = canvas.getBoundingClientRect();
    const c = Math.floor(((event.clientX - rect.left) / rect.width) * cols);
    const r = Math.floor(((event.clientY - rect.top) / rect.height) * rows);
    if (r < 0 || c < 0 || r >= rows || c >= cols) return;
    readout.textContent = t("bias.heads.readout", { layer: heads.layers[r], head: c, value: signed(map[r][c]) });
    Object.assign(readout.dataset, { layer: String(heads.layers[r]), head: String(c), value: String(map[r][c]) });
  });
  const query = heads.queries.map((q) => t(q === "prediction" ? "bias.query.prediction" : "bias.query.continuation"))
    .join(t("bias.and"));
  const list = topHeads(heads, onHead);
  container.replaceChildren(
    el("p", { className: "legend" }, t("bias.heads.legend", { ...colourWords(), query, role, first, second, pairs: heads.pairs }),
    scaleLegend(colourBar(signedRGB), -top, top, t("bias.heads.bar", { first, second }))),
    el("div", { className: "bias-heads" },
      el("div", { className: "bias-map" }, el("div", { className: "axis-title" }, t("bias.heads.axes")), plot, readout),
      list));
  return canvas;
}

function topHeads(heads, onHead) {
  const rows = heads.top.map((h) => el("tr", { dataset: { layer: String(h.layer), head: String(h.head), mean: String(h.mean),
    low: String(h.low), high: String(h.high), excludesZero: String(h.excludes_zero) }, title: t("bias.top.title") },
  el("td", {}, String(h.layer)), el("td", {}, String(h.head)), el("td", {}, signed(h.mean)),
  el("td", {}, interval(h)), el("td", { className: h.excludes_zero ? "bias-yes" : "muted" }, h.excludes_zero ? t("bias.yes") : t("bias.no"))));
  const list = el("table", { className: "bias-table", testid: "bias-top-heads" },
    el("thead", {}, el("tr", {}, ...["bias.layer", "bias.head", "bias.mean_delta", "bias.interval", "bias.excludes"].map((h) => el("th", {}, t(h))))),
    el("tbody", {}, ...rows));
  rows.forEach((row, k) => row.addEventListener("click", () => {
    list.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
    row.classList.add("selected");
    onHead(heads.top[k].layer, heads.top[k].head);
  }));
  return el("div", { className: "bias-top" }, el("p", { className: "legend" }, t("bias.top")), list);
}
