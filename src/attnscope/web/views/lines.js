// The head view: lines from the query token to every key token, thickness and opacity by weight.
import { $, el, scaleLegend } from "../dom.js";
import { lineScaleCaption } from "../contrast.js";
import { attentionRGB, colourBar } from "../palette.js";
import { drawLines } from "../draw.js";
import { keyTokens, queryTokens } from "../weights.js";
import { t } from "../i18n.js";
import "../locales/views.js";

export default {
  id: "lines",
  get title() { return t("lines.title"); },

  mount(root) {
    root.append(
      el("p", { className: "legend" }, t("lines.legend")),
      el("p", { id: "lines-scale", className: "legend" }),
      el("div", { className: "canvas-wrap" }, el("canvas", { id: "lines", testid: "head-view" })));
  },

  update(state) {
    const r = state.result;
    const pooled = drawLines($("lines"), queryTokens(r)[r.attention.query], keyTokens(r), r.attention.weights);
    $("lines-scale").replaceChildren(scaleLegend(colourBar(attentionRGB), 0, 1, lineScaleCaption(Boolean(pooled))));
  },

  exportPNG() {
    return $("lines");
  },
};
