// The whole query × key map of the layer and head: one pixel per cell on a canvas, or, for maps over
// FULL_MATRIX_CELLS cells, drawn from tiles (zoom with the wheel, drag to pan). Hover for the weight,
// click a row to make it the query.
import { getArray, getJSON } from "../api.js";
import { $, el, quoted, scaleLegend } from "../dom.js";
import { axisTicks, drawHeatmap } from "../draw.js";
import { format } from "../format.js";
import { attentionRGB, colourBar } from "../palette.js";
import { TiledHeatmap } from "../tiles.js";
import { keyTokens, queryTokens } from "../weights.js";

const FULL_MATRIX_CELLS = 512 * 512;
let map = null; // {rows, cols, values, result, divisor} of the full map shown
let tiled = null;
let hoverTimer = null;

function readout(result, row, col, value) {
  const box = $("heatmap-readout");
  box.textContent = `query ${row} ${quoted(queryTokens(result)[row].text)} → key ${col} ` +
    `${quoted(keyTokens(result)[col].text)}: ${format(value)}`;
  box.dataset.value = String(value);
}

function colourScale(max, scaled) {
  $("heatmap-scale").replaceChildren(scaleLegend(colourBar(attentionRGB), "0", format(max),
    scaled ? "attention weight (colour scaled to the map's maximum)" : "attention weight (raw probability)"));
}

function cellAt(event) {
  const canvas = $("heatmap");
  const rect = canvas.getBoundingClientRect();
  if (!map) return null;
  const col = Math.floor(((event.clientX - rect.left) / rect.width) * map.cols);
  const row = Math.floor(((event.clientY - rect.top) / rect.height) * map.rows);
  if (row < 0 || col < 0 || row >= map.rows || col >= map.cols) return null;
  return { row, col, value: map.values[row * map.cols + col] };
}

async function drawTiled(state, ctx, width) {
  const r = state.result;
  map = null;
  if (!tiled) {
    tiled = new TiledHeatmap($("heatmap"), {
      onHover: (cell) => {
        clearTimeout(hoverTimer);
        hoverTimer = setTimeout(async () => {
          const shown = state.result;
          const { values } = await getArray(`/api/traces/${shown.trace_id}/row?layer=${shown.attention.layer}` +
            `&head=${shown.attention.head}&query=${cell.row}&stack=${shown.attention.stack}`);
          readout(shown, cell.row, cell.col, values[cell.col]);
        }, 60);
      },
      onClick: (cell) => ctx.setQuery(cell.row),
    });
  }
  const params = `layer=${r.attention.layer}&head=${r.attention.head}&stack=${r.attention.stack}`;
  const pyramid = await getJSON(`/api/traces/${r.trace_id}/pyramid?${params}`);
  if (state.result !== r) return;
  const divisor = state.display.scale === "minmax" ? pyramid.max : 1;
  const height = Math.max(240, Math.min(Math.round(width * 0.8), Math.round(window.innerHeight * 0.7))); // fits the screen
  tiled.open({ base: `/api/traces/${r.trace_id}/tile?${params}`, pyramid, divisor, query: r.attention.query, width, height });
  $("heatmap-plot").querySelectorAll(".tick").forEach((t) => t.remove());
  $("heatmap-plot").parentElement.style.setProperty("--left", "1rem");
  colourScale(divisor, state.display.scale === "minmax");
  $("heatmap-mode").textContent = `${pyramid.shape[0]} × ${pyramid.shape[1]} map in ${pyramid.levels} zoom levels ` +
    "of 256 × 256 tiles (coarser levels show the maximum of each block). Scroll to zoom, drag to pan.";
}

function redraw(highlight = null) {
  const r = map.result;
  return drawHeatmap($("heatmap"), map.values, map.rows, map.cols,
    { scale: map.scale, query: r.attention.query, highlight });
}

export default {
  id: "heatmap",
  title: "Heatmap",

  mount(root, ctx) {
    const canvas = el("canvas", { id: "heatmap", testid: "heatmap" });
    root.append(
      el("p", { className: "legend" }, "Query tokens (rows) × key tokens (columns) of the layer and head above; " +
        "hover for the exact weight, click to make a row the query."),
      el("div", { className: "chart" },
        el("div", { className: "axis-title x" }, "key token →"),
        el("div", { className: "plot", id: "heatmap-plot" }, el("div", { className: "canvas-wrap" }, canvas)),
        el("div", { className: "axis-title y" }, "↑ query token")),
      el("p", { id: "heatmap-scale" }),
      el("p", { id: "heatmap-mode", className: "muted", testid: "heatmap-mode" }),
      el("p", { id: "heatmap-readout", className: "muted", testid: "heatmap-readout" }));
    canvas.addEventListener("mousemove", (event) => {
      const cell = cellAt(event);
      if (!cell) return;
      readout(map.result, cell.row, cell.col, cell.value);
      redraw(cell);
    });
    canvas.addEventListener("click", (event) => {
      const cell = cellAt(event);
      if (cell) ctx.setQuery(cell.row);
    });
  },

  async update(state, ctx) {
    const r = state.result;
    const rows = queryTokens(r).length;
    const cols = keyTokens(r).length;
    if (rows * cols > FULL_MATRIX_CELLS) {
      await drawTiled(state, ctx, Math.max(320, $("view-heatmap").clientWidth - 40));
      return;
    }
    if (tiled) tiled.close();
    $("heatmap-mode").textContent = "";
    const { header, values } = await getArray(`/api/traces/${r.trace_id}/matrix?layer=${r.attention.layer}` +
      `&head=${r.attention.head}&stack=${r.attention.stack}&encoding=float16`);
    if (state.result !== r) return;
    map = { rows: header.shape[0], cols: header.shape[1], values, result: r, scale: state.display.scale };
    const divisor = redraw();
    colourScale(divisor, state.display.scale === "minmax");
    const canvas = $("heatmap");
    const plot = $("heatmap-plot");
    const labelled = map.rows <= 48;
    plot.parentElement.style.setProperty("--left", labelled ? "9rem" : "3rem");
    axisTicks(plot, {
      rows: map.rows, cols: map.cols, width: parseFloat(canvas.style.width), height: parseFloat(canvas.style.height),
      rowLabel: labelled ? (row) => quoted(queryTokens(r)[row].text) : null,
    });
  },

  exportPNG() {
    return $("heatmap");
  },
};
