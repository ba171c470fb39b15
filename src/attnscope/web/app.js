// attnscope front end: the shell. It owns the state, the controls, the analysis and attribution
// requests and the loop over the view registry (views/index.js): every tab is a view module; the
// model picker is models.js. No build step, no network beyond its own server.
import { getJSON, postJSON } from "./api.js";
import { Cache, cacheKey, sameKey } from "./cache.js";
import { $, count, download, el, fillSelect, hideTip } from "./dom.js";
import { renderPanels } from "./info.js";
import { decodingSettings, wireDecoding } from "./decoding.js";
import { wireDocuments } from "./documents.js";
import { Generation } from "./generation.js";
import { History } from "./history.js";
import { masked } from "./privacy.js";
import { wireReport } from "./report.js";
import { wireExport } from "./export.js";
import { Cancelled, setStatus, track } from "./jobs.js";
import { MethodControls } from "./methods.js";
import { ModelPicker } from "./models.js";
import { VIEWS } from "./views/index.js";
import { wireDesign } from "./design.js";
import { t } from "./i18n.js";
import { wireLanguage } from "./language.js";
import { methodTitle } from "./locales/methods.js"; // the shell's own strings: locales/shell.js (jobs.js loads it)

const PROGRESS_MIN_CHARS = 2000; // analyses of longer texts stream their progress and can be cancelled

const state = {
  model: null, // the loaded model's facts, with its fingerprint (GET /api/model, or an answer's "model")
  catalogue: null, // GET /api/methods
  text: null, // the analysed text
  result: null, // the last /api/analyze answer for it
  layer: -1, head: "mean", query: -1, stack: null, // stack: an encoder-decoder's encoder, decoder or cross (null: the default)
  view: VIEWS[0].id,
  display: { scale: "raw", excludeSpecial: false, excludeFirst: false, hideSpecial: false },
  attribution: null, // {key, body, spec}: the chosen method's answer, or null (the attention row)
};

// Every client-side cache is keyed by (model fingerprint, text, options): see cache.js.
const caches = {
  tokens: new Cache(4), attribution: new Cache(16), heads: new Cache(8), agreement: new Cache(8), parts: new Cache(16),
};
const cacheOf = (name) => (caches[name] ??= new Cache(8)); // a view's own answers (e.g. counterfactual)
const fingerprint = () => (state.model ? state.model.fingerprint : "");
const keyFor = (options, text = state.text) => cacheKey(fingerprint(), text, options);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function fail(error, prefix = "") {
  if (error instanceof Cancelled) setStatus(t("shell.cancelled"));
  else showError(prefix + error.message);
}

// An answer's "model" block: when it is not the model the page knows (another tab or client switched
// the server's model), the page follows: picker, status and every cache key change with it.
function learnModel(model) {
  if (!model || !model.fingerprint || model.fingerprint === fingerprint()) return;
  state.model = model;
  state.layer = -1; state.head = "mean"; state.stack = null; // the previous model's may not exist in this one
  picker.refresh().catch((error) => showError(error.message));
}

// Differential privacy: the view controls' ε (empty: off) goes with /api/analyze and /api/attribute
// requests and into their cache keys, so a noised answer never stands in for an exact one or the reverse.
function privacy() {
  const input = $("dp-epsilon");
  if (input.validity.badInput) throw new Error(t("shell.dp.invalid"));
  return input.value.trim() === "" ? {} : { dp_epsilon: Number(input.value) };
}

const methods = new MethodControls({
  method: $("method"), unit: $("granularity"), options: $("method-options"), onChange: () => changeMethod(),
});
const picker = new ModelPicker({ state, methods, analyze: (options) => analyze(options), fail: (error) => fail(error) });

// A generation owns the analysed text (prompt + answer) until the next Analyze or Generate.
const generation = new Generation({
  view: () => ({ layer: state.layer, head: state.head, stack: state.stack }),
  showRow(query, weights, prediction, stack) { // a timeline step, drawn at once from the steps' rows
    if (!state.result || state.text !== generation.text || state.result.attention.stack !== stack) return;
    if (state.result.model.fingerprint !== generation.body.model.fingerprint) return; // never another model's rows
    state.query = query;
    state.result = { ...state.result, attention: { ...state.result.attention, query, weights }, prediction, dp: undefined };
    render();
  },
  analyzeAt(query) { // the views follow the step, unless they show an encoder (its queries are not steps)
    if (state.stack === "encoder") return null;
    state.query = query;
    return analyze();
  },
  methods: () => (state.catalogue ? state.catalogue.methods.filter((m) => m.explains_steps) : []),
  fail: (error) => fail(error),
});

const history = new History({ fail: (error) => fail(error) }); // stored runs, shown from their answers

const ctx = {
  state,
  render: () => render(),
  setQuery(index) { // a token of the views clicked: the step it produced, when the views show the steps' queries
    const keysAreQueries = !["encoder", "cross"].includes(state.stack);
    if (!(keysAreQueries && generation.followQuery(index))) { state.query = index; analyze(); }
  },
  selectHead(layer, head, view = "tokens") { // view: where the head opens (the model view and atlas: heatmap)
    state.layer = layer;
    state.head = head;
    selectView(view, { render: false }); // the analysis renders once, with the new head
    analyze();
  },
  showStep: (step) => generation.setStep(step, { show: false }), // the timeline at a step; the caller analyses
  showError, openRun: (id) => history.open(id), // a stored run shown in the History panel (the Corpus view)
  fail,
  unit: () => methods.unit(),
  title: (name) => methodTitle((state.catalogue && state.catalogue.methods.find((m) => m.name === name)) || { name, title: name }),
  // The answer of a request for the current model and text with these options: cached, or sent
  // (label: the busy line; progress: stream its progress, allow Cancel). null when the model or the
  // text changed while it ran (the caller shows nothing; the next render asks again).
  async cached(name, options, label, send, { progress = false } = {}) {
    const key = keyFor(options);
    const body = await cacheOf(name).fetch(key, () => track(label, send, { progress }));
    learnModel(body.model);
    return body.model && body.model.fingerprint === fingerprint() && key.text === state.text ? body : null;
  },
  peek: (name, options) => cacheOf(name).peek(keyFor(options)),
};

// ---- analysis ------------------------------------------------------------------------------------
function syncControls(result) {
  const { layers, heads, stacks } = result.view;
  $("stack-box").hidden = stacks.length < 2; // an encoder-decoder's encoder, decoder and cross stacks
  fillSelect($("stack"), stacks.map((s) => [s, t(`shell.stack.${s}`)]), result.attention.stack);
  state.stack = result.attention.stack;
  fillSelect($("layer"), [...Array(layers).keys()].map((l) => [l, t("shell.layer.n", { n: l })]), result.attention.layer);
  const headOptions = [["mean", t("shell.head.mean")], ["max", t("shell.head.max")],
    ...[...Array(heads).keys()].map((h) => [h, t("shell.head.n", { n: h })])];
  fillSelect($("head"), headOptions, result.attention.head);
  state.layer = result.attention.layer;
  state.head = result.attention.head;
  state.query = result.attention.query;
}

// Same model and text as an earlier answer: the tokens are known, the server leaves them out (not
// for a noised answer: it comes whole, with its own provenance).
async function requestAnalysis(text) {
  const dp = privacy();
  const send = (includeTokens) => track(t("shell.running"), (id) => postJSON("/api/analyze", {
    text, layer: state.layer, head: state.head, query: state.query, stack: state.stack ?? undefined, top_k: 10, progress_id: id,
    include_tokens: includeTokens, trace_id: generation.active ? generation.body.trace_id : undefined, ...dp,
  }), { progress: text.length > PROGRESS_MIN_CHARS });
  const asked = keyFor(dp, text);
  const known = dp.dp_epsilon === undefined ? caches.tokens.peek(asked) : undefined;
  let result = await send(!known);
  learnModel(result.model);
  if (!result.tokens && (!known || result.model.fingerprint !== asked.fingerprint)) result = await send(true);
  if (result.tokens) {
    const { tokens, target_tokens: targetTokens, provenance, pii } = result;
    caches.tokens.set(cacheKey(result.model.fingerprint, text, dp), { tokens, target_tokens: targetTokens, provenance, pii });
  } else {
    Object.assign(result, { tokens: known.tokens, provenance: known.provenance, pii: known.pii });
    if (known.target_tokens) result.target_tokens = known.target_tokens;
  }
  result.rawTokens = result.tokens; // render() shows them masked where personal data is (privacy.js)
  return result;
}

async function analyze({ fresh = false } = {}) {
  if (fresh) generation.clear();
  const text = generation.active ? generation.text : $("prompt").value;
  if (fresh) state.query = -1;
  showError("");
  $("analyze").disabled = true;
  try {
    if (fresh) learnModel((await getJSON("/api/model")).model); // another tab may have switched models
    const result = await requestAnalysis(text);
    state.result = result;
    state.text = text;
    syncControls(result);
    try {
      await loadAttribution();
    } catch (error) {
      state.attribution = null;
      fail(error, `${methods.current() ? ctx.title(methods.current().name) : t("shell.method.fallback")}: `);
    }
    await render();
    await generation.sync(); // the views' layer or head may have changed: the timeline follows
  } catch (error) {
    fail(error);
  } finally {
    $("analyze").disabled = false;
    count("analyses"); // completed analyses, successful or not: lets tests (and other tools) wait
  }
}

async function generate() {
  showError("");
  const max = Number($("max-new-tokens").value);
  if (!Number.isInteger(max) || max < 1 || max > 8192) {
    showError(t("shell.new_tokens.invalid"));
    return;
  }
  $("generate").disabled = true;
  $("analyze").disabled = true;
  $("model-select").disabled = true; // the generation is this model's: no switch while it runs
  try {
    if (privacy().dp_epsilon !== undefined) throw new Error(t("shell.generate.no_dp"));
    learnModel((await getJSON("/api/model")).model);
    if (state.model && state.model.kind === "masked") {
      throw new Error(t("shell.generate.masked", { name: state.model.name }));
    }
    const body = await generation.run({
      text: $("prompt").value, maxNewTokens: max, chat: $("chat").checked, decoding: decodingSettings(),
    });
    if (body) learnModel(body.model);
  } catch (error) {
    generation.clear();
    fail(error);
  } finally {
    $("generate").disabled = false;
    $("analyze").disabled = false;
    $("model-select").disabled = false;
    count("generations");
  }
}

// ---- the chosen method's scores colour the token strip --------------------------------------------
function attributionRequest() { // what the controls ask for (throws on an invalid option)
  const spec = methods.current();
  if (!spec || !state.result) return null;
  const options = {
    method: spec.name, granularity: methods.unit(), query: state.result.attention.query, options: methods.options(),
    ...methods.target(), ...privacy(),
  };
  return { spec, options };
}

async function loadAttribution() {
  const wanted = attributionRequest();
  if (!wanted) { state.attribution = null; return; }
  const { spec, options } = wanted;
  if (state.attribution && sameKey(state.attribution.key, keyFor(options))) return;
  const text = state.text;
  const body = await caches.attribution.fetch(keyFor(options), () => track(spec.title,
    (id) => postJSON("/api/attribute", { text, ...options, progress_id: id }),
    { progress: spec.slow || text.length > PROGRESS_MIN_CHARS }));
  learnModel(body.model);
  if (text === state.text) state.attribution = { key: keyFor(options), body, spec };
}

async function changeMethod() {
  if (!state.result) return;
  showError("");
  const previous = state.attribution;
  try {
    await loadAttribution();
  } catch (error) {
    state.attribution = error instanceof Cancelled ? previous : null;
    if (error instanceof Cancelled) { // back to what the strip shows
      methods.choose(previous ? previous.spec.name : "", previous ? previous.body.granularity : methods.unit());
      if (previous) methods.setOptions(previous.body.options);
    }
    fail(error);
  }
  await render();
  count("attributions");
}

function currentAttribution() {
  try {
    const wanted = attributionRequest();
    return wanted && state.attribution && sameKey(state.attribution.key, keyFor(wanted.options)) ? state.attribution : null;
  } catch (_) {
    return null; // an option being edited is not valid yet
  }
}

// ---- the registry loop -----------------------------------------------------------------------------
const viewOf = (id) => VIEWS.find((v) => v.id === id);

async function render() {
  if (!state.result) return;
  hideTip();
  state.generated = generation.active && state.text === generation.text; // the views show a generation
  if (state.result.rawTokens) state.result.tokens = masked(state.result.rawTokens, state.result.pii);
  state.attribution = currentAttribution();
  const view = viewOf(state.view);
  $("export-png").disabled = !view.exportPNG;
  renderPanels(state.result, state.display);
  const section = $(`view-${view.id}`);
  section.querySelector(".dp-off")?.remove();
  [...section.children].forEach((child) => { child.hidden = Boolean(state.result.dp) && view.id !== "tokens"; });
  try {
    if (state.result.dp && view.id !== "tokens") { // the other views read exact arrays: not released under DP
      section.append(el("p", { className: "legend dp-off", testid: "dp-view-off" }, t("shell.dp_off")));
    } else await view.update(state, ctx);
  } catch (error) {
    fail(error);
  }
  for (const other of VIEWS) other.follow?.(state, ctx); // views that act on every analysis, shown or not (Rules)
  count("renders");
}

const mounted = new Set();

function selectView(id, { render: andRender = true } = {}) {
  state.view = id;
  if (!mounted.has(id)) { // a view builds its DOM when first shown (the page's DOM stays small)
    viewOf(id).mount($(`view-${id}`), ctx);
    mounted.add(id);
  }
  for (const view of VIEWS) {
    $(`view-${view.id}`).hidden = view.id !== id;
    $(`tab-${view.id}`).setAttribute("aria-selected", String(view.id === id));
  }
  if (andRender) render();
}

function buildViews() {
  for (const view of VIEWS) {
    const tab = el("button", { type: "button", id: `tab-${view.id}`, dataset: { view: view.id } }, view.title);
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-selected", String(view.id === state.view));
    tab.addEventListener("click", () => selectView(view.id));
    const section = el("section", { className: "view", id: `view-${view.id}`, hidden: view.id !== state.view });
    if (view.testid) section.setAttribute("data-testid", view.testid);
    $("tabs").append(tab);
    $("views").append(section);
  }
  selectView(state.view, { render: false });
}

function exportPNG() { // the page's own canvas; the menu of export.js asks the server for figures
  const view = viewOf(state.view);
  const canvas = state.result && view.exportPNG ? view.exportPNG() : null;
  if (canvas) download(`attnscope-${view.id}.png`, canvas.toDataURL("image/png"));
}

function exportJSON() {
  if (!state.result) return;
  const view = viewOf(state.view);
  const { name, data } = (view.exportData && view.exportData()) || { name: "attnscope-analysis.json", data: state.result };
  download(name, URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" })));
}

// ---- wiring ----------------------------------------------------------------------------------------
function wire() {
  $("analyze").addEventListener("click", () => analyze({ fresh: true }));
  $("generate").addEventListener("click", generate);
  wireDecoding();
  wireDocuments({ prompt: $("prompt"), showError });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!$("generate").disabled) analyze({ fresh: true }); // not while a generation runs
    }
  });
  $("layer").addEventListener("change", () => { state.layer = Number($("layer").value); analyze(); });
  $("stack").addEventListener("change", () => { // the encoder's layers and queries are not the decoder's
    const encoder = (stack) => stack === "encoder";
    if (encoder(state.stack) !== encoder($("stack").value)) { state.layer = -1; state.query = -1; }
    state.stack = $("stack").value;
    if (generation.active && !encoder(state.stack)) state.query = generation.steps[generation.step].position - 1;
    analyze();
  });
  $("head").addEventListener("change", () => {
    const v = $("head").value;
    state.head = v === "mean" || v === "max" ? v : Number(v);
    analyze();
  });
  const display = () => {
    state.display = { scale: $("scale").value, excludeSpecial: $("exclude-special").checked,
      excludeFirst: $("exclude-first").checked, hideSpecial: $("hide-special").checked };
    render();
  };
  for (const id of ["scale", "exclude-special", "exclude-first", "hide-special"]) $(id).addEventListener("change", display);
  $("reveal-pii").addEventListener("change", () => { generation.remask(); render(); });
  display(); // controls a reload kept
  $("export-png").addEventListener("click", exportPNG);
  $("export-json").addEventListener("click", exportJSON);
  wireExport({ state: () => state, fail, generation: () => (generation.active ? generation.raw : null) }); // export.js: the server's figures
  wireReport({ text: () => state.text, privacy, fail, objective: () => methods.target() });
  $("model-select").addEventListener("change", () => picker.switch());
}

async function start() {
  buildViews();
  wire();
  wireDesign(ctx); // theme, palette, keyboard (design.js, keys.js)
  wireLanguage({ views: VIEWS, mounted, ctx, relabel: () => { if (state.result) syncControls(state.result); methods.relabel(); history.relabel(); generation.relabel(); } });
  try {
    state.catalogue = await getJSON("/api/methods");
    history.fillMethods(state.catalogue);
    await picker.refresh();
  } catch (error) {
    showError(error.message);
  }
  document.body.dataset.ready = "1";
}

start();
