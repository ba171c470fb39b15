// Every token attribution method on the prompt and their rank agreement (Spearman ρ, Kendall τ-b),
// with every unit's raw scores. Runs on request (the button): it runs the model many times.
import { postJSON } from "../api.js";
import { $, count, el, quoted, table } from "../dom.js";
import { format } from "../format.js";
import { colourWords, inkOnScore, scoreColour } from "../palette.js";
import { t } from "../i18n.js";
import { unitLabel } from "../locales/methods.js";
import "../locales/views.js";

let shown = null;

function matrix(data, statistic, caption, title) {
  const methods = data.agreement.methods;
  const rows = methods.map((a, i) => [el("span", { title: a }, title(a)), ...methods.map((_, j) => {
    const value = data.agreement[statistic][i][j];
    const style = { background: scoreColour(value, 1), color: inkOnScore(value, 1) };
    return el("span", { className: "cell", dataset: { value: String(value) }, style },
      format(value));
  })]);
  return table(rows, [caption, ...methods.map(title)]);
}

function render(container, data, title) {
  const methods = data.agreement.methods;
  const spearman = matrix(data, "spearman", "Spearman ρ", title);
  spearman.setAttribute("data-testid", "agreement-table");
  spearman.dataset.methods = methods.join(",");
  const kendall = matrix(data, "kendall", "Kendall τ-b", title);
  const scoreRows = data.units.map((unit, index) => [quoted(unit.text), ...methods.map((m) => format(data.methods[m].scores[index]))]);
  const scores = table(scoreRows, [unitLabel(data.granularity), ...methods.map(title)]);
  scores.setAttribute("data-testid", "agreement-scores");
  const target = data.target || {};
  const skipped = Object.entries(data.skipped || {}).map(([m, why]) => `${title(m)}: ${why}`).join("; ");
  const note = el("p", { className: "muted" }, t("agreement.note", { ...colourWords(), unit: unitLabel(data.granularity), target: quoted(target.text) }) +
    (skipped ? t("agreement.skipped", { skipped }) : "") + t("agreement.low"));
  container.replaceChildren(note, el("div", { className: "tables" }, spearman, kendall),
    el("p", { className: "muted" }, t("agreement.raw")), scores);
}

export default {
  id: "agreement",
  get title() { return t("agreement.title"); },

  mount(root, ctx) {
    const button = el("button", { type: "button", id: "agreement-run", testid: "agreement-run" }, t("agreement.run"));
    root.append(
      el("p", { className: "legend" }, t("agreement.legend")),
      button, el("div", { id: "agreement", testid: "agreement" }));
    button.addEventListener("click", async () => {
      if (!ctx.state.result) return;
      const text = ctx.state.text;
      const granularity = ctx.unit();
      const query = ctx.state.result.attention.query; // the prediction after the selected query token
      try {
        const body = await ctx.cached("agreement", { granularity, query }, t("agreement.job"),
          (id) => postJSON("/api/agreement", { text, granularity, query, progress_id: id }), { progress: true });
        if (body) { shown = body; render($("agreement"), body, ctx.title); }
      } catch (error) {
        ctx.fail(error);
      } finally {
        count("agreements");
      }
    });
  },

  update(state, ctx) { // the answer for this model, text and unit when there is one
    const query = state.result ? state.result.attention.query : -1;
    const body = ctx.peek("agreement", { granularity: ctx.unit(), query });
    if (body === shown) return;
    shown = body || null;
    if (body) render($("agreement"), body, ctx.title);
    else $("agreement").replaceChildren(el("p", { className: "muted" }, t("agreement.none")));
  },

  exportData() {
    return shown ? { name: "attnscope-agreement.json", data: shown } : null;
  },
};
