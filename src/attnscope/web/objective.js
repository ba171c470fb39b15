// What a target-explaining method explains (attnscope.attribution.targets): the objective select of
// the method controls (methods.js), listing the objectives the catalogue gives the chosen method —
// the next token (default), a continuation the user types, or the loss (the mean log-probability of
// every token of the text given the ones before it: what the model makes of the input itself) — and
// the token legend's words for the last two. The choice is kept across method changes where it applies.
import { el, tokenChip } from "./dom.js";
import { strings, t } from "./i18n.js";

strings({
  en: {
    "objective.label": "explain",
    "objective.title": "what the scores explain: the predicted next token, a continuation you type, or the loss (the mean log-likelihood of the text itself)",
    "objective.next-token": "the next token",
    "objective.continuation": "a continuation…",
    "objective.loss": "the loss (log-likelihood of the text)",
    "objective.target.placeholder": "continuation text",
    "objective.target.empty": "explain a continuation: type its text",
    "objective.legend.loss": "for the loss (the mean log-probability of every token given the ones before it)",
    "objective.legend.continuation": "for the continuation ",
    "objective.legend.after": " after token {n}",
  },
  "zh-CN": {
    "objective.label": "解释",
    "objective.title": "分数解释的对象：预测的下一个词元、你输入的续写，或损失（文本自身的平均对数似然）",
    "objective.next-token": "下一个词元",
    "objective.continuation": "续写…",
    "objective.loss": "损失（文本的对数似然）",
    "objective.target.placeholder": "续写文本",
    "objective.target.empty": "解释续写：请输入续写文本",
    "objective.legend.loss": "针对损失（每个词元在其前文条件下的平均对数概率）",
    "objective.legend.continuation": "针对续写 ",
    "objective.legend.after": "（在词元 {n} 之后）",
  },
});

export class ObjectiveField {
  constructor(onChange) {
    this.onChange = onChange;
    this.objective = "next-token"; // the user's choice, kept while other methods are chosen
    this.target = "";
    this.select = null;
    this.input = null;
  }

  // The field for `spec` (a catalogue entry), or null when the method explains no target.
  build(spec) {
    const objectives = (spec && spec.objectives) || [];
    this.select = null;
    this.input = null;
    if (!objectives.length) return null;
    const select = el("select", { testid: "objective-select" }, ...objectives.map((o) => new Option(t(`objective.${o}`), o)));
    select.value = objectives.includes(this.objective) ? this.objective : objectives[0];
    const input = el("input", { type: "text", size: 14, value: this.target, placeholder: t("objective.target.placeholder"),
      testid: "objective-target", hidden: select.value !== "continuation" });
    select.addEventListener("change", () => {
      this.objective = select.value;
      input.hidden = select.value !== "continuation";
      if (!input.hidden && !input.value) { input.focus(); return; } // asked for when it has a text
      this.onChange();
    });
    input.addEventListener("change", () => { this.target = input.value; this.onChange(); });
    this.select = select;
    this.input = input;
    return el("label", { className: "option", title: t("objective.title") }, `${t("objective.label")} `, select, " ", input);
  }

  // The request's {objective, target}: {} for the next token (the server's default, so the cache key
  // of a default request stays the same); an Error when a continuation has no text yet.
  request() {
    if (!this.select || this.select.value === "next-token") return {};
    if (this.select.value === "loss") return { objective: "loss" };
    if (!this.input.value) throw new Error(t("objective.target.empty"));
    return { objective: "continuation", target: this.input.value };
  }
}

// The token legend's words for what an attribution explains, when it is a loss or a continuation
// (null: the legend's own words for the next token).
export function objectiveLegend(target, query) {
  if (!target) return null;
  if (target.objective === "loss") return [t("objective.legend.loss")];
  if (target.objective === "continuation" && target.text != null) {
    return [t("objective.legend.continuation"), tokenChip(target.text), t("objective.legend.after", { n: query })];
  }
  return null;
}
