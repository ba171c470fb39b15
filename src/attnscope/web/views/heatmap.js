// The whole query × key map of the layer and head: one pixel per cell on a canvas, or, for maps over
// FULL_MATRIX_CELLS cells, drawn from tiles (zoom with the wheel, drag to pan). Hover for the weight,
// click a row to make it the query. The query row and the hovered cell are outlined around the
// canvas, never painted over it: every cell keeps the colour its weight has on the colour bar.
import { getArray, getJSON } from "../api.js";
import { $, el, scaleLegend, tokenChip } from "../dom.js";
import { LABELLED_ROWS, axisTicks, drawHeatmap } from "../draw.js";
import { CLIP_PERCENTILE, clipCaption } from "../contrast.js";
import { format } from "../format.js";
import { attentionRGB, colourBar } from "../palette.js";
import { TiledHeatmap } from "../tiles.js";
import { keyTokens, queryTokens } from "../weights.js";
import { t } from "../i18n.js";
import "../locales/views.js";

const FULL_MATRIX_CELLS = 512 * 512;
let map = null; // {rows, cols, values, result, divisor} of the full map shown
let tiled = null;
let hoverTimer = null;

function readout(result, row, col, value) {
  const box = $("heatmap-readout");
  box.replaceChildren(t("heatmap.readout", { row }), tokenChip(queryTokens(result)[row].text), t("heatmap.readout.key", { col }),
    tokenChip(keyTokens(result)[col].text), `: ${format(value)}`);
  box.dataset.value = String(value);
}

function colourScale(max, scaled, clip = null) { // clip: {percentile, value} of an adapted scale (contrast.js)
  $("heatmap-scale").replaceChildren(scaleLegend(colourBar(attentionRGB), 0, max,
    clip ? clipCaption(clip, "map") : scaled ? t("heatmap.scaled") : t("heatmap.raw")));
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
  $("heatmap-plot").querySelectorAll(".tick").forEach((tick) => tick.remove());
  $("heatmap-query").hidden = true; // the tiles draw the query row's lines themselves
  $("heatmap-hover").hidden = true;
  $("heatmap-plot").parentElement.style.setProperty("--left", "1rem");
  $("heatmap-plot").parentElement.classList.add("tiled"); // no row labels: the query row is a pair of lines
  colourScale(divisor, state.display.scale === "minmax");
  $("heatmap-mode").textContent = t("heatmap.tiles", { rows: pyramid.shape[0], cols: pyramid.shape[1], levels: pyramid.levels });
}

// An outline around rows [row, row + 1) and columns [col, col + span) of the small map, in CSS pixels
// of the plot (the canvas sits inside a 1 px border).
function place(box, row, col, span) {
  const canvas = $("heatmap");
  const width = parseFloat(canvas.style.width);
  const height = parseFloat(canvas.style.height);
  Object.assign(box.style, {
    left: `${1 + (col * width) / map.cols}px`, width: `${(span * width) / map.cols}px`,
    top: `${1 + (row * height) / map.rows}px`, height: `${height / map.rows}px`,
  });
  box.hidden = false;
}

function markQuery(query) {
  const box = $("heatmap-query");
  box.hidden = true;
  if (!map || query === null || query < 0 || query >= map.rows) return;
  place(box, query, 0, map.cols);
  box.dataset.row = String(query);
}

export default {
  id: "heatmap",
  get title() { return t("heatmap.title"); },

  mount(root, ctx) {
    if (tiled) tiled.close();
    tiled = null; // bound to the canvas of an earlier mount (a language switch mounts again)
    map = null;
    const canvas = el("canvas", { id: "heatmap", testid: "heatmap" });
    root.append(
      el("p", { className: "legend" }, t("heatmap.legend")),
      el("div", { className: "chart" },
        el("div", { className: "axis-title y" }, t("heatmap.y")),
        el("div", { className: "axis-title x" }, t("heatmap.x")),
        el("div", { className: "plot", id: "heatmap-plot" }, el("div", { className: "canvas-wrap" }, canvas),
          el("div", { className: "query-row", id: "heatmap-query", testid: "heatmap-query", hidden: true }),
          el("div", { className: "hover-cell", id: "heatmap-hover", hidden: true }))),
      el("p", { id: "heatmap-scale" }),
      el("p", { id: "heatmap-mode", className: "muted", testid: "heatmap-mode" }),
      el("p", { id: "heatmap-readout", className: "muted", testid: "heatmap-readout" }));
    canvas.addEventListener("mousemove", (event) => {
      const cell = cellAt(event);
      if (!cell) return;
      readout(map.result, cell.row, cell.col, cell.value);
      place($("heatmap-hover"), cell.row, cell.col, 1);
    });
    canvas.addEventListener("mouseleave", () => { $("heatmap-hover").hidden = true; });
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
    $("heatmap-hover").hidden = true;
    const { header, values } = await getArray(`/api/traces/${r.trace_id}/matrix?layer=${r.attention.layer}` +
      `&head=${r.attention.head}&stack=${r.attention.stack}&encoding=float16`);
    if (state.result !== r) return;
    map = { rows: header.shape[0], cols: header.shape[1], values, result: r };
    const canvas = $("heatmap");
    const divisor = drawHeatmap(canvas, values, map.rows, map.cols, { scale: state.display.scale, adapt: true });
    colourScale(divisor, state.display.scale === "minmax", canvas.dataset.clip ? { percentile: CLIP_PERCENTILE, value: divisor } : null);
    const plot = $("heatmap-plot");
    const labelled = map.rows <= LABELLED_ROWS;
    plot.parentElement.style.setProperty("--left", labelled ? "10rem" : "5rem");
    plot.parentElement.classList.remove("tiled");
    const query = r.attention.query;
    axisTicks(plot, {
      rows: map.rows, cols: map.cols, width: parseFloat(canvas.style.width), height: parseFloat(canvas.style.height),
      rowLabel: labelled ? (row) => tokenChip(queryTokens(r)[row].text) : null,
    });
    // the query row: outlined on the map, and its label marked beside the row axis
    let label = plot.querySelector(`.tick.y[data-row="${query}"]`);
    if (!label && query >= 0 && query < map.rows) {
      label = el("span", { className: "tick y", dataset: { row: String(query) },
        style: { top: `${((query + 0.5) * parseFloat(canvas.style.height)) / map.rows}px` } }, String(query));
      plot.querySelectorAll(".tick.y").forEach((t) => { // room for it: hide the thinned labels it would touch
        if (Math.abs(Number(t.dataset.row) - query) * (parseFloat(canvas.style.height) / map.rows) < 16) t.remove();
      });
      plot.append(label);
    }
    if (label) {
      label.classList.add("query");
      label.setAttribute("data-testid", "heatmap-query-label");
      label.prepend(el("span", { className: "query-mark" }, t("heatmap.query")), " ");
    }
    markQuery(query);
  },

  exportPNG() {
    return $("heatmap");
  },
};
