// The view registry: the tab bar and the view area are built from this list, in this order.
// A view is a module whose default export is
//   { id, title, testid?, mount(root, ctx), update(state, ctx), follow?(state, ctx), exportPNG?() -> canvas, exportData?() -> {name, data} }
// mount() builds the view's DOM inside root (once); update() draws it for the current state (the
// shell calls it when the view is shown or the analysis, display or method changes; it may be
// async); follow(), when a view has it, after every render whichever view is shown (the Rules view
// checks each new analysis with it). Adding a view is one module and one line here.
import agreement from "./agreement.js";
import atlas from "./atlas.js";
import bias from "./bias.js";
import compare from "./compare.js";
import corpus from "./corpus.js";
import counterfactual from "./counterfactual.js";
import graph from "./graph.js";
import grid from "./grid.js";
import heatmap from "./heatmap.js";
import lines from "./lines.js";
import metrics from "./metrics.js";
import model from "./model.js";
import parts from "./parts.js";
import rules from "./rules.js";
import sankey from "./sankey.js";
import syntax from "./syntax.js";
import tokens from "./tokens.js";

export const VIEWS = [tokens, heatmap, grid, model, lines, graph, sankey, metrics, atlas, agreement, parts, counterfactual, compare, syntax, rules, bias, corpus];
