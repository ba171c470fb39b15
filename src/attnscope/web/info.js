// The panels under the views: the attention row's statistics, the model and tokenizer facts, and
// the tokenization table (the first MAX_TABLE_ROWS tokens: the DOM stays bounded).
import { $, el, table, tokenChip } from "./dom.js";
import { format } from "./format.js";
import { keyTokens } from "./weights.js";

const MAX_TABLE_ROWS = 100;

function number(value) { // a formatted cell that keeps the exact value
  return el("span", { dataset: { value: String(value) } }, format(value));
}

export function renderPanels(result, { excludeSpecial }) {
  const m = result.model;
  const specials = Object.entries(m.special_tokens || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  $("model-info").replaceChildren(table([
    ["model", m.name], ["spec", m.spec], ["kind", m.kind], ["layers", String(m.layers)],
    ["heads", String(m.heads)], ["KV heads", String(m.kv_heads)], ["head dim", String(m.head_dim)],
    ["vocab size", String(m.vocab_size)], ["context", String(m.max_positions ?? "—")],
    ["sliding window", String(m.sliding_window ?? "—")], ["tokenizer", m.tokenizer],
    ["special tokens", specials || "—"], ["weights SHA-256", m.weights_sha256 || "—"],
    ["fingerprint", m.fingerprint || "—"],
    ["dtype / device", `${m.dtype} / ${m.device}`], ["backend", result.provenance ? result.provenance.backend : "—"],
  ]));
  const tokens = keyTokens(result);
  const shown = tokens.slice(0, MAX_TABLE_ROWS);
  const rows = shown.map((t, i) => [String(i), tokenChip(t.text), String(t.id),
    t.start === null ? "—" : `[${t.start}, ${t.end})`, t.special ? "special" : ""]);
  const wrap = el("div", { className: "tokenization" }, table(rows, ["#", "token", "id", "span", ""]));
  if (tokens.length > shown.length) {
    wrap.append(el("p", { className: "muted" },
      `first ${shown.length} of ${tokens.length} tokens (the JSON export has all of them)`));
  }
  $("tokenization").replaceChildren(wrap);
  // computed by the library (attnscope.analysis.stats), the same numbers as the CLI's JSON
  const stats = excludeSpecial ? result.stats.without_special : result.stats.raw;
  const top = tokens[stats.argmax];
  const entropy = el("span", {}, el("span", { className: "nowrap" }, number(stats.entropy_nats), " nats"), " ",
    el("span", { className: "nowrap" }, "(", number(stats.entropy_nats / Math.LN2), " bits)"));
  entropy.dataset.value = String(stats.entropy_nats);
  entropy.setAttribute("data-testid", "entropy");
  const max = el("span", { testid: "max-weight" }, number(stats.max),
    el("span", { className: "detail" }, `on token ${stats.argmax} `, tokenChip(top ? top.text : "")));
  const statsTable = table([
    ["sum", number(stats.sum)],
    ["max", max],
    ["entropy", entropy],
    ["tokens holding 90%", String(stats.mass90_tokens)],
  ]);
  statsTable.dataset.basis = excludeSpecial ? "without_special" : "raw";
  $("stats").replaceChildren(statsTable);
}
