// The prediction in the details column: the top-10 next tokens of the analysis shown, with their raw
// softmax probabilities (3 significant digits and as %), first in the sticky details column so it stays
// in view while a long text or a tall view scrolls. Redrawn after every render of the shell.
import { el, tokenChip } from "./dom.js";
import { format, formatProb } from "./format.js";
import { strings, t } from "./i18n.js";

strings({
  en: {
    "prediction.panel": "Prediction",
    "prediction.after": "next token after token {position}: top {n}, raw softmax probabilities",
    "prediction.none": "no next-token prediction (this model has no next-token head, or DP withholds it)",
    "prediction.empty": "Analyse a text to see its next-token prediction.",
    "prediction.rank": "#",
    "prediction.token": "token",
    "prediction.prob": "probability",
  },
  "zh-CN": {
    "prediction.panel": "预测",
    "prediction.after": "词元 {position} 之后的下一个词元：前 {n} 个，原始 softmax 概率",
    "prediction.none": "没有下一词元预测（该模型没有下一词元输出头，或差分隐私不公开它）",
    "prediction.empty": "分析一段文本后，这里显示它的下一词元预测。",
    "prediction.rank": "#",
    "prediction.token": "词元",
    "prediction.prob": "概率",
  },
});

// The panel, first in the details column (built once; its texts are i18n keys).
export function mountPredictionPanel() {
  const panels = document.querySelector("main .panels");
  if (!panels || document.getElementById("prediction-panel")) return;
  const body = el("div", { id: "prediction-panel", testid: "prediction-panel" },
    el("p", { className: "muted", dataset: { i18n: "prediction.empty" } }, t("prediction.empty")));
  panels.prepend(el("details", { open: true, className: "prediction-details" },
    el("summary", { dataset: { i18n: "prediction.panel" } }, t("prediction.panel")), body));
}

export function renderPrediction(result) {
  const body = document.getElementById("prediction-panel");
  if (!body || !result) return;
  const prediction = result.prediction;
  if (!prediction || !prediction.top || !prediction.top.length) {
    body.replaceChildren(el("p", { className: "muted" }, t("prediction.none")));
    return;
  }
  const top = prediction.top.slice(0, 10);
  const rows = top.map((candidate, rank) => {
    const row = el("tr", { dataset: { token: candidate.token, prob: String(candidate.prob) } },
      el("td", { className: "num" }, String(rank + 1)), el("td", {}, tokenChip(candidate.token)),
      el("td", { className: "num", title: format(candidate.prob) }, formatProb(candidate.prob)),
      el("td", { className: "barcell" }, el("div", { className: "p-bar", style: { width: `${Math.max(1, candidate.prob * 100)}%` } })));
    row.setAttribute("data-testid", "prediction-candidate");
    return row;
  });
  const head = el("tr", {}, ...["prediction.rank", "prediction.token", "prediction.prob", ""].map((key) => el("th", {}, key ? t(key) : "")));
  body.replaceChildren(el("p", { className: "muted" }, t("prediction.after", { position: prediction.position, n: top.length })),
    el("table", { className: "prediction-top" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}
