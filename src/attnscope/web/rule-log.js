// The rule log of a stored run (GET /api/runs/{id}/rules), shown under the run in History: one row per
// logged rule result, the newest check first and its rules in file order — when, the rule, its
// severity, pass / FAIL / n/a, the value and the test, the step and the tokens (masked as the store
// masks them). A run with no log shows nothing.
import { getJSON } from "./api.js";
import { el, table, tokenChip } from "./dom.js";
import { format } from "./format.js";
import { t } from "./i18n.js";
import { counted } from "./locales/rules.js";

const SYMBOLS = { ">=": "≥", "<=": "≤", ">": ">", "<": "<" };
const VERDICT = { true: "pass", false: "FAIL", null: "n/a" }; // the class names; shown as rulelog.<verdict>
const SHOWN = { pass: "rulelog.pass", FAIL: "rulelog.fail", "n/a": "rulelog.na" };

// Consecutive tokens as one piece of text each (a word's pieces; a masked value's [LABEL] once).
function pieces(tokens) {
  const runs = [];
  let last = null;
  for (const { index, text } of [...tokens].sort((a, b) => a.index - b.index)) {
    if (last && index === last.end + 1) {
      if (!(/^\[[A-Z_]+\]$/.test(text) && last.text.endsWith(text))) last.text += text;
      last.end = index;
    } else runs.push(last = { text, end: index });
  }
  return runs.map((run) => run.text);
}

export async function ruleLog(runId) {
  let rows;
  try {
    ({ rows } = await getJSON(`/api/runs/${runId}/rules`));
  } catch (_) {
    return null; // no log to show (a server without a store answers 400): the run is shown without it
  }
  if (!rows.length) return null;
  rows.sort((a, b) => b.logged.localeCompare(a.logged) || (a.line ?? 0) - (b.line ?? 0)); // newest check first, its rules in file order
  const log = table(rows.map((r) => [r.logged.slice(0, 19).replace("T", " "), r.rule,
    el("span", { className: `severity severity-${r.severity}` }, r.severity),
    el("span", { className: `verdict verdict-${VERDICT[String(r.passed)]}` }, t(SHOWN[VERDICT[String(r.passed)]])),
    format(r.value), `${SYMBOLS[r.comparison] || r.comparison} ${r.threshold}`,
    r.where.step === null || r.where.step === undefined ? "" : String(r.where.step),
    el("span", {}, ...pieces(r.where.tokens || []).slice(0, 8).flatMap((text) => [tokenChip(text), " "]))]),
  ["logged", "rule", "severity", "result", "value", "test", "step", "tokens"].map((h) => t(`rulelog.${h}`)));
  [...log.tBodies[0].rows].forEach((tr, k) => {
    const r = rows[k];
    tr.setAttribute("data-testid", "run-rule-row");
    Object.assign(tr.dataset, { rule: r.rule, severity: r.severity, passed: String(r.passed), value: String(r.value),
      rulesSha256: r.rules_sha256, logged: r.logged });
    if (r.note) tr.title = r.note;
  });
  const files = new Set(rows.map((r) => r.rules_sha256.slice(0, 12)));
  return el("div", { className: "run-rule-log", testid: "run-rule-log" },
    el("p", {}, el("strong", {}, t("rulelog.title")), counted("rulelog.summary", rows.length,
      { files: [...files].map((f) => `${f}…`).join(", ") })), log);
}
