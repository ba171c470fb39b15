// Every layer × head row of the query token as thumbnails (rows over 2,048 keys arrive max-pooled);
// click one to select that layer and head.
import { getArray } from "../api.js";
import { $, el, scaleLegend } from "../dom.js";
import { drawGridRow, gridToCanvas } from "../draw.js";
import { attentionRGB, colourBar } from "../palette.js";

let grid = null; // {header, values, scale} shown, for the PNG export

export default {
  id: "grid",
  title: "All heads",

  mount(root) {
    root.append(
      el("p", { className: "legend" }, "Every layer (rows) × head (columns) for the selected query token: each " +
        "thumbnail is that head's attention over the key tokens, left to right. Click one to select it. ",
      el("span", { id: "grid-scale" })),
      el("div", { id: "head-grid", testid: "head-grid", className: "head-grid" }));
  },

  async update(state, ctx) {
    const r = state.result;
    const { header, values } = await getArray(`/api/traces/${r.trace_id}/grid?query=${r.attention.query}&stack=${r.attention.stack}`);
    if (state.result !== r) return;
    const [layers, heads, keys] = header.shape;
    const scale = state.display.scale;
    grid = { header, values, scale };
    $("grid-scale").replaceChildren(scaleLegend(colourBar(attentionRGB), 0, 1,
      scale === "minmax" ? "attention weight ÷ each thumbnail's maximum" : "attention weight"),
    header.pooled > 1 ? ` (rows max-pooled over ${header.pooled} keys)` : "");
    const box = $("head-grid");
    box.style.gridTemplateColumns = `repeat(${heads}, minmax(40px, 1fr))`;
    const figures = [];
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < heads; h++) {
        const canvas = document.createElement("canvas");
        drawGridRow(canvas, values.subarray((l * heads + h) * keys, (l * heads + h + 1) * keys), scale);
        const figure = el("figure", { testid: "grid-cell", dataset: { layer: String(header.layers[l]), head: String(h) } },
          canvas, el("figcaption", {}, `L${header.layers[l]} H${h}`));
        if (header.layers[l] === r.attention.layer && h === r.attention.head) figure.classList.add("selected");
        figure.addEventListener("click", () => ctx.selectHead(header.layers[l], h));
        figures.push(figure);
      }
    }
    box.replaceChildren(...figures);
  },

  exportPNG() {
    return grid ? gridToCanvas(grid.header, grid.values, grid.scale) : null;
  },
};
