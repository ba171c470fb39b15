// The Counterfactual view's difference map: attention of the counterfactual minus the original on the
// tokens they share (matched × matched, query rows × key columns), one pixel per cell on a canvas in
// the palette's diverging colours (red: more attention after the edit, teal: less), with token labels
// where they fit, indexes otherwise, a colour bar and a hover read-out. Maps over MAX_CELLS cells a
// side are pooled: each pixel is the block's value of largest magnitude (sign kept).
import { el, scaleLegend, tokenChip } from "./dom.js";
import { remPx, textWidth, tickStep } from "./draw.js";
import { format } from "./format.js";
import { NEGATIVE, POSITIVE, blend, colourBar } from "./palette.js";
import { t } from "./i18n.js";
import "./locales/counterfactual.js";

const MAX_CELLS = 512;
const LABELLED = 40; // maps with at most this many tokens label rows and columns with their tokens
const TICK_REM = 0.72; // style.css: .plot .tick

const fade = (rgb, t) => blend(rgb, t); // over the page background (white, or the dark theme's)
// t in [0, 1] -> the diverging colour of 2t − 1 (0: teal, ½: white, 1: red)
export const signedRGB = (t) => (t < 0.5 ? fade(NEGATIVE, 1 - 2 * t) : fade(POSITIVE, 2 * t - 1));

const characters = new WeakMap();
// A token as it appears in its text (its character span; Chinese included), line breaks as ↵.
export function tokenText(side, token) {
  if (!characters.has(side)) characters.set(side, Array.from(side.text));
  const chars = characters.get(side);
  const text = token.start === null || token.start === undefined ? token.text : chars.slice(token.start, token.end).join("");
  return text.replace(/\r?\n/g, "↵");
}

// (n, n) -> (m, m) blocks of `factor` cells, each its value of largest magnitude.
function pool(map, factor) {
  const n = map.length;
  const m = Math.ceil(n / factor);
  const out = new Float64Array(m * m);
  for (let r = 0; r < n; r++) {
    const row = map[r];
    const base = Math.floor(r / factor) * m;
    for (let c = 0; c < n; c++) {
      const k = base + Math.floor(c / factor);
      if (Math.abs(row[c]) > Math.abs(out[k])) out[k] = row[c];
    }
  }
  return { values: out, size: m };
}

function paint(canvas, values, size, top) {
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(size, size);
  for (let k = 0; k < size * size; k++) {
    const [r, g, b] = signedRGB(0.5 + values[k] / (2 * top));
    image.data.set([r, g, b, 255], 4 * k);
  }
  ctx.putImageData(image, 0, 0);
}

// Labels every `step` cells along one axis (the step thinned until they never touch).
function ticks(size, pitch, factor, axis, label) {
  const px = TICK_REM * remPx();
  const extent = axis === "x" ? textWidth(String((size - 1) * factor), px) + 2 : px * 1.2;
  const step = label ? 1 : tickStep(pitch, extent, axis === "x" ? 4 : 1);
  const out = [];
  for (let k = 0; k < size; k += step) {
    const where = axis === "x" ? { left: `${(k + 0.5) * pitch}px` } : { top: `${(k + 0.5) * pitch}px` };
    const text = label ? [`${k} `, tokenChip(label(k))] : [String(k * factor)];
    out.push(el("span", { className: `tick ${axis}${label && axis === "x" ? " cf-vertical" : ""}`, style: where }, ...text));
  }
  return out;
}

export function drawDifferenceMap(container, body) {
  const { map, tokens, max_abs: maxAbs } = body.difference;
  const n = map.length;
  if (!n) {
    container.replaceChildren(el("p", { className: "muted" }, t("cfmap.none")));
    return;
  }
  const factor = Math.ceil(n / MAX_CELLS);
  const { values, size } = factor > 1 ? pool(map, factor) : { values: Float64Array.from(map.flat()), size: n };
  const top = maxAbs > 0 ? maxAbs : 1;
  const canvas = el("canvas", { testid: "counterfactual-map-canvas", dataset: { size: String(size), factor: String(factor),
    maxAbs: String(maxAbs) } });
  paint(canvas, values, size, top);
  const labelled = n <= LABELLED;
  const side = body.counterfactual;
  const pairs = body.alignment.pairs;
  const shownToken = (k) => tokenText(side, side.tokens[pairs[k][1]]);
  const label = labelled ? shownToken : null;
  const width = Math.min(560, Math.max(240, size * (labelled ? 18 : 4)));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${width}px`;
  const pitch = width / size;
  const longest = labelled ? Math.max(...tokens.map((_, k) => textWidth(`${k} ${label(k)}`, TICK_REM * remPx()))) + 24 : 0;
  const readout = el("p", { className: "readout", testid: "counterfactual-map-readout" }, t("cfmap.hover"));
  const plot = el("div", { className: "plot cf-plot", style: { marginBottom: `${longest}px` } }, canvas,
    ...ticks(size, pitch, factor, "y", label), ...ticks(size, pitch, factor, "x", label));
  canvas.addEventListener("mousemove", (event) => {
    const rect = canvas.getBoundingClientRect();
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * size);
    const row = Math.floor(((event.clientY - rect.top) / rect.height) * size);
    if (row < 0 || col < 0 || row >= size || col >= size) return;
    const value = values[row * size + col];
    const name = (k) => (factor > 1 ? `${k * factor}–${Math.min(n, (k + 1) * factor) - 1}` : `${k} `);
    readout.replaceChildren(t("cfmap.query", { name: name(row) }), ...(factor > 1 ? [] : [tokenChip(shownToken(row))]),
      t("cfmap.key", { name: name(col) }), ...(factor > 1 ? [] : [tokenChip(shownToken(col))]),
      `: ${format(value)}${factor > 1 ? t("cfmap.block") : ""}`);
    readout.dataset.value = String(value);
  });
  const pooled = factor > 1 ? t("cfmap.pooled", { n, size, factor }) : "";
  container.replaceChildren(
    el("p", { className: "legend" }, t("cfmap.legend", { label: body.view.label, pooled }),
    scaleLegend(colourBar(signedRGB), -top, top, t("cfmap.bar"))),
    el("div", { className: `cf-map${labelled ? " labelled" : ""}`, style: { paddingLeft: `${labelled ? longest : 48}px` } },
      el("div", { className: "axis-title" }, t("cfmap.axes")), plot),
    readout);
}
