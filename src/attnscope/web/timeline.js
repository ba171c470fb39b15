// Canvas charts of a generation's timeline: marks over the steps, the step diff over key positions,
// and the trajectory of attention's centre of mass. Each chart draws its own labelled axes; sizes
// follow the element's CSS width and the device's pixel ratio, so text stays legible.
import { NEGATIVE, PALETTE, POSITIVE, blend, css, onColours } from "./palette.js";
import { t } from "./i18n.js";
import "./locales/generation.js";

const FONT = 11; // CSS px of axis text
export const THUMB = 16; // CSS px of a range input's thumb (Chromium): its centre runs THUMB/2 from each end
const INK = () => PALETTE.ink.text;

const strip = document.createElement("canvas"); // the step diff's cells, one pixel each
strip.height = 1;
let fontFamily = null; // read once: reading computed style every frame forces a style recalculation

// The canvas at its CSS width × height, cleared, with the device's pixel ratio (resized only when
// its size changed: a resize reallocates the bitmap).
function sized(canvas, height) {
  const width = Math.max(200, canvas.clientWidth || canvas.parentElement.clientWidth || 600);
  const ratio = window.devicePixelRatio || 1;
  const pixels = [Math.round(width * ratio), Math.round(height * ratio)];
  if (canvas.width !== pixels[0] || canvas.height !== pixels[1]) {
    [canvas.width, canvas.height] = pixels;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  fontFamily = fontFamily || getComputedStyle(document.documentElement).fontFamily;
  ctx.font = `${FONT}px ${fontFamily}`;
  ctx.textBaseline = "middle";
  return { ctx, width, height };
}

function niceStep(span, room) {
  const raw = span / Math.max(1, room);
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  for (const f of [1, 2, 5, 10]) if (f * power >= raw) return Math.max(1, f * power);
  return Math.max(1, 10 * power);
}

// x axis ticks for integer values lo…hi mapped onto [x0, x1] at height y, with a caption.
function xAxis(ctx, lo, hi, x0, x1, y, caption) {
  ctx.fillStyle = INK();
  ctx.strokeStyle = INK();
  ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x1, y); ctx.stroke();
  const step = niceStep(hi - lo, (x1 - x0) / 48);
  ctx.textAlign = "center";
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
    const x = x0 + ((v - lo) / Math.max(1, hi - lo)) * (x1 - x0);
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x, y + 3); ctx.stroke();
    ctx.fillText(String(v), x, y + 9);
  }
  ctx.textAlign = "right";
  ctx.fillText(caption, x1, y + 21);
}

// A y-axis caption, rotated, centred at (x, y).
function yCaption(ctx, text, x, y) {
  ctx.save();
  ctx.translate(x, y);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(text, 0, 0);
  ctx.restore();
}

// A chart's parts that do not change with the step shown, drawn once into an offscreen canvas and
// copied onto the chart each frame: scrubbing redraws only the current step's marker. `inputs` are
// the arrays and numbers the parts are drawn from (compared by identity); a theme or palette change
// (a new `colours` count) paints every backdrop again.
export function backdrop(canvas, height, inputs, paint) {
  const { ctx, width } = sized(canvas, height);
  const kept = backdrops.get(canvas);
  const same = kept && kept.colours === colours && kept.width === canvas.width && kept.height === canvas.height &&
    kept.inputs.length === inputs.length && kept.inputs.every((v, i) => v === inputs[i]);
  if (!same) {
    const image = document.createElement("canvas");
    [image.width, image.height] = [canvas.width, canvas.height];
    const off = image.getContext("2d");
    off.setTransform(ctx.getTransform());
    off.font = ctx.font;
    off.textBaseline = ctx.textBaseline;
    paint(off, width, height);
    backdrops.set(canvas, { colours, width: canvas.width, height: canvas.height, inputs, image });
  }
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(backdrops.get(canvas).image, 0, 0);
  ctx.restore();
  return { ctx, width, height };
}
const backdrops = new WeakMap(); // canvas -> {colours, width, height, inputs, image}
let colours = 0; // theme and palette changes so far: backdrops painted before one are stale
onColours(() => { colours += 1; });

// Ticks over the steps: key frames (the text ink), loops (positive), a marked span below its level (negative) and,
// for beam search, where the best beam continued another beam (blue).
// The canvas sits under the range input, as wide: step s is where the range's thumb centre is.
export function drawMarks(canvas, steps, { keyFrames, loops, faded, branches = [], current }) {
  const along = (width) => (s) => THUMB / 2 + (s / Math.max(1, steps - 1)) * (width - THUMB);
  const { ctx, width } = backdrop(canvas, 44, [steps, keyFrames, loops, faded, branches], (ctx, width) => {
    const at = along(width);
    const lane = (marks, y, colour) => {
      ctx.fillStyle = colour;
      for (const s of marks) ctx.fillRect(Math.round(at(s)) - 1, y, 2, 6);
    };
    lane(keyFrames, 0, INK());
    lane(loops, 7, css(POSITIVE));
    lane(faded, 14, css(NEGATIVE));
    lane(branches, 21, css(PALETTE.prediction.rgb));
    ctx.fillStyle = INK();
    ctx.textAlign = "center";
    const every = niceStep(Math.max(1, steps - 1), (width - THUMB) / 40);
    for (let s = 0; s < steps; s += every) ctx.fillText(String(s), at(s), 37); // step numbers
  });
  ctx.fillStyle = INK();
  ctx.fillRect(Math.round(along(width)(current)) - 1, 0, 2, 28);
}

// A diverging strip over key positions 0…n-1: positive where the later step attends more, negative less,
// colour = |difference| ÷ the largest |difference| (the colour bar says the raw range).
export function drawDiff(canvas, diff, n) {
  const { ctx, width } = sized(canvas, 64);
  canvas.dataset.keys = String(n);
  const x0 = 8;
  const x1 = width - 8;
  let top = 0;
  for (let i = 0; i < n; i++) top = Math.max(top, Math.abs(diff[i]));
  const cell = (x1 - x0) / Math.max(1, n);
  const image = new ImageData(Math.max(1, n), 1); // one pixel per key position, scaled: one draw call
  for (let i = 0; i < n; i++) {
    const t = top > 0 ? Math.abs(diff[i]) / top : 0;
    const rgb = diff[i] >= 0 ? POSITIVE : NEGATIVE;
    image.data.set(blend(rgb, t), 4 * i); // over the page background
    image.data[4 * i + 3] = 255;
  }
  strip.width = image.width;
  strip.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(strip, x0, 0, x1 - x0, 24);
  ctx.strokeStyle = INK();
  ctx.strokeRect(x0, 0, x1 - x0, 24);
  xAxis(ctx, 0, Math.max(0, n - 1), x0 + cell / 2, x1 - cell / 2, 26, t("timeline.key_position"));
  return top;
}

// Centre of mass of each step's row (y: key position) against the step (x), with the query
// position p - 1 as a dashed reference (positions: null for cross-attention rows over `keys` encoder
// tokens) and the current step marked.
export function drawTrajectory(canvas, centres, positions, current, keys) {
  const steps = centres.length;
  const maxY = Math.max(1, ...(positions || [keys - 1]));
  const [left, top] = [44, 8];
  const { ctx, width, height } = backdrop(canvas, 150, [centres, positions, keys], (ctx, width, height) => {
    const [right, bottom] = [width - 10, height - 34];
    const x = (s) => left + (s / Math.max(1, steps - 1)) * (right - left);
    const y = (v) => bottom - (v / maxY) * (bottom - top);
    ctx.strokeStyle = INK();
    ctx.fillStyle = INK();
    ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, bottom); ctx.stroke();
    ctx.textAlign = "right";
    const stepY = niceStep(maxY, (bottom - top) / 22);
    for (let v = 0; v <= maxY; v += stepY) {
      ctx.beginPath(); ctx.moveTo(left - 3, y(v)); ctx.lineTo(left, y(v)); ctx.stroke();
      ctx.fillText(String(v), left - 5, y(v));
    }
    yCaption(ctx, t("timeline.key_position"), 10, (top + bottom) / 2);
    xAxis(ctx, 0, Math.max(0, steps - 1), left, right, bottom, t("timeline.step"));
    if (positions) {
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = PALETTE.ink.muted || INK();
      ctx.beginPath();
      positions.forEach((p, s) => (s ? ctx.lineTo(x(s), y(p - 1)) : ctx.moveTo(x(s), y(p - 1))));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.strokeStyle = css(POSITIVE);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    centres.forEach((c, s) => (s ? ctx.lineTo(x(s), y(c)) : ctx.moveTo(x(s), y(c))));
    ctx.stroke();
  });
  const [right, bottom] = [width - 10, height - 34];
  ctx.fillStyle = css(POSITIVE);
  ctx.beginPath();
  ctx.arc(left + (current / Math.max(1, steps - 1)) * (right - left),
    bottom - ((centres[current] || 0) / maxY) * (bottom - top), 3.5, 0, 2 * Math.PI);
  ctx.fill();
}

// The per-step attribution matrix: generated steps (rows) × key positions (columns), one cell per
// score. matrixCells paints the cells once into an offscreen canvas (signed methods: the positive
// and negative colours; others: the attention colour; strength = |score| ÷ scale); drawMatrix scales it
// into a plot area with labelled axes and returns the geometry for hover read-outs.
export function matrixCells(rows, width, { signed, scale }) {
  const image = new ImageData(Math.max(1, width), Math.max(1, rows.length));
  rows.forEach((row, s) => {
    for (let k = 0; k < width; k++) {
      const value = k < row.length && row[k] !== null ? row[k] : 0;
      const t = scale > 0 ? Math.min(1, Math.abs(value) / scale) : 0;
      const rgb = signed && value < 0 ? NEGATIVE : POSITIVE;
      const at = 4 * (s * width + k);
      image.data.set(blend(rgb, t), at);
      image.data[at + 3] = 255;
    }
  });
  const cells = document.createElement("canvas");
  cells.width = image.width;
  cells.height = image.height;
  cells.getContext("2d").putImageData(image, 0, 0);
  return cells;
}

export function drawMatrix(canvas, cells, { labels, current }) {
  const steps = cells.height;
  const width = cells.width;
  const height = Math.max(120, Math.min(420, steps * 14 + 40));
  const { ctx, width: cssWidth } = sized(canvas, height);
  const left = 72;
  const right = cssWidth - 10;
  const top = 6;
  const bottom = height - 30;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(cells, left, top, right - left, bottom - top);
  ctx.strokeStyle = INK();
  ctx.strokeRect(left, top, right - left, bottom - top);
  const cell = (right - left) / Math.max(1, width);
  xAxis(ctx, 0, Math.max(0, width - 1), left + cell / 2, right - cell / 2, bottom, t("timeline.key_position_all"));
  ctx.fillStyle = INK();
  ctx.textAlign = "right";
  const pitch = (bottom - top) / Math.max(1, steps);
  const every = Math.max(1, Math.ceil((FONT * 1.2) / pitch));
  for (let s = 0; s < steps; s += every) {
    const text = labels && pitch >= FONT ? labels[s] : String(s);
    ctx.fillText(text.length > 10 ? `${text.slice(0, 9)}…` : text, left - 4, top + (s + 0.5) * pitch);
  }
  yCaption(ctx, t("timeline.generated_step"), 9, (top + bottom) / 2);
  ctx.strokeStyle = `rgb(${PALETTE.prediction.rgb.join(",")})`; // the step shown
  ctx.strokeRect(left, top + current * pitch, right - left, Math.max(1, pitch));
  return { left, right, top, bottom, steps, width };
}
