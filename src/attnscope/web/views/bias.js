// Bias probes: a packaged suite of paired probes (she / he after an occupation, two names before one
// continuation, ...) run through the loaded model on a button press (POST /api/bias, progress and
// Cancel like every long request; the answer is kept as a run of kind bias). Shows the summary with
// bootstrap intervals, the per-pair gaps as bars with the means' intervals, the head × layer map of
// the attention mass difference with its top heads, and the per-pair table. The suites come from
// GET /api/bias/suites, each with its description, source and licence.
import { getJSON, postJSON } from "../api.js";
import { drawGaps, drawHeads } from "../bias-charts.js";
import { signed, summaryLine, summaryTable } from "../bias-summary.js";
import { $, count, el, table, tokenChip } from "../dom.js";
import { format, formatProb } from "../format.js";
import { track } from "../jobs.js";
import { NEGATIVE, POSITIVE, css } from "../palette.js";
import { t } from "../i18n.js";
import "../locales/bias.js";

const MAX_RESAMPLES = 10000; // POST /api/bias allows 1 to 10,000
let suites = []; // GET /api/bias/suites: [{name, language, description, source, licence, order, pairs, ...}]
let shown = null; // the answer on the page

function describe() {
  const suite = suites.find((s) => s.name === $("bias-suite").value);
  const box = $("bias-suite-info");
  if (!suite) { box.replaceChildren(); return; }
  box.dataset.suite = suite.name;
  box.replaceChildren(
    el("p", { className: "bias-description", testid: "bias-suite-description" }, suite.description || ""),
    el("p", { className: "muted", testid: "bias-suite-source" }, t("bias.source", { pairs: suite.pairs, language: suite.language || "—",
      first: suite.order[0], second: suite.order[1], source: suite.source || "—", licence: suite.licence || "—", sha: suite.sha256.slice(0, 12) })));
}

async function loadSuites(ctx) {
  try {
    suites = (await getJSON("/api/bias/suites")).suites;
    $("bias-suite").replaceChildren(...suites.map((s) => new Option(t("bias.suite_option", { name: s.name, pairs: s.pairs }), s.name)));
    if (shown && suites.some((s) => s.name === shown.suite.name)) $("bias-suite").value = shown.suite.name; // after a re-mount
    describe();
  } catch (error) {
    ctx.fail(error);
  } finally {
    count("biasSuites");
  }
}

function options() { // the request's options from the fields (throws on a bad one)
  const resamples = Number($("bias-resamples").value);
  const seed = Number($("bias-seed").value);
  if (!Number.isInteger(resamples) || resamples < 1 || resamples > MAX_RESAMPLES) {
    throw new Error(t("bias.resamples.invalid", { max: MAX_RESAMPLES.toLocaleString("en") }));
  }
  if (!Number.isInteger(seed) || seed < 0) throw new Error(t("bias.seed.invalid"));
  return { suite: $("bias-suite").value, resamples, seed };
}

// ---- the per-pair table ------------------------------------------------------------------------------
function side(variant, other) { // the continuation where the two differ, else the identity (the prompt differs)
  return variant.continuation !== other.continuation ? tokenChip(variant.continuation) : variant.identity;
}

function pairsTable(body) {
  const [first, second] = body.summary.order;
  const top = Math.max(1e-12, ...body.pairs.map((p) => Math.abs(p.gap.logprob)));
  const rows = body.pairs.map((pair) => {
    const [one, two] = pair.variants;
    const gap = el("span", { className: "bias-gap", style: { background: css(pair.gap.logprob >= 0 ? POSITIVE : NEGATIVE,
      Math.min(1, Math.abs(pair.gap.logprob) / top) * 0.5) } }, signed(pair.gap.logprob));
    return [pair.id, el("span", { className: "bias-template" }, pair.template), pair.tags.join(", "), side(one, two),
      formatProb(one.prob), format(one.logprob), side(two, one), formatProb(two.prob), format(two.logprob), gap,
      formatProb(pair.gap.share)];
  });
  const pairs = table(rows, ["#", t("bias.prompt"), t("bias.tags"), first, "p", "log p", second, "p", "log p", "Δ log p",
    t("bias.share", { first })]);
  pairs.className = "bias-table bias-pairs-table";
  [...pairs.tBodies[0].rows].forEach((tr, k) => {
    const pair = body.pairs[k];
    Object.assign(tr.dataset, { id: pair.id, gap: String(pair.gap.logprob), first: String(pair.variants[0].prob),
      second: String(pair.variants[1].prob) });
  });
  return el("details", { className: "bias-pairs", testid: "bias-pairs" },
    el("summary", {}, t("bias.pairs", { n: body.pairs.length })), pairs);
}

// ---- the whole answer --------------------------------------------------------------------------------
function render(body, ctx) {
  const roles = Object.keys(body.summary.heads);
  const gaps = el("div", { className: "bias-block", testid: "bias-gaps-block" });
  const heads = el("div", { className: "bias-block", testid: "bias-heads-block" });
  const role = el("select", { id: "bias-role", testid: "bias-role", ariaLabel: t("bias.role") },
    ...roles.map((r) => new Option(r, r)));
  const result = $("bias-result");
  result.dataset.suite = body.suite.name;
  result.dataset.runId = body.run_id || "";
  result.replaceChildren(
    el("h3", {}, t("bias.summary")), summaryLine(body), summaryTable(body),
    el("h3", {}, t("bias.gap_per_pair")), gaps,
    el("h3", {}, t("bias.which_heads")),
    ...(roles.length > 1 ? [el("p", {}, el("label", {}, t("bias.term"), role))] : []),
    roles.length ? heads : el("p", { className: "muted" }, t("bias.no_terms")),
    pairsTable(body));
  drawGaps(gaps, body);
  const onHead = (layer, head) => ctx.selectHead && ctx.selectHead(layer, head);
  if (roles.length) {
    drawHeads(heads, body, roles[0], onHead);
    role.addEventListener("change", () => drawHeads(heads, body, role.value, onHead));
  }
}

async function run(ctx) {
  ctx.showError("");
  const button = $("bias-run");
  button.disabled = true;
  try {
    const asked = options();
    const body = await track(t("bias.job", { suite: asked.suite }),
      (id) => postJSON("/api/bias", { ...asked, progress_id: id }), { progress: true });
    shown = body;
    render(body, ctx);
    stale(ctx.state);
  } catch (error) {
    ctx.fail(error);
  } finally {
    button.disabled = false;
    count("biasRuns");
  }
}

function stale(state) { // the answer was made by another model than the one loaded now
  const note = $("bias-stale");
  const other = shown && state.model && shown.model.fingerprint !== state.model.fingerprint;
  note.hidden = !other;
  note.textContent = other ? t("bias.stale", { shown: shown.model.name, loaded: state.model.name }) : "";
}

export default {
  id: "bias",
  get title() { return t("bias.title"); },
  testid: "bias",

  mount(root, ctx) {
    const number = (id, value, min, max) => el("input", { type: "number", id, testid: id, value: String(value),
      min: String(min), ...(max ? { max: String(max) } : {}), step: "1" });
    const suite = el("select", { id: "bias-suite", testid: "bias-suite" });
    const button = el("button", { type: "button", id: "bias-run", testid: "bias-run" }, t("bias.run"));
    root.append(
      el("p", { className: "legend" }, t("bias.legend")),
      el("div", { className: "actions bias-inputs" }, el("label", {}, t("bias.suite"), suite),
        el("label", {}, t("bias.resamples"), number("bias-resamples", 1000, 1, MAX_RESAMPLES)),
        el("label", {}, t("bias.seed"), number("bias-seed", 0, 0)), button),
      el("div", { id: "bias-suite-info", className: "bias-info", testid: "bias-suite-info" }),
      el("p", { id: "bias-stale", className: "legend", testid: "bias-stale", hidden: true }),
      el("div", { id: "bias-result", testid: "bias-result" },
        el("p", { className: "muted" }, t("bias.choose"))));
    suite.addEventListener("change", describe);
    button.addEventListener("click", () => run(ctx));
    loadSuites(ctx);
    if (shown) render(shown, ctx); // mounted again (a language switch): the answer stays
  },

  update(state) { // the results stay until the next Run; say when the loaded model is another
    stale(state);
  },

  exportPNG() {
    return document.querySelector("[data-testid=bias-gaps]");
  },

  exportData() {
    return shown ? { name: `attnscope-bias-${shown.suite.name}.json`, data: shown } : null;
  },
};
