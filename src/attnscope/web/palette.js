// The one palette of the page, read from palette.json (the HTML report reads the same file through
// attnscope.render.palette). Importing this module also sets the CSS colour variables of style.css.

export const PALETTE = await (await fetch(new URL("./palette.json", import.meta.url))).json();

export const ATTENTION = PALETTE.attention.rgb;
export const POSITIVE = PALETTE.diverging.positive;
export const NEGATIVE = PALETTE.diverging.negative;
export const PREDICTION = PALETTE.prediction.rgb;
export const STOPS = PALETTE.sequential.stops;
export const LABELS = PALETTE.labels;

const clamp01 = (t) => Math.min(1, Math.max(0, t));

// Sequential colormap (head metrics): t in [0, 1] -> [r, g, b], linear between the stops.
export function sequential(t) {
  const x = clamp01(t) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f));
}

// Attention weight w in [0, 1] -> [r, g, b] on white (the heatmap's one pixel per cell).
export function attentionRGB(weight) {
  const v = clamp01(weight);
  return ATTENTION.map((c) => Math.round(255 - (255 - c) * v));
}

// A score on white: red positive, teal negative, opacity |value| / scale (display scaling only).
// The same string as attnscope.render.palette.colour(value, scale).
export function scoreColour(value, scale) {
  if (value === null || value === undefined || !Number.isFinite(value) || !(scale > 0)) return "transparent";
  const [r, g, b] = value >= 0 ? POSITIVE : NEGATIVE;
  return `rgba(${r},${g},${b},${Math.min(1, Math.abs(value) / scale).toFixed(3)})`;
}

export const css = (rgb, alpha = 1) => `rgba(${rgb.join(",")},${alpha})`;

// Text colour readable on a colour drawn at `alpha` over white.
export const inkOnAlpha = (alpha) => (alpha > 0.55 ? "#ffffff" : PALETTE.ink.text);

// Text colour readable on a label colour (dark on light, white on dark).
export function inkOn(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? PALETTE.ink.text : "#ffffff";
}

// A horizontal colour bar: `colourAt(t)` for t from 0 (left) to 1 (right), drawn on a canvas.
export function colourBar(colourAt, width = 160, height = 10) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = 1;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.className = "colour-bar";
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, 1);
  for (let x = 0; x < width; x++) {
    const [r, g, b] = colourAt(x / (width - 1));
    image.data.set([r, g, b, 255], 4 * x);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

const root = document.documentElement.style;
root.setProperty("--attention", ATTENTION.join(", "));
root.setProperty("--positive", POSITIVE.join(", "));
root.setProperty("--negative", NEGATIVE.join(", "));
root.setProperty("--prediction", PREDICTION.join(", "));
for (const [name, value] of Object.entries(PALETTE.ink)) root.setProperty(`--${name}`, value);
for (const [name, rgb] of Object.entries(PALETTE.severity)) if (Array.isArray(rgb)) root.setProperty(`--severity-${name}`, rgb.join(", "));
