// Rules (README: Rules): a rule file (YAML or JSON) edited here — or one of the shipped examples —
// validated line by line (POST /api/rules/validate) and checked on the analysed text, or on the
// generation shown: step rules at every step (POST /api/rules/check). Failed rules are listed with
// their value against the threshold and where it happened; their tokens, and the steps where they
// failed, are outlined in the Tokens view and on the generation timeline (rule-flags.js). Every check
// is logged in the runs store under the run it read (History shows the log). The text persists in
// localStorage; "check on every analysis" checks again whenever the analysed text or generation changes.
import { ApiError, getJSON, postJSON } from "../api.js";
import { $, count, el, tokenChip } from "../dom.js";
import { format } from "../format.js";
import { track } from "../jobs.js";
import { CONTINUED, masked, revealed } from "../privacy.js";
import { markSteps, setFlags } from "../rule-flags.js";
import { runEdits } from "./counterfactual.js";
import { t } from "../i18n.js";
import { counted } from "../locales/rules.js";

const STORED = "attnscope.rules"; // localStorage key of the rules text
const SEVERITY_ORDER = ["critical", "warning", "info"];
const MAX_RUNS_SHOWN = 8; // pieces of text (runs of consecutive tokens) shown per rule
const STARTER = `# A rule file (README: Rules). Check runs it on the analysed text or the generation shown.
version: 1
rules:
  - name: no-attention-sink
    description: the last position (a generation: each step's) puts at most 0.9 of its attention on the first token
    from: {answer: true}
    to: {class: first}
    aggregation: max          # the worst layer and head decides
    measure: mass
    comparison: "<="
    threshold: 0.9
    severity: warning

  - name: pii-not-read
    description: little attention on personal data (phone, ID and card numbers, e-mail, ...)
    from: {answer: true}
    to: {class: pii}
    measure: mass
    comparison: "<="
    threshold: 0.05
    severity: critical
`;

let shown = null; // the last check's answer
let checked = null; // what "check on every analysis" last checked (model, text, generation, rules)
let examples = [];

// ---- what a check reads ----------------------------------------------------------------------------
function target(state) { // the analysed text (a generation shown: its kept trace), else the prompt as typed
  if (!state.result || state.text === null) return { text: $("prompt").value, key: null };
  const traceId = state.generated && state.result.trace_id ? state.result.trace_id : undefined;
  return { text: state.text, trace_id: traceId, key: [state.result.model.fingerprint, state.text, traceId || ""].join("\u0000") };
}

const autoKey = (state) => `${target(state).key}\u0000${$("rules-text").value}`;

async function check(ctx) {
  const rules = $("rules-text").value;
  const { text, trace_id: traceId } = target(ctx.state);
  checked = autoKey(ctx.state); // "check on every analysis" does not check this again
  $("rules-problems").replaceChildren();
  if (!text.trim()) { status(t("rules.type_text")); count("ruleChecks"); return; }
  $("rules-check").disabled = true;
  try {
    const body = await track(t("rules.job"), (id) => postJSON("/api/rules/check",
      { text, rules, trace_id: traceId, progress_id: id }), { progress: true });
    shown = body;
    setFlags(body);
    markSteps(body.trace_id);
    status("");
    draw(ctx);
    if (ctx.state.result) await ctx.render(); // the Tokens view outlines the failed rules' tokens
  } catch (error) {
    if (error instanceof ApiError && error.status === 422 && error.message.startsWith("rules: ")) {
      problems([problemOf(error.message.slice("rules: ".length))]);
    } else ctx.fail(error);
  } finally {
    $("rules-check").disabled = false;
    count("ruleChecks");
  }
}

// "line 7: rules[0].comparison: message (and 2 more …)" as a problem
function problemOf(message) {
  const found = /^line (\d+): (.*)$/.exec(message);
  return found ? { line: Number(found[1]), path: "", message: found[2] } : { line: null, path: "", message };
}

async function validate() {
  try {
    const body = await postJSON("/api/rules/validate", { rules: $("rules-text").value });
    problems(body.problems);
    if (body.ok) {
      status(counted("rules.valid", body.rules.length, { names: body.rules.map((r) => r.name).join(", ") }));
    } else status("");
  } catch (error) {
    problems([{ line: null, path: "", message: error.message }]);
  } finally {
    count("ruleValidations");
  }
}

function status(text) {
  $("rules-status").textContent = text;
}

function problems(list) {
  $("rules-problems").replaceChildren(...list.map((p) => {
    const item = el("li", { testid: "rules-problem", dataset: { line: String(p.line ?? ""), path: p.path || "" } },
      el("strong", {}, p.line === null || p.line === undefined ? t("rules.file") : t("rules.line", { n: p.line })),
      `: ${p.path ? `${p.path}: ` : ""}${p.message}`);
    item.title = t("rules.select_line");
    item.addEventListener("click", () => selectLine(p.line));
    return item;
  }));
}

function selectLine(line) {
  if (!line) return;
  const area = $("rules-text");
  const lines = area.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

// ---- the results -----------------------------------------------------------------------------------
const SYMBOLS = { ">=": "≥", "<=": "≤", ">": ">", "<": "<" };
const test = (r) => `${SYMBOLS[r.comparison] || r.comparison} ${r.threshold}`;
const measured = (r) => (r.measure.startsWith("attribution:") ? r.measure : `${r.measure} (${r.aggregation})`);

// The texts of the answer's tokens as the page shows them (personal data masked unless revealed).
function shownTokens(body) {
  return masked(body.tokens, body.pii) || body.tokens;
}

// A counterfactual hint's text, masked when it covers personal data.
function hintText(body, hint) {
  const spans = body.pii || [];
  const [start, end] = hint.spans && hint.spans[0] ? hint.spans[0] : [hint.start, hint.start + hint.remove.length];
  const pii = revealed() ? null : spans.find((s) => s.start < end && s.end > start);
  return pii ? pii.label : hint.remove;
}

function where(result, body, tokens) {
  const w = result.where;
  const cell = [["layer", w.layer], ["head", w.head], ["step", w.step]].filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => t(`rules.cell.${k}`, { n: v })).join(", ");
  const runs = tokenRuns(w.tokens || [], tokens);
  const picked = runs.slice(0, MAX_RUNS_SHOWN);
  const more = runs.length - picked.length;
  const chips = picked.flatMap((run) => {
    const chip = tokenChip(run.text);
    chip.title += ` (${run.title})`;
    return [chip, " "];
  });
  const step = w.step !== null && w.step !== undefined && body.generation ? body.generation.steps[w.step] : null;
  const stepToken = step ? (tokens[step.position] || step.token).text : null; // the token that step chose
  return el("div", { className: "rule-where" }, ...(cell ? [t("rules.at", { cell })] : []),
    ...(step ? [" (", tokenChip(stepToken), ")"] : []),
    ...(picked.length ? [cell ? t("rules.tokens_after") : t("rules.tokens"), ...chips] : []), more > 0 ? t("rules.more", { n: more }) : null);
}

// Consecutive tokens as one piece of text each (byte pieces of one character, a word's pieces, a
// masked value's tokens: its label once): [{text, title}].
function tokenRuns(picked, tokens) {
  const runs = [];
  let last = null;
  for (const { index, text } of [...picked].sort((a, b) => a.index - b.index)) {
    const token = tokens[index] || { text };
    const piece = token.masked && token.text === CONTINUED ? "" : token.text;
    if (last && index === last.end + 1) { last.text += piece; last.end = index; } else runs.push(last = { text: piece, start: index, end: index });
  }
  return runs.map((r) => ({ text: r.text, title: r.start === r.end ? t("rules.token", { n: r.start }) : t("rules.token_range", { start: r.start, end: r.end }) }));
}

function violation(result, body, tokens, ctx) {
  const w = result.where;
  const failedSteps = (result.steps || []).filter((s) => s.passed === false);
  const item = el("li", { className: `rule-violation severity-${result.severity}`, testid: "rule-violation", dataset: {
    rule: result.rule, severity: result.severity, value: String(result.value), threshold: String(result.threshold),
    comparison: result.comparison, layer: String(w.layer ?? ""), head: String(w.head ?? ""), step: String(w.step ?? ""),
    tokens: (w.tokens || []).map((token) => token.index).join(","),
  } },
  el("span", { className: `severity severity-${result.severity}`, testid: "rule-severity" }, result.severity), " ",
  el("strong", { className: "rule-name" }, result.rule), " ",
  el("span", { className: "rule-value" }, `${measured(result)} = `, el("b", {}, format(result.value)), t("rules.needs", { test: test(result) })),
  result.description ? el("div", { className: "muted" }, result.description) : null,
  where(result, body, tokens),
  failedSteps.length ? el("div", { className: "muted" }, counted("rules.failed_steps", failedSteps.length,
    { steps: failedSteps.map((s) => `${s.step} (${format(s.value)})`).join(", ") })) : null,
  result.counterfactual ? el("div", { className: "muted" }, t("rules.counterfactual"),
    tokenChip(hintText(body, result.counterfactual)), ...moreSpans(result.counterfactual), t("rules.and_compare"),
    tryWithout(result, body, ctx)) : null,
  result.note ? el("div", { className: "muted" }, result.note) : null);
  item.title = w.layer !== null && w.layer !== undefined ? t("rules.show_head") : "";
  item.addEventListener("click", () => follow(result, body, ctx));
  return item;
}

function hintEdits(hint) { // one edit per span the rule found, each pinned by its offset (code points)
  return hint.edits && hint.edits.length ? hint.edits : [{ remove: hint.remove, start: hint.start }];
}

function moreSpans(hint) {
  const more = hintEdits(hint).length - 1;
  return more > 0 ? [counted("rules.more_spans", more)] : [];
}

// "Try without it": the Counterfactual view run at once on the rule's own edits — every span it found,
// at the offset it found it, sent to the server as they are (the page never searches the text again) —
// how attention redistributes without them, and whether the prediction changes.
function tryWithout(result, body, ctx) {
  const current = Boolean(ctx.state.result) && body.text === ctx.state.text;
  const button = el("button", { type: "button", testid: "rule-counterfactual", disabled: !current,
    title: current ? t("rules.try.title") : t("rules.try.stale") }, t("rules.try"));
  button.addEventListener("click", (event) => {
    event.stopPropagation(); // not the violation's own click (it selects the layer and head)
    runEdits(ctx, hintEdits(result.counterfactual), result.rule);
  });
  return button;
}

// A violation clicked: its layer, head and row (a generation: its step) in the page's views.
function follow(result, body, ctx) {
  const { layer, head, step, rows } = result.where;
  const state = ctx.state;
  const same = state.result && body.text === state.text && body.model.fingerprint === state.result.model.fingerprint;
  if (!same || layer === null || layer === undefined || head === null || head === undefined) {
    $("tab-tokens").click();
    $("strip").scrollIntoView({ block: "center" });
    return;
  }
  const atStep = step !== null && step !== undefined && body.generation && state.generated ? body.generation.steps[step] : null;
  const row = atStep ? atStep.position - 1 : rows && rows.length ? rows[rows.length - 1] : null;
  if (row !== null) state.query = row;
  if (atStep) ctx.showStep(step);
  ctx.selectHead(layer, head);
}

function passedItem(result) {
  const item = el("li", { testid: result.passed ? "rule-passed" : "rule-unevaluated", dataset: {
    rule: result.rule, severity: result.severity, value: String(result.value) } },
  el("span", { className: "mark" }, result.passed ? "✓" : "–"), " ", el("strong", {}, result.rule), " ",
  result.passed ? `${format(result.value)} (${test(result)})` : t("rules.not_evaluated", { note: result.note || "—" }));
  item.title = `${result.severity}; ${measured(result)}${result.description ? `: ${result.description}` : ""}`;
  return item;
}

function summary(body) {
  const s = body.summary;
  const on = body.generation ? t("rules.on.generation", { n: body.generation.steps.length }) : t("rules.on.text");
  const line = el("p", { className: "rules-summary", testid: "rules-summary", dataset: {
    total: String(s.total), passed: String(s.passed), failed: String(s.failed), critical: String(s.critical_failed),
    notEvaluated: String(s.not_evaluated) } },
  el("strong", {}, t("rules.failed", { n: s.failed })), s.critical_failed ? el("span", { className: "severity severity-critical" },
    t("rules.critical", { n: s.critical_failed })) : null,
  counted("rules.summary", s.total, { passed: s.passed, unevaluated: s.not_evaluated, on, model: body.model.name || body.model.spec }),
  el("span", { className: "muted" }, body.run_id ? t("rules.logged", { n: body.logged, run: body.run_id,
    sha: body.rules_file.sha256.slice(0, 12) }) : t("rules.not_logged")));
  if (body.run_id) line.dataset.runId = body.run_id;
  if (body.trace_id) line.dataset.traceId = body.trace_id;
  return line;
}

function draw(ctx) {
  const box = $("rules-results");
  if (!shown) { box.replaceChildren(el("p", { className: "muted" }, t("rules.none"))); return; }
  const body = shown;
  const tokens = shownTokens(body);
  const stale = ctx.state.result && (body.text !== ctx.state.text || body.model.fingerprint !== ctx.state.result.model.fingerprint);
  const failed = body.results.filter((r) => r.passed === false)
    .sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
  const others = body.results.filter((r) => r.passed !== false);
  box.replaceChildren(...[summary(body),
    stale ? el("p", { className: "muted", testid: "rules-stale" }, t("rules.stale")) : null,
    failed.length ? el("ol", { className: "rule-violations", testid: "rule-violations" },
      ...failed.map((r) => violation(r, body, tokens, ctx))) : el("p", { testid: "rules-all-passed" }, t("rules.all_passed")),
    others.length ? el("ul", { className: "rule-others", testid: "rule-others" }, ...others.map(passedItem)) : null,
    failed.length ? el("p", { className: "legend" }, t("rules.outlined")) : null].filter(Boolean));
}

// ---- the view --------------------------------------------------------------------------------------
function loadExample(name) {
  const example = examples.find((e) => e.name === name);
  if (!example) return;
  $("rules-text").value = example.text;
  localStorage.setItem(STORED, example.text);
  $("rules-problems").replaceChildren();
  status(t("rules.example_loaded", { name }));
}

const view = {
  id: "rules",
  get title() { return t("rules.title"); },
  testid: "rules",

  mount(root, ctx) {
    const picker = el("select", { id: "rules-example", testid: "rules-example" }, new Option(t("rules.load_example"), ""));
    const area = el("textarea", { id: "rules-text", className: "rules-text", testid: "rules-text", rows: 22,
      spellcheck: false, ariaLabel: t("rules.area") });
    area.value = localStorage.getItem(STORED) ?? STARTER;
    const validateButton = el("button", { type: "button", id: "rules-validate", testid: "rules-validate" }, t("rules.validate"));
    const checkButton = el("button", { type: "button", id: "rules-check", testid: "rules-check" }, t("rules.check"));
    const auto = el("input", { type: "checkbox", id: "rules-auto", testid: "rules-auto" });
    root.append(
      el("p", { className: "legend" }, t("rules.legend")),
      el("div", { className: "rules-layout" },
        el("div", { className: "rules-editor" },
          el("div", { className: "actions rules-actions" }, picker, validateButton, checkButton,
            el("label", { className: "compact", title: t("rules.auto.title") },
              auto, t("rules.auto"))),
          area,
          el("p", { id: "rules-status", className: "muted", testid: "rules-status", role: "status" }),
          el("ul", { id: "rules-problems", className: "rules-problems", testid: "rules-problems" })),
        el("div", { id: "rules-results", className: "rules-results", testid: "rules-results" })));
    draw(ctx);
    area.addEventListener("input", () => { localStorage.setItem(STORED, area.value); picker.value = ""; });
    picker.addEventListener("change", () => loadExample(picker.value));
    validateButton.addEventListener("click", validate);
    checkButton.addEventListener("click", () => check(ctx));
    auto.addEventListener("change", () => { checked = null; view.follow(ctx.state, ctx); });
    getJSON("/api/rules/examples").then((list) => {
      examples = list;
      picker.append(...list.map((e) => new Option(e.name, e.name)));
    }).catch((error) => status(t("rules.examples", { message: error.message })));
  },

  update(state, ctx) {
    draw(ctx); // personal data shown or masked, the text analysed now or another
  },

  // After every render: with "check on every analysis" ticked, a new text, model or generation is checked.
  follow(state, ctx) {
    const auto = $("rules-auto");
    if (!auto || !auto.checked || !state.result) return;
    if (autoKey(state) === checked || $("rules-check").disabled) return;
    check(ctx);
  },

  exportData() {
    return shown ? { name: "attnscope-rules.json", data: shown } : null;
  },
};

export default view;
