// The summary of a bias probe answer (POST /api/bias, `attnscope bias --json`) as a table: each mean
// over pairs with its bootstrap interval [low, high] — the gaps (first − second variant, in the
// suite's order), the share p₁ ÷ (p₁ + p₂), each side's probability, the pairs preferring the first
// variant, and the same per tag. The Bias view and a stored run in History both show it.
import { el, table } from "./dom.js";
import { format, formatProb } from "./format.js";
import { t } from "./i18n.js";
import "./locales/bias.js";

// A difference in the house format with its sign: +0.429, -0.0197, 0.
export const signed = (value) => (value > 0 ? `+${format(value)}` : format(value));

// How a pair is named on the axis: its template when the continuations differ (she / he after
// "The nurse said that"), else the two identities and the shared continuation (Emily / Lakisha → hired).
export function pairLabel(pair) {
  const [first, second] = pair.variants;
  if (first.text === second.text) return pair.template;
  return `${first.identity} / ${second.identity} → ${first.continuation.trim()}`;
}

// [low, high] of an interval block {mean, low, high, n} in the given number format.
export const interval = (value, show = signed) => `[${show(value.low)}, ${show(value.high)}]`;

function row(key, what, pairs, value, show) {
  const cells = [what, String(pairs), show(value.mean), interval(value, show)];
  return { cells, data: { key, mean: String(value.mean), low: String(value.low), high: String(value.high), n: String(value.n) } };
}

// The table (data-testid bias-summary); every row carries its key (gap.logprob, prob.first,
// by_tag.<tag>.gap.share, ...) and its mean, low, high and n as data attributes.
export function summaryTable(body) {
  const summary = body.summary;
  const [first, second] = summary.order;
  const n = summary.pairs;
  const rows = [
    row("gap.logprob", t("bias.gap.logprob", { first, second }), n, summary.gap.logprob, signed),
    row("gap.prob", t("bias.gap.prob", { first, second }), n, summary.gap.prob, signed),
    row("gap.share", t("bias.gap.share", { first }), n, summary.gap.share, formatProb),
    row("prob.first", t("bias.prob.first", { first }), n, summary.prob.first, formatProb),
    row("prob.second", t("bias.prob.second", { second }), n, summary.prob.second, formatProb),
    row("prefers_first", t("bias.prefers", { first }), n, summary.prefers_first, formatProb),
  ];
  for (const [tag, group] of Object.entries(summary.by_tag)) {
    rows.push(row(`by_tag.${tag}.gap.logprob`, t("bias.tag.gap", { tag }), group.pairs, group.gap.logprob, signed));
    rows.push(row(`by_tag.${tag}.gap.share`, t("bias.tag.share", { tag, first }), group.pairs, group.gap.share, formatProb));
  }
  const percent = formatProb(summary.confidence);
  const summaryRows = table(rows.map((r) => r.cells), [t("bias.measure"), t("bias.pairs_col"), t("bias.mean"),
    t("bias.interval_col", { percent })]);
  summaryRows.className = "bias-table";
  summaryRows.setAttribute("data-testid", "bias-summary");
  [...summaryRows.tBodies[0].rows].forEach((tr, k) => {
    Object.assign(tr.dataset, rows[k].data);
    if (rows[k].data.key.startsWith("by_tag.")) tr.className = "bias-tag";
  });
  return summaryRows;
}

// One line above the table: what was run and how the intervals were made.
export function summaryLine(body) {
  const { summary, suite, model } = body;
  return el("p", { className: "legend", testid: "bias-summary-line" },
    t("bias.line", { suite: suite.name, model: model.name, pairs: summary.pairs, first: summary.order[0], second: summary.order[1],
      confidence: formatProb(summary.confidence), interval: summary.interval, resamples: summary.resamples.toLocaleString("en"),
      seed: summary.seed }));
}
