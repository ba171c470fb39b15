// attnscope front end: one page, no build step, no network beyond its own server.
import { getArray, getJSON, postJSON } from "./api.js";
import { drawGridRow, drawHeatmap, drawLines, gridToCanvas, tokensToCanvas } from "./draw.js";
import {
  attributionColours, METRIC_TITLES, parseParts, renderAgreement, renderHeadMetrics, renderParts, suggestParts, table,
} from "./panels.js";
import { TiledHeatmap } from "./tiles.js";
import { mountVirtualStrip, unmountVirtualStrip } from "./virtual.js";
import { displayWeights } from "./weights.js";

// Maps up to this many cells are fetched whole (float16) and drawn one pixel per cell; larger ones
// are drawn from tiles, zoomable and pannable.
const FULL_MATRIX_CELLS = 512 * 512;
let tiled = null;
// Token strips longer than this are virtualised (only the blocks near the visible part are mounted).
const VIRTUAL_MIN_TOKENS = 1500;
const MAX_TABLE_ROWS = 100; // tokenization table rows shown (the DOM stays bounded)

const $ = (id) => document.getElementById(id);
const state = {
  result: null, // the last /api/analyze answer
  text: null, // the text that result belongs to
  layer: -1, head: "mean", query: -1,
  view: "tokens",
  heatmap: null, // {n, values} for hover read-out
  attribution: null, // the last /api/attribute answer, {key, body}, when the token strip shows a method
  metrics: null, // {text, body} of /api/heads
};

const attributionKey = () => `${state.text}\u0000${$("method").value}\u0000${$("granularity").value}`;

const quoted = (s) => JSON.stringify(s);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy) {
  $("analyze").disabled = busy;
  $("busy").hidden = !busy;
  document.body.dataset.busy = busy ? "1" : "0";
}

function fillSelect(select, options, value) {
  select.replaceChildren(...options.map(([v, label]) => new Option(label, String(v))));
  select.value = String(value);
}

function syncControls(result) {
  const { layers, heads } = result.view;
  fillSelect($("layer"), [...Array(layers).keys()].map((l) => [l, `layer ${l}`]), result.attention.layer);
  const headOptions = [["mean", "mean of heads"], ["max", "max over heads"],
    ...[...Array(heads).keys()].map((h) => [h, `head ${h}`])];
  fillSelect($("head"), headOptions, result.attention.head);
  state.layer = result.attention.layer;
  state.head = result.attention.head;
  state.query = result.attention.query;
}

async function analyze({ fresh = false } = {}) {
  const text = $("prompt").value;
  if (fresh) { state.query = -1; }
  showError("");
  setBusy(true);
  const progress = text.length > PROGRESS_MIN_CHARS ? followProgress() : null;
  const previous = state.result && state.text === text ? state.result : null; // same text: tokens are known
  try {
    const result = await postJSON("/api/analyze", {
      text, layer: state.layer, head: state.head, query: state.query, top_k: 10,
      progress_id: progress ? progress.id : null, include_tokens: previous === null,
    });
    if (previous) {
      result.tokens = previous.tokens;
      result.provenance = previous.provenance;
      if (previous.target_tokens) result.target_tokens = previous.target_tokens;
    }
    state.result = result;
    state.text = text;
    syncControls(result);
    try {
      await loadAttribution();
    } catch (error) {
      state.attribution = null;
      showError(`${$("method").value}: ${error.message}`);
    }
    render();
  } catch (error) {
    showError(error.message);
  } finally {
    if (progress) progress.close();
    setBusy(false);
    // completed analyses, successful or not: lets tests (and other tools) wait for the page
    document.body.dataset.analyses = String(Number(document.body.dataset.analyses || 0) + 1);
  }
}

// Long texts: forward-pass progress streamed by the server (server-sent events) into the busy line.
const PROGRESS_MIN_CHARS = 4000;
function followProgress() {
  const id = (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`).replace(/[^\w-]/g, "");
  const source = new EventSource(`/api/progress/${id}`);
  source.onmessage = (event) => {
    const { done, total, finished } = JSON.parse(event.data);
    if (total) $("busy").textContent = `running the model… layer ${done} of ${total}`;
    if (finished) source.close();
  };
  return { id, close: () => { source.close(); $("busy").textContent = "running the model…"; } };
}

// ---- attribution methods colour the token strip ------------------------------------------------
async function loadAttribution() {
  const method = $("method").value;
  if (method === "attention" || !state.result) { state.attribution = null; return; }
  if (state.attribution && state.attribution.key === attributionKey()) return;
  const body = await postJSON("/api/attribute", {
    text: state.text, method, granularity: $("granularity").value,
    query: method === "attention" ? -1 : state.result.attention.query,
  });
  state.attribution = { key: attributionKey(), body };
}

async function changeMethod() {
  if (!state.result) return;
  showError("");
  setBusy(true);
  try {
    await loadAttribution();
  } catch (error) {
    state.attribution = null;
    showError(error.message);
  } finally {
    setBusy(false);
  }
  render();
  document.body.dataset.attributions = String(Number(document.body.dataset.attributions || 0) + 1);
}

// ---- token view ------------------------------------------------------------------------------
function keyTokens(result) {
  return result.attention.stack === "decoder" && result.target_tokens ? result.target_tokens : result.tokens;
}

function renderTokens() {
  const result = state.result;
  const strip = $("strip");
  const tokens = keyTokens(result);
  const excludeSpecial = $("exclude-special").checked;
  const scale = $("scale").value;
  const { weights, colours } = displayWeights(result.attention.weights, tokens, { excludeSpecial, scale });
  const attribution = state.attribution && state.attribution.key === attributionKey() && tokens === result.tokens
    ? state.attribution.body : null;
  const method = attribution ? attributionColours(attribution.token_scores) : null;
  if (attribution) {
    const details = attribution.details || {};
    const extra = details.delta !== undefined ? ` Completeness delta ${Number(details.delta).toFixed(4)} (${details.steps} steps).` : "";
    $("legend").textContent =
      `${attribution.method} scores per ${attribution.granularity} for the prediction ` +
      `${JSON.stringify(attribution.target.text)} after token ${attribution.query}: red positive, teal negative, ` +
      `colour = |score| ÷ the largest |score| (display scaling; hover for raw scores).${extra}`;
  } else $("legend").textContent =
    `Red: attention from token ${result.attention.query} in layer ${result.attention.layer}, ` +
    `${typeof result.attention.head === "number" ? `head ${result.attention.head}` : `${result.attention.head} of heads`}` +
    ` (${excludeSpecial ? "renormalised without special tokens" : "raw softmax probabilities"}` +
    `${scale === "minmax" ? ", colour min–max scaled" : ""}).` +
    (result.prediction ? " Blue: the predicted next token." : " This model has no next-token head.");
  strip.classList.toggle("hide-special", $("hide-special").checked);
  // gaps between token spans are text no token covers (e.g. spaces a WordPiece tokenizer drops);
  // decoder-side target tokens of an encoder-decoder have spans into the target, so no gaps there
  const text = tokens === result.tokens ? result.text : "";
  const cursorBefore = new Int32Array(tokens.length); // end of the text covered before each token
  let cursor = 0;
  tokens.forEach((token, index) => {
    cursorBefore[index] = cursor;
    if (token.end !== null) cursor = token.end;
  });
  const tail = [];
  if (text && cursor < text.length) {
    const rest = document.createElement("span");
    rest.className = "gap";
    rest.textContent = text.slice(cursor);
    tail.push(rest);
  }
  if (result.prediction) tail.push(...predictionNodes(result));

  const makeNodes = (index) => {
    const token = tokens[index];
    const nodes = [];
    if (text && token.start !== null && token.start > cursorBefore[index]) {
      const gap = document.createElement("span");
      gap.className = "gap";
      gap.textContent = text.slice(cursorBefore[index], token.start);
      nodes.push(gap);
    }
    const span = document.createElement("span");
    span.className = "tok";
    span.dataset.testid = "token";
    span.setAttribute("data-testid", "token");
    span.dataset.tokenIndex = String(index);
    span.dataset.weight = String(weights[index]);
    span.style.setProperty("--a", (method ? method[index].strength : colours[index]).toFixed(4));
    if (method) {
      span.dataset.score = String(method[index].score);
      if (method[index].negative) span.classList.add("neg");
    }
    if (token.special) span.classList.add("special");
    if (index === result.attention.query) span.classList.add("query");
    if (!token.special && token.start === token.end) span.classList.add("empty");
    appendText(span, token.text);
    span.addEventListener("mouseenter", (event) => showTokenTip(event, token, weights[index],
      method ? [attribution.method, method[index].score] : null));
    span.addEventListener("mouseleave", hideTip);
    span.addEventListener("click", () => { state.query = index; analyze(); });
    nodes.push(span);
    return nodes;
  };
  if (tokens.length > VIRTUAL_MIN_TOKENS) {
    mountVirtualStrip(strip, tokens.length, makeNodes, tail);
    return;
  }
  unmountVirtualStrip(strip);
  const nodes = [];
  for (let index = 0; index < tokens.length; index++) nodes.push(...makeNodes(index));
  strip.replaceChildren(...nodes, ...tail);
}

function appendText(span, text) {
  const parts = text.split("\n");
  parts.forEach((part, i) => {
    if (part) span.append(document.createTextNode(part));
    if (i < parts.length - 1) {
      const mark = document.createElement("span");
      mark.className = "nl";
      mark.textContent = "↵";
      span.append(mark, document.createTextNode("\n"));
    }
  });
}

function predictionNodes(result) {
  const top = result.prediction.top;
  const link = document.createElement("span");
  link.className = "link";
  link.title = "the red weights of the query token feed this prediction";
  link.textContent = result.prediction.position === keyTokens(result).length - 1 ? "⟶" : `⟶ after token ${result.prediction.position}:`;
  const span = document.createElement("span");
  span.className = "prediction";
  span.setAttribute("data-testid", "prediction");
  span.dataset.token = top[0].token;
  span.dataset.prob = String(top[0].prob);
  span.dataset.tokenId = String(top[0].id);
  span.append(document.createTextNode(top[0].token));
  const p = document.createElement("span");
  p.className = "p";
  p.textContent = `${(top[0].prob * 100).toFixed(1)}%`;
  span.append(p);
  span.addEventListener("mouseenter", (event) => showCandidates(event, top));
  span.addEventListener("mouseleave", hideTip);
  return [link, span];
}

function placeTip(event) {
  const tip = $("tooltip");
  tip.hidden = false;
  const x = Math.min(event.clientX + 12, window.innerWidth - tip.offsetWidth - 8);
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${event.clientY + 16}px`;
}

function showTokenTip(event, token, weight, methodScore) {
  const tip = $("tooltip");
  const span = token.start === null ? "inserted by the tokenizer"
    : token.start === token.end ? `continues the character before position ${token.start} (byte-level piece)`
      : `characters [${token.start}, ${token.end})`;
  tip.replaceChildren();
  const rows = [["token", quoted(token.text)], ["id", String(token.id)], ["span", span],
    ["attention weight", String(weight)], ["special", token.special ? "yes" : "no"]];
  if (methodScore) rows.push([`${methodScore[0]} score`, methodScore[1] === null ? "—" : String(methodScore[1])]);
  tip.append(table(rows));
  placeTip(event);
}

function showCandidates(event, top) {
  const tip = $("tooltip");
  const list = document.createElement("table");
  list.setAttribute("data-testid", "candidates");
  top.forEach((candidate, rank) => {
    const row = list.insertRow();
    row.setAttribute("data-testid", "candidate");
    row.dataset.prob = String(candidate.prob);
    row.dataset.token = candidate.token;
    row.insertCell().textContent = String(rank + 1);
    row.insertCell().textContent = quoted(candidate.token);
    row.insertCell().textContent = candidate.prob.toFixed(4);
    const barCell = row.insertCell();
    barCell.className = "barcell";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, candidate.prob * 120)}px`;
    barCell.append(bar);
  });
  const caption = document.createElement("div");
  caption.className = "muted";
  caption.textContent = "top-10 next tokens (raw softmax probabilities)";
  tip.replaceChildren(caption, list);
  placeTip(event);
}

function hideTip() { $("tooltip").hidden = true; }

// ---- panels ----------------------------------------------------------------------------------
function renderPanels() {
  const result = state.result;
  const m = result.model;
  const specials = Object.entries(m.special_tokens || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  $("model-info").replaceChildren(table([
    ["model", m.name], ["spec", m.spec], ["kind", m.kind], ["layers", String(m.layers)],
    ["heads", String(m.heads)], ["KV heads", String(m.kv_heads)], ["head dim", String(m.head_dim)],
    ["vocab size", String(m.vocab_size)], ["context", String(m.max_positions ?? "—")],
    ["sliding window", String(m.sliding_window ?? "—")], ["tokenizer", m.tokenizer],
    ["special tokens", specials || "—"], ["weights SHA-256", m.weights_sha256 || "—"],
    ["dtype / device", `${m.dtype} / ${m.device}`], ["backend", result.provenance.backend],
  ]));
  const tokens = keyTokens(result);
  const shown = tokens.slice(0, MAX_TABLE_ROWS);
  const rows = shown.map((t, i) => [String(i), quoted(t.text), String(t.id),
    t.start === null ? "—" : `[${t.start}, ${t.end})`, t.special ? "special" : ""]);
  const wrap = document.createElement("div");
  wrap.className = "tokenization";
  wrap.append(table(rows, ["#", "token", "id", "span", ""]));
  if (tokens.length > shown.length) {
    const more = document.createElement("p");
    more.className = "muted";
    more.textContent = `first ${shown.length} of ${tokens.length} tokens (the JSON export has all of them)`;
    wrap.append(more);
  }
  $("tokenization").replaceChildren(wrap);
  // computed by the library (attnscope.analysis.stats), the same numbers as the CLI's JSON
  const excluded = $("exclude-special").checked;
  const stats = excluded ? result.stats.without_special : result.stats.raw;
  const top = tokens[stats.argmax];
  const statsTable = table([
    ["sum", stats.sum.toFixed(6)],
    ["max", `${stats.max.toFixed(6)} on token ${stats.argmax} ${quoted(top ? top.text : "")}`],
    ["entropy", `${stats.entropy_nats.toFixed(4)} nats (${(stats.entropy_nats / Math.LN2).toFixed(4)} bits)`],
    ["tokens holding 90%", String(stats.mass90_tokens)],
  ]);
  statsTable.dataset.basis = excluded ? "without_special" : "raw";
  $("stats").replaceChildren(statsTable);
}

// ---- other views -----------------------------------------------------------------------------
function queryTokensOf(r) {
  return r.attention.stack === "encoder" ? r.tokens : (r.target_tokens || r.tokens);
}

let hoverTimer = null;
function tiledHover(cell) {
  clearTimeout(hoverTimer);
  hoverTimer = setTimeout(async () => {
    const r = state.result;
    const { values } = await getArray(`/api/traces/${r.trace_id}/row?layer=${r.attention.layer}` +
      `&head=${r.attention.head}&query=${cell.row}&stack=${r.attention.stack}`);
    const keys = keyTokens(r);
    $("heatmap-readout").textContent = `query ${cell.row} ${quoted(queryTokensOf(r)[cell.row].text)} → key ` +
      `${cell.col} ${quoted(keys[cell.col].text)}: ${values[cell.col]}`;
  }, 60);
}

async function renderTiledHeatmap() {
  const r = state.result;
  state.heatmap = null;
  if (!tiled) {
    tiled = new TiledHeatmap($("heatmap"), {
      onHover: tiledHover,
      onClick: (cell) => { state.query = cell.row; analyze(); },
    });
  }
  const params = `layer=${r.attention.layer}&head=${r.attention.head}&stack=${r.attention.stack}`;
  const pyramid = await getJSON(`/api/traces/${r.trace_id}/pyramid?${params}`);
  const divisor = $("scale").value === "minmax" ? pyramid.max : 1;
  tiled.open({
    base: `/api/traces/${r.trace_id}/tile?${params}`, pyramid, divisor, query: r.attention.query,
    width: Math.max(320, $("view-heatmap").clientWidth - 4),
  });
  $("heatmap-mode").textContent = `${pyramid.shape[0]} × ${pyramid.shape[1]} map in ${pyramid.levels} zoom levels ` +
    "of 256 × 256 tiles (coarser levels show the maximum of each block). Scroll to zoom, drag to pan.";
}

async function renderHeatmap() {
  const r = state.result;
  const head = r.attention.head;
  if (queryTokensOf(r).length * keyTokens(r).length > FULL_MATRIX_CELLS) {
    await renderTiledHeatmap();
    return;
  }
  if (tiled) tiled.close();
  $("heatmap-mode").textContent = "";
  const { header, values } = await getArray(
    `/api/traces/${r.trace_id}/matrix?layer=${r.attention.layer}&head=${head}&stack=${r.attention.stack}&encoding=float16`);
  const [rows, cols] = header.shape;
  state.heatmap = { rows, cols, values };
  drawHeatmap($("heatmap"), values, rows, cols, { scale: $("scale").value, query: r.attention.query });
}

async function renderGrid() {
  const r = state.result;
  const { header, values } = await getArray(
    `/api/traces/${r.trace_id}/grid?query=${r.attention.query}&stack=${r.attention.stack}`);
  const [layers, heads, keys] = header.shape;
  state.grid = { header, values };
  const grid = $("head-grid");
  grid.style.gridTemplateColumns = `repeat(${heads}, minmax(40px, 1fr))`;
  const figures = [];
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const figure = document.createElement("figure");
      figure.setAttribute("data-testid", "grid-cell");
      figure.dataset.layer = String(header.layers[l]);
      figure.dataset.head = String(h);
      if (header.layers[l] === r.attention.layer && h === r.attention.head) figure.classList.add("selected");
      const canvas = document.createElement("canvas");
      const row = values.subarray((l * heads + h) * keys, (l * heads + h + 1) * keys);
      drawGridRow(canvas, row, $("scale").value);
      const caption = document.createElement("figcaption");
      caption.textContent = `L${header.layers[l]} H${h}`;
      figure.append(canvas, caption);
      figure.addEventListener("click", () => {
        state.layer = header.layers[l];
        state.head = h;
        selectView("tokens", { render: false }); // the analysis below renders once, with the new head
        analyze();
      });
      figures.push(figure);
    }
  }
  grid.replaceChildren(...figures);
}

function renderLines() {
  const r = state.result;
  const tokens = keyTokens(r);
  const queryTokens = r.attention.stack === "encoder" ? r.tokens : (r.target_tokens || r.tokens);
  drawLines($("lines"), queryTokens[r.attention.query], tokens, r.attention.weights);
}

async function render() {
  if (!state.result) return;
  hideTip();
  renderTokens();
  renderPanels();
  try {
    if (state.view === "heatmap") await renderHeatmap();
    if (state.view === "grid") await renderGrid();
    if (state.view === "lines") renderLines();
    if (state.view === "metrics") await renderMetrics();
    if (state.view === "parts") prepareParts();
  } catch (error) {
    showError(error.message);
  }
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
}

function selectView(view, { render: andRender = true } = {}) {
  state.view = view;
  document.querySelectorAll(".tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === view)));
  for (const name of ["tokens", "heatmap", "grid", "lines", "metrics", "agreement", "parts"]) {
    $(`view-${name}`).hidden = name !== view;
  }
  if (andRender) render();
}

// ---- head metrics, agreement, prompt parts -------------------------------------------------
async function renderMetrics() {
  if (!state.metrics || state.metrics.text !== state.text) {
    state.metrics = { text: state.text, body: await postJSON("/api/heads", { text: state.text }) };
  }
  const data = state.metrics.body;
  const select = $("metric");
  const names = Object.keys(data.metrics);
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    fillSelect(select, names.map((n) => [n, METRIC_TITLES[n] || n]), names.includes(select.value) ? select.value : "entropy");
  }
  renderHeadMetrics($("head-metrics"), data, select.value, (text) => { $("metric-readout").textContent = text; });
}

async function runAgreement() {
  if (!state.result) return;
  showError("");
  setBusy(true);
  try {
    const body = await postJSON("/api/agreement", { text: state.text, granularity: $("granularity").value });
    renderAgreement($("agreement"), body);
  } catch (error) {
    showError(error.message);
  } finally {
    setBusy(false);
    document.body.dataset.agreements = String(Number(document.body.dataset.agreements || 0) + 1);
  }
}

function prepareParts() {
  const input = $("parts-input");
  if (input.dataset.forText !== state.text) {
    input.value = suggestParts(state.text);
    input.dataset.forText = state.text;
  }
  refreshPartQueries();
}

function refreshPartQueries() {
  const select = $("parts-query");
  let names = [];
  try { names = parseParts(state.text, $("parts-input").value).map((p) => p.name); } catch (_) { /* shown on run */ }
  const current = select.value;
  fillSelect(select, [["", "the query token"], ...names.map((n) => [n, `part ${n}`])], names.includes(current) ? current : "");
}

async function runParts() {
  if (!state.result) return;
  showError("");
  try {
    const parts = parseParts(state.text, $("parts-input").value);
    const query = $("parts-query").value || state.result.attention.query;
    const body = await postJSON("/api/parts", { text: state.text, parts, query });
    renderParts($("parts"), body);
  } catch (error) {
    showError(error.message);
  } finally {
    document.body.dataset.partRuns = String(Number(document.body.dataset.partRuns || 0) + 1);
  }
}

// ---- heatmap hover and click -----------------------------------------------------------------
function heatmapCell(event) {
  const canvas = $("heatmap");
  const rect = canvas.getBoundingClientRect();
  const h = state.heatmap;
  if (!h) return null;
  const col = Math.floor(((event.clientX - rect.left) / rect.width) * h.cols);
  const row = Math.floor(((event.clientY - rect.top) / rect.height) * h.rows);
  if (row < 0 || col < 0 || row >= h.rows || col >= h.cols) return null;
  return { row, col, value: h.values[row * h.cols + col] };
}

function wireHeatmap() {
  const canvas = $("heatmap");
  canvas.addEventListener("mousemove", (event) => {
    const cell = heatmapCell(event);
    if (!cell) return;
    const r = state.result;
    const keys = keyTokens(r);
    const queries = r.attention.stack === "encoder" ? r.tokens : (r.target_tokens || r.tokens);
    $("heatmap-readout").textContent =
      `query ${cell.row} ${quoted(queries[cell.row].text)} → key ${cell.col} ${quoted(keys[cell.col].text)}: ${cell.value}`;
    drawHeatmap(canvas, state.heatmap.values, state.heatmap.rows, state.heatmap.cols,
      { scale: $("scale").value, query: r.attention.query, highlight: cell });
  });
  canvas.addEventListener("click", (event) => {
    const cell = heatmapCell(event);
    if (cell) { state.query = cell.row; analyze(); }
  });
}

// ---- export ----------------------------------------------------------------------------------
function download(name, url) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

function exportPNG() {
  if (!state.result) return;
  let canvas;
  if (state.view === "heatmap") canvas = $("heatmap");
  else if (state.view === "lines") canvas = $("lines");
  else if (state.view === "grid" && state.grid) canvas = gridToCanvas(state.grid.header, state.grid.values, $("scale").value);
  else {
    const r = state.result;
    const tokens = keyTokens(r);
    const { colours } = displayWeights(r.attention.weights, tokens,
      { excludeSpecial: $("exclude-special").checked, scale: $("scale").value });
    canvas = tokensToCanvas(tokens, colours, r.prediction ? r.prediction.top[0] : null);
  }
  download(`attnscope-${state.view}.png`, canvas.toDataURL("image/png"));
}

function exportJSON() {
  if (!state.result) return;
  const blob = new Blob([JSON.stringify(state.result, null, 2)], { type: "application/json" });
  download("attnscope-analysis.json", URL.createObjectURL(blob));
}

// ---- model picker ----------------------------------------------------------------------------
async function loadModelInfo() {
  const [info, models] = await Promise.all([getJSON("/api/model"), getJSON("/api/models")]);
  const installed = models.models.filter((m) => m.installed);
  const current = info.model ? info.model.spec : "";
  const options = installed.map((m) => [m.alias, `${m.alias} — ${m.title}`]);
  if (current && !options.some(([alias]) => alias === current)) options.unshift([current, current]);
  fillSelect($("model-select"), options, current);
  $("model-status").textContent = info.model ? `${info.model.name} · ${info.model.kind}` : info.message;
}

async function switchModel() {
  const spec = $("model-select").value;
  $("model-status").textContent = `loading ${spec}…`;
  setBusy(true);
  try {
    await postJSON("/api/model", { spec });
    state.result = null;
    state.attribution = null; // both were computed by the previous model
    state.metrics = null;
    state.layer = -1; state.head = "mean"; state.query = -1;
    await loadModelInfo();
    setBusy(false);
    await analyze({ fresh: true });
  } catch (error) {
    showError(error.message);
    await loadModelInfo();
  } finally {
    setBusy(false);
  }
}

function wire() {
  $("analyze").addEventListener("click", () => analyze({ fresh: true }));
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      analyze({ fresh: true });
    }
  });
  $("layer").addEventListener("change", () => { state.layer = Number($("layer").value); analyze(); });
  $("head").addEventListener("change", () => {
    const v = $("head").value;
    state.head = v === "mean" || v === "max" ? v : Number(v);
    analyze();
  });
  for (const id of ["scale", "exclude-special", "hide-special"]) $(id).addEventListener("change", render);
  $("method").addEventListener("change", changeMethod);
  $("granularity").addEventListener("change", changeMethod);
  $("metric").addEventListener("change", render);
  $("agreement-run").addEventListener("click", runAgreement);
  $("parts-run").addEventListener("click", runParts);
  $("parts-input").addEventListener("input", refreshPartQueries);
  document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => selectView(b.dataset.view)));
  $("export-png").addEventListener("click", exportPNG);
  $("export-json").addEventListener("click", exportJSON);
  $("model-select").addEventListener("change", switchModel);
  wireHeatmap();
}

wire();
loadModelInfo().catch((error) => showError(error.message));
document.body.dataset.ready = "1";
