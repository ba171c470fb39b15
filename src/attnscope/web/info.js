// The panels under the views: the attention row's statistics, the model and tokenizer facts, and
// the tokenization table (the first MAX_TABLE_ROWS tokens: the DOM stays bounded).
import { $, el, table, tokenChip } from "./dom.js";
import { format } from "./format.js";
import { keyTokens } from "./weights.js";
import { statsBasis } from "./exclusion.js";
import { t } from "./i18n.js";
import "./locales/shell.js";

const MAX_TABLE_ROWS = 100;

function number(value) { // a formatted cell that keeps the exact value
  return el("span", { dataset: { value: String(value) } }, format(value));
}

export function renderPanels(result, display) {
  const m = result.model;
  const specials = Object.entries(m.special_tokens || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  $("model-info").replaceChildren(table([
    [t("info.model"), m.name], [t("info.spec"), m.spec], [t("info.kind"), m.kind], [t("info.layers"), String(m.layers)],
    [t("info.heads"), String(m.heads)], [t("info.kv_heads"), String(m.kv_heads)], [t("info.head_dim"), String(m.head_dim)],
    [t("info.vocab"), String(m.vocab_size)], [t("info.context"), String(m.max_positions ?? "—")],
    [t("info.window"), String(m.sliding_window ?? "—")], [t("info.tokenizer"), m.tokenizer],
    [t("info.special"), specials || "—"], [t("info.sha"), m.weights_sha256 || "—"],
    [t("info.fingerprint"), m.fingerprint || "—"],
    [t("info.dtype"), `${m.dtype} / ${m.device}`], [t("info.backend"), result.provenance ? result.provenance.backend : "—"],
  ]));
  const tokens = keyTokens(result);
  const shown = tokens.slice(0, MAX_TABLE_ROWS);
  const rows = shown.map((tok, i) => [String(i), tokenChip(tok.text), String(tok.id),
    tok.start === null ? "—" : `[${tok.start}, ${tok.end})`, tok.special ? t("info.special_mark") : ""]);
  const wrap = el("div", { className: "tokenization" }, table(rows, ["#", t("info.token"), t("info.id"), t("info.span"), ""]));
  if (tokens.length > shown.length) {
    wrap.append(el("p", { className: "muted" },
      t("info.first", { shown: shown.length, total: tokens.length })));
  }
  $("tokenization").replaceChildren(wrap);
  // computed by the library (attnscope.analysis.stats), the same numbers as the CLI's JSON
  const basis = result.stats[statsBasis(display)] ? statsBasis(display) : "raw"; // the row the token view shows
  const stats = result.stats[basis];
  const top = tokens[stats.argmax];
  const entropy = el("span", {}, el("span", { className: "nowrap" }, number(stats.entropy_nats), ` ${t("info.nats")}`), " ",
    el("span", { className: "nowrap" }, "(", number(stats.entropy_nats / Math.LN2), ` ${t("info.bits")})`));
  entropy.dataset.value = String(stats.entropy_nats);
  entropy.setAttribute("data-testid", "entropy");
  const max = el("span", { testid: "max-weight" }, number(stats.max),
    el("span", { className: "detail" }, `${t("info.on_token", { n: stats.argmax })} `, tokenChip(top ? top.text : "")));
  const statsTable = table([
    [t("info.sum"), number(stats.sum)],
    [t("info.max"), max],
    [t("info.entropy"), entropy],
    [t("info.mass90"), String(stats.mass90_tokens)],
  ]);
  statsTable.dataset.basis = basis;
  $("stats").replaceChildren(statsTable);
}
