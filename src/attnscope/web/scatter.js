// A 2-D scatter plot on one canvas (tens of thousands of points, no DOM per point): labelled axes with
// nice ticks, points as circles or squares, and the nearest point to the pointer for hover and click.
import { format } from "./format.js";
import { sizeCanvas } from "./draw.js";

const MARGIN = { left: 56, right: 12, top: 12, bottom: 44 };
const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

function niceTicks(low, high, count = 5) {
  const span = high - low || 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high + 1e-12; v += step) out.push(Math.abs(v) < step / 1e6 ? 0 : v);
  return out;
}

// Draws `points` ([[x, y]]) with `colour(i)` -> "rgb(...)" and `shape(i)` -> "circle" | "square".
// Returns the plot's mapping {left, top, width, height, xmin, xmax, ymin, ymax} (kept for hit tests).
export function drawScatter(canvas, points, { colour, shape = () => "circle", xTitle, yTitle, width = 720, height = 480, radius = 3 }) {
  const ctx = sizeCanvas(canvas, width, height);
  ctx.clearRect(0, 0, width, height);
  const range = (axis) => points.reduce(([lo, hi], p) => [Math.min(lo, p[axis]), Math.max(hi, p[axis])], [Infinity, -Infinity]);
  const pad = ([lo, hi]) => { const d = (hi - lo || Math.abs(hi) || 1) * 0.05; return [lo - d, hi + d]; };
  const [xmin, xmax] = pad(range(0));
  const [ymin, ymax] = pad(range(1));
  const plot = { left: MARGIN.left, top: MARGIN.top, width: width - MARGIN.left - MARGIN.right,
    height: height - MARGIN.top - MARGIN.bottom, xmin, xmax, ymin, ymax };
  const ink = css("--text", "#1f2328");
  const muted = css("--muted", "#6b7280");
  ctx.strokeStyle = css("--line", "#d0d7de");
  ctx.strokeRect(plot.left, plot.top, plot.width, plot.height);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = muted;
  ctx.textAlign = "center";
  for (const v of niceTicks(xmin, xmax)) {
    const [x] = toScreen(plot, [v, ymin]);
    ctx.fillText(format(v), x, plot.top + plot.height + 14);
  }
  ctx.textAlign = "right";
  for (const v of niceTicks(ymin, ymax)) {
    const [, y] = toScreen(plot, [xmin, v]);
    ctx.fillText(format(v), plot.left - 4, y + 4);
  }
  ctx.fillStyle = ink;
  ctx.textAlign = "center";
  ctx.fillText(xTitle, plot.left + plot.width / 2, height - 8);
  ctx.save();
  ctx.translate(14, plot.top + plot.height / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(yTitle, 0, 0);
  ctx.restore();
  ctx.globalAlpha = points.length > 5000 ? 0.6 : 0.9;
  points.forEach((point, i) => {
    const [x, y] = toScreen(plot, point);
    ctx.fillStyle = colour(i);
    if (shape(i) === "square") ctx.fillRect(x - radius, y - radius, 2 * radius, 2 * radius);
    else { ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI); ctx.fill(); }
  });
  ctx.globalAlpha = 1;
  return plot;
}

export function toScreen(plot, [x, y]) {
  return [plot.left + ((x - plot.xmin) / (plot.xmax - plot.xmin)) * plot.width,
    plot.top + (1 - (y - plot.ymin) / (plot.ymax - plot.ymin)) * plot.height];
}

// The index of the point nearest to the pointer (CSS pixels from the canvas' corner), within `reach` px.
export function nearest(plot, points, px, py, reach = 8) {
  let best = -1;
  let bestDistance = reach * reach;
  points.forEach((point, i) => {
    const [x, y] = toScreen(plot, point);
    const d = (x - px) ** 2 + (y - py) ** 2;
    if (d <= bestDistance) { best = i; bestDistance = d; }
  });
  return best;
}
