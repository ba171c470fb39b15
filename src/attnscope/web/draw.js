// Canvas drawing: one pixel per matrix cell, scaled up by CSS; bounded element counts.
// Colours come from the one palette (palette.json), numbers from the one format (format.js).
import { el } from "./dom.js";
import { format, formatProb } from "./format.js";
import { ATTENTION, PALETTE, PREDICTION, attentionRGB, css, inkOnCss, readableInk } from "./palette.js";
import { ADAPT_MIN_KEYS, POOL_MAX_KEYS, clipLevel, poolKeys, poolNote } from "./contrast.js";

function paint(canvas, values, rows, cols, divisor) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const [r, g, b] = attentionRGB(values[i] / divisor);
    image.data[4 * i] = r; image.data[4 * i + 1] = g; image.data[4 * i + 2] = b; image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return ctx;
}

const maximum = (values) => { let max = 0; for (const v of values) if (v > max) max = v; return max; };

export const LABELLED_ROWS = 48; // maps with at most this many rows label each row with its token

// Returns the divisor used (1 for raw probabilities, the map's maximum when min–max scaled). The
// canvas holds only the cells' colours (the query row and the hovered cell are marked around it, in
// the DOM), so every pixel is the colour of its weight on the colour bar.
// adapt: at the raw scale, a map of at least ADAPT_MIN_KEYS keys is coloured up to the 99th percentile
// of its non-zero weights (the divisor; canvas.dataset.clip says so, empty when not clipped).
export function drawHeatmap(canvas, values, rows, cols, { scale = "raw", adapt = false } = {}) {
  canvas.width = cols;
  canvas.height = rows;
  const cssSize = Math.min(720, Math.max(240, cols * (rows <= LABELLED_ROWS ? 16 : 8)));
  canvas.style.width = `${cssSize}px`;
  canvas.style.height = `${Math.round((cssSize * rows) / cols)}px`;
  const max = maximum(values);
  let divisor = scale === "minmax" && max > 0 ? max : 1;
  const clip = scale === "raw" && adapt && cols >= ADAPT_MIN_KEYS ? clipLevel(values.filter((v) => v > 0)) : null;
  if (clip) divisor = clip.value;
  canvas.dataset.clip = clip ? String(clip.value) : "";
  paint(canvas, values, rows, cols, divisor);
  return divisor;
}

// divisor: the colour scale's top when the caller adapted it (a clipped scale, contrast.js)
export function drawGridRow(canvas, row, scale = "raw", divisor = null) {
  canvas.width = row.length;
  canvas.height = 1;
  const max = maximum(row);
  paint(canvas, row, 1, row.length, divisor ?? (scale === "minmax" && max > 0 ? max : 1));
}

// ---- tick labels that never touch -------------------------------------------------------------------
const NICE_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000];
const measurer = document.createElement("canvas").getContext("2d");

// The page's root font size in CSS pixels (tick sizes are given in rem).
export const remPx = () => parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;

// Width in CSS pixels of `text` in the page's font at `size` px.
export function textWidth(text, size) {
  measurer.font = `${size}px ${getComputedStyle(document.documentElement).fontFamily}`;
  return measurer.measureText(text).width;
}

// The smallest nice step (1, 2, 5, 10, ...) between labelled cells of `pitch` px such that labels
// `extent` px long stay at least `gap` px apart.
export function tickStep(pitch, extent, gap = 4) {
  const need = (extent + gap) / Math.max(pitch, 1e-6);
  return NICE_STEPS.find((s) => s >= need) ?? Math.ceil(need);
}

// Tick labels around a plot of rows x cols cells drawn at width x height CSS pixels: indexes thinned
// to a step at which they never touch; rows labelled with their token (rowLabel(r): a node) when
// every row has room for a label. `size`: the tick font size in rem (style.css: .plot .tick).
export function axisTicks(plot, { rows, cols, width, height, rowLabel = null, size = 0.72 }) {
  const px = size * remPx();
  const ticks = [];
  const xs = tickStep(width / cols, textWidth(String(cols - 1), px) + 2, 4);
  for (let c = 0; c < cols; c += xs) {
    ticks.push(el("span", { className: "tick x", style: { left: `${((c + 0.5) * width) / cols}px` } }, String(c)));
  }
  const ys = tickStep(height / rows, px * (rowLabel ? 1.3 : 1.1), 1);
  for (let r = 0; r < rows; r += ys) {
    const label = rowLabel && ys === 1 ? [`${r} `, rowLabel(r)] : [String(r)];
    ticks.push(el("span", { className: "tick y", dataset: { row: String(r) },
      style: { top: `${((r + 0.5) * height) / rows}px` } }, ...label));
  }
  plot.querySelectorAll(".tick").forEach((t) => t.remove());
  plot.append(...ticks);
  return { xs, ys };
}

const MAX_LINES = 256;

// Sizes a canvas to width × height CSS pixels at the screen's pixel density and returns its 2-D
// context, scaled so that drawing is in CSS pixels (setting the size clears the canvas).
export function sizeCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return context;
}

// The head view: lines from the query token to every key (thickness and opacity by weight), each key
// a cell in the palette's attention colour with its weight printed. Over POOL_MAX_KEYS keys, the keys
// are pooled into consecutive groups (summed weights) and a note says so. Returns the pooling or null.
export function drawLines(canvas, queryToken, keyTokens, weights) {
  const pooled = keyTokens.length > POOL_MAX_KEYS ? poolKeys(weights) : null;
  canvas.dataset.pooled = pooled ? String(pooled.size) : "";
  const rows = pooled ? pooled.groups : keyTokens.map((_, k) => ({ first: k, last: k, weight: weights[k] }));
  const rowHeight = 18;
  const top = pooled ? 30 : 10;
  const height = Math.max(60, rows.length * rowHeight + top + 10);
  const width = 680;
  const ctx = sizeCanvas(canvas, width, height);
  const ink = PALETTE.ink; // the theme's inks, read from the CSS variables now
  ctx.fillStyle = ink.background;
  ctx.fillRect(0, 0, width, height);
  ctx.font = "13px system-ui, 'Noto Sans CJK SC', sans-serif";
  ctx.textBaseline = "middle";
  if (pooled) {
    ctx.fillStyle = ink.muted;
    ctx.textAlign = "left";
    ctx.fillText(poolNote(keyTokens.length, pooled), 4, 12, width - 8);
  }
  const queryY = top + (rows.length * rowHeight) / 2;
  ctx.fillStyle = ink.text;
  ctx.textAlign = "right";
  ctx.fillText(JSON.stringify(queryToken.text), 150, queryY);
  const order = [...rows.keys()].sort((a, b) => rows[b].weight - rows[a].weight).slice(0, MAX_LINES);
  for (const k of order) {
    const y = top + k * rowHeight + rowHeight / 2;
    ctx.strokeStyle = css(ATTENTION, Math.min(1, 0.1 + rows[k].weight));
    ctx.lineWidth = Math.max(0.5, rows[k].weight * 12);
    ctx.beginPath();
    ctx.moveTo(158, queryY);
    ctx.bezierCurveTo(280, queryY, 280, y, 392, y);
    ctx.stroke();
  }
  rows.forEach((row, k) => {
    const y = top + k * rowHeight + rowHeight / 2;
    const fill = attentionRGB(Math.min(1, Math.max(0, row.weight)));
    ctx.fillStyle = css(fill);
    ctx.fillRect(398, y - rowHeight / 2 + 2, 190, rowHeight - 4);
    ctx.fillStyle = readableInk(fill); // black or white on the cell, whichever contrasts more
    ctx.textAlign = "left";
    const range = row.first === row.last ? String(row.first) : `${row.first}–${row.last}`;
    ctx.fillText(`${range} ${JSON.stringify(keyTokens[row.first].text)}`, 402, y, 182);
    ctx.fillStyle = ink.muted;
    ctx.fillText(`${format(row.weight)} (${formatProb(row.weight)})`, 596, y);
  });
  return pooled;
}

// The token view as an image (for PNG export): tokens wrapped into lines, backgrounds by colour.
// colours: per token {fill: css colour} ; prediction: {token, prob} or null
export function tokensToCanvas(tokens, fills, prediction) {
  const width = 1000, pad = 16, lineHeight = 34;
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = "20px system-ui, 'Noto Sans CJK SC', sans-serif";
  const boxes = [];
  let x = pad, y = pad;
  const place = (label, fill, textColour) => {
    const w = Math.max(6, measure.measureText(label).width + 2);
    if (x + w > width - pad) { x = pad; y += lineHeight; }
    boxes.push({ label, x, y, w, fill, textColour });
    x += w;
  };
  tokens.forEach((t, i) => place(t.text.replace(/\n/g, "↵"), fills[i], inkOnCss(fills[i]))); // black or white: WCAG ≥ 4.5
  if (prediction) { x += 8; place(`${prediction.token} ${formatProb(prediction.prob)}`, css(PREDICTION, 0.15), css(PREDICTION)); }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = y + lineHeight + pad;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = PALETTE.ink.background;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = measure.font;
  ctx.textBaseline = "top";
  for (const b of boxes) {
    ctx.fillStyle = b.fill;
    ctx.fillRect(b.x, b.y, b.w, lineHeight - 6);
    ctx.fillStyle = b.textColour;
    ctx.fillText(b.label, b.x + 1, b.y + 4);
  }
  return canvas;
}

// All layers x heads rows as one image (for PNG export of the grid view).
export function gridToCanvas(header, values, scale = "raw") {
  const [layers, heads, keys] = header.shape;
  const cellWidth = Math.max(48, Math.min(400, keys * 4)), cellHeight = 14, gap = 4, labelWidth = 40;
  const canvas = document.createElement("canvas");
  canvas.width = labelWidth + heads * (cellWidth + gap);
  canvas.height = 20 + layers * (cellHeight + gap);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = PALETTE.ink.background;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = PALETTE.ink.muted;
  for (let h = 0; h < heads; h++) ctx.fillText(`H${h}`, labelWidth + h * (cellWidth + gap), 12);
  const strip = document.createElement("canvas");
  for (let l = 0; l < layers; l++) {
    const y = 20 + l * (cellHeight + gap);
    ctx.fillStyle = PALETTE.ink.muted;
    ctx.fillText(`L${header.layers[l]}`, 2, y + 11);
    for (let h = 0; h < heads; h++) {
      drawGridRow(strip, values.subarray((l * heads + h) * keys, (l * heads + h + 1) * keys), scale);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(strip, labelWidth + h * (cellWidth + gap), y, cellWidth, cellHeight);
    }
  }
  return canvas;
}
