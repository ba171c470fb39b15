// The head view: lines from the query token to every key token, thickness and opacity by weight.
import { $, el } from "../dom.js";
import { drawLines } from "../draw.js";
import { keyTokens, queryTokens } from "../weights.js";

export default {
  id: "lines",
  title: "Head view",

  mount(root) {
    root.append(
      el("p", { className: "legend" }, "Lines from the query token (left) to each key token (right), thickness and " +
        "opacity by the attention weight of the layer and head above; the weight is printed after each key."),
      el("div", { className: "canvas-wrap" }, el("canvas", { id: "lines", testid: "head-view" })));
  },

  update(state) {
    const r = state.result;
    drawLines($("lines"), queryTokens(r)[r.attention.query], keyTokens(r), r.attention.weights);
  },

  exportPNG() {
    return $("lines");
  },
};
