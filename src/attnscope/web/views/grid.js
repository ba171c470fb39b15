// Every layer × head row of the query token as thumbnails (rows over 2,048 keys arrive max-pooled);
// click one to select that layer and head.
import { getArray } from "../api.js";
import { $, el, scaleLegend } from "../dom.js";
import { drawGridRow, gridToCanvas } from "../draw.js";
import { attentionRGB, colourBar } from "../palette.js";
import { ADAPT_MIN_KEYS, clipCaption, clipLevel } from "../contrast.js";
import { t } from "../i18n.js";
import "../locales/views.js";

let grid = null; // {header, values, scale} shown, for the PNG export

export default {
  id: "grid",
  get title() { return t("grid.title"); },

  mount(root) {
    root.append(
      el("p", { className: "legend" }, t("grid.legend"),
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
    // a long input at the raw scale: colours up to the 99th percentile of the non-zero weights (contrast.js)
    const clip = scale === "raw" && keys >= ADAPT_MIN_KEYS ? clipLevel(values.filter((v) => v > 0)) : null;
    $("grid-scale").replaceChildren(scaleLegend(colourBar(attentionRGB), 0, clip ? clip.value : 1,
      clip ? clipCaption(clip, "grid") : scale === "minmax" ? t("grid.scaled") : t("grid.weight")),
    header.pooled > 1 ? t("grid.pooled", { n: header.pooled }) : "");
    const box = $("head-grid");
    box.style.gridTemplateColumns = `repeat(${heads}, minmax(40px, 1fr))`;
    const figures = [];
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < heads; h++) {
        const canvas = document.createElement("canvas");
        drawGridRow(canvas, values.subarray((l * heads + h) * keys, (l * heads + h + 1) * keys), scale, clip ? clip.value : null);
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
