// The corpus atlas (attnscope batch; served with attnscope serve --atlas FOLDER): pick an atlas; a
// layers × heads grid coloured by one metric's corpus mean (GET /api/corpus/{name}); click a head for
// that metric's distribution over the corpus (histogram with quantile marks) and the prompts where the
// head is most unusual by robust z (GET .../heads/{layer}/{head}); click a prompt to open its stored run
// in History, or, without one, to analyse its text on the atlas's model. Needs no current analysis:
// the view draws itself when mounted.
import { getJSON } from "../api.js";
import { $, count, el, fillSelect, scaleLegend, tokenChip } from "../dom.js";
import { sizeCanvas, textWidth } from "../draw.js";
import { format, formatProb } from "../format.js";
import { t } from "../i18n.js";
import { metricTitle } from "../locales/views.js";
import { ATTENTION, PREDICTION, colourBar, css as rgba, sequential } from "../palette.js";
import "../locales/corpus.js";

const CELL = 18; // CSS pixels per head in the grid
const HIST = { width: 520, height: 220, left: 56, right: 14, top: 22, bottom: 44 };
const QUANTILES = ["p05", "p25", "p50", "p75", "p95"];
const seen = { list: null, atlas: null, metric: null, head: null, prompt: null, note: "" }; // kept across re-mounts
let pending = null; // {spec, fingerprint}: a model switch this view asked for, checked when it has happened

const cssVar = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
const title = (metric) => metricTitle(metric, ((seen.atlas && seen.atlas.atlas.titles) || {})[metric]);
const url = (...parts) => `/api/corpus/${parts.map(encodeURIComponent).join("/")}`;

function note(text) {
  seen.note = text;
  const box = $("corpus-note");
  if (box) box.textContent = text;
}

// ---- the atlas and its grid ----------------------------------------------------------------------------
async function loadList(ctx) {
  try {
    seen.list = await getJSON("/api/corpus");
  } catch (error) {
    ctx.showError(error.message);
    return;
  } finally {
    count("corpusLists");
  }
  const names = seen.list.atlases.map((a) => a.name);
  $("corpus-empty").hidden = names.length > 0;
  $("corpus-body").hidden = names.length === 0;
  if (!names.length) return;
  const chosen = seen.atlas && names.includes(seen.atlas.atlas.name) ? seen.atlas.atlas.name : names[0];
  fillSelect($("corpus-atlas"), names.map((n) => [n, n]), chosen);
  await openAtlas(ctx, chosen);
}

async function openAtlas(ctx, name) {
  try {
    const body = await getJSON(url(name));
    if (!seen.atlas || seen.atlas.atlas.name !== name || seen.atlas.atlas.version !== body.atlas.version) seen.head = null;
    seen.atlas = body;
  } catch (error) {
    ctx.showError(error.message);
    return;
  } finally {
    count("corpusAtlases");
  }
  const metrics = seen.atlas.atlas.metrics;
  if (!metrics.includes(seen.metric)) seen.metric = metrics[0];
  fillSelect($("corpus-metric"), metrics.map((m) => [m, title(m)]), seen.metric);
  drawAtlas(ctx);
  if (seen.head) await openHead(ctx, seen.head.layer, seen.head.head);
}

function describe(atlas) {
  const model = atlas.model;
  return t(atlas.complete ? "corpus.facts" : "corpus.facts.partial", {
    prompts: atlas.prompts, shards: atlas.shards, model: model.name || model.spec, layers: model.num_layers,
    heads: model.num_heads, engine: atlas.engine || "—", updated: (atlas.updated || "").replace("T", " ").replace(/(\.\d+)?Z$/, ""),
  });
}

function drawAtlas(ctx) {
  const { atlas, grid } = seen.atlas;
  $("corpus-facts").textContent = describe(atlas);
  $("corpus-facts").dataset.complete = String(atlas.complete);
  const values = grid[seen.metric].mean; // (layers, heads), null where a head has no finite value
  const layers = values.length;
  const heads = layers ? values[0].length : 0;
  const flat = values.flat().filter((v) => v !== null);
  const low = flat.length ? Math.min(...flat) : 0;
  const high = flat.length ? Math.max(...flat) : 1;
  const canvas = $("corpus-canvas");
  const draw = sizeCanvas(canvas, heads * CELL, layers * CELL);
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const v = values[l][h];
      draw.fillStyle = v === null ? cssVar("--bg", "#ffffff") : rgba(sequential(high > low ? (v - low) / (high - low) : 0.5));
      draw.fillRect(h * CELL, l * CELL, CELL - 1, CELL - 1);
    }
  }
  if (seen.head) { // the chosen head outlined
    draw.strokeStyle = cssVar("--text", "#1f2328");
    draw.lineWidth = 2;
    draw.strokeRect(seen.head.head * CELL + 1, seen.head.layer * CELL + 1, CELL - 3, CELL - 3);
  }
  Object.assign(canvas.dataset, { metric: seen.metric, layers: String(layers), heads: String(heads), cell: String(CELL) });
  const tick = (axis, i) => el("span", { className: "tick", style: axis === "x" ? { left: `${(i + 0.5) * CELL}px` } : { top: `${(i + 0.5) * CELL}px` } }, String(i));
  const every = (n, step) => [...Array(n).keys()].filter((i) => i % step === 0);
  const step = (n) => (n > 40 ? 5 : n > 16 ? 2 : 1);
  $("corpus-ticks-x").replaceChildren(...every(heads, step(heads)).map((h) => tick("x", h)));
  $("corpus-ticks-y").replaceChildren(...every(layers, step(layers)).map((l) => tick("y", l)));
  $("corpus-key").replaceChildren(scaleLegend(colourBar(sequential), low, high, t("corpus.mean_of", { metric: title(seen.metric) })));
  count("corpusGrids");
}

function headAt(event) {
  const canvas = $("corpus-canvas");
  const rect = canvas.getBoundingClientRect();
  const head = Math.floor((event.clientX - rect.left) / CELL);
  const layer = Math.floor((event.clientY - rect.top) / CELL);
  const values = seen.atlas ? seen.atlas.grid[seen.metric].mean : [];
  return layer >= 0 && head >= 0 && layer < values.length && head < values[0].length ? { layer, head, value: values[layer][head] } : null;
}

// ---- one head: distribution and unusual prompts ------------------------------------------------------
async function openHead(ctx, layer, head) {
  const name = seen.atlas.atlas.name;
  try {
    const body = await getJSON(`${url(name, "heads", layer, head)}?${new URLSearchParams({ metric: seen.metric, top: "12" })}`);
    if (body.atlas.version !== seen.atlas.atlas.version) { await openAtlas(ctx, name); return; } // rewritten meanwhile
    seen.head = { layer, head, body };
  } catch (error) {
    ctx.showError(error.message);
    return;
  } finally {
    count("corpusHeads");
  }
  drawAtlas(ctx);
  drawHead();
}

function drawHead() {
  const { layer, head, body } = seen.head;
  const d = body.distribution;
  $("corpus-head").hidden = false;
  $("corpus-head-title").textContent = t("corpus.head_title", { layer, head, metric: title(body.metric), n: d.count });
  drawHistogram($("corpus-histogram"), d, title(body.metric));
  $("corpus-stats").textContent = t("corpus.stats", { mean: format(d.mean), std: format(d.std), min: format(d.min),
    p05: format(d.p05), p25: format(d.p25), p50: format(d.p50), p75: format(d.p75), p95: format(d.p95), max: format(d.max) }) +
    (d.source === "shards" ? ` ${t("corpus.partial_bins")}` : "");
  const robust = body.robust;
  $("corpus-robust").textContent = robust ? t(`corpus.robust.${robust.rule}`, { median: format(robust.median), mad: format(robust.mad), scale: format(robust.scale) }) : "";
  $("corpus-unusual").replaceChildren(...body.unusual.map((p) => unusualItem(p)));
}

function unusualItem(prompt) {
  const open = el("button", { type: "button", testid: "corpus-open" }, t(prompt.run_id ? "corpus.open_run" : "corpus.analyse"));
  const item = el("li", { className: "corpus-prompt", testid: "corpus-prompt",
    dataset: { index: String(prompt.prompt_index), value: String(prompt.value), z: String(prompt.z), runId: prompt.run_id || "" } },
  el("span", { className: "readout" }, t("corpus.item", { index: prompt.prompt_index, value: format(prompt.value), z: format(prompt.z) })), " ",
  el("span", { className: "run-text corpus-text", testid: "corpus-text", title: prompt.text }, prompt.text + (prompt.truncated ? "…" : "")), " ", open);
  open.addEventListener("click", () => openPrompt(seen.ctx, prompt.prompt_index));
  return item;
}

// Bars of the histogram over its edges, the quantiles p05 … p95 as dashed lines, both axes labelled.
function drawHistogram(canvas, d, metric) {
  const { width, height, left, right, top, bottom } = HIST;
  const draw = sizeCanvas(canvas, width, height);
  const counts = d.histogram.counts || [];
  const edges = d.histogram.edges || [];
  const ink = cssVar("--text", "#1f2328");
  const muted = cssVar("--muted", "#6b7280");
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const lo = edges.length ? edges[0] : 0;
  const hi = edges.length ? edges[edges.length - 1] : 1;
  const most = Math.max(1, ...counts);
  const x = (v) => left + ((v - lo) / (hi - lo || 1)) * plotW;
  const y = (c) => top + plotH - (c / most) * plotH;
  draw.fillStyle = rgba(ATTENTION, 0.75);
  counts.forEach((c, i) => { if (c > 0) draw.fillRect(x(edges[i]) + 0.5, y(c), Math.max(1, x(edges[i + 1]) - x(edges[i]) - 1), top + plotH - y(c)); });
  draw.strokeStyle = muted;
  draw.lineWidth = 1;
  draw.beginPath();
  draw.moveTo(left, top); draw.lineTo(left, top + plotH); draw.lineTo(left + plotW, top + plotH);
  draw.stroke();
  const font = (size) => `${size}px ${getComputedStyle(document.documentElement).fontFamily}`;
  draw.font = font(11);
  draw.fillStyle = ink;
  draw.textAlign = "center";
  draw.textBaseline = "top";
  for (const v of [lo, (lo + hi) / 2, hi]) draw.fillText(format(v), x(v), top + plotH + 4);
  draw.textAlign = "right";
  draw.textBaseline = "middle";
  for (const c of [0, Math.round(most / 2), most]) draw.fillText(String(c), left - 5, y(c));
  draw.textAlign = "center";
  draw.textBaseline = "bottom";
  draw.fillText(metric, left + plotW / 2, height - 2); // x axis title
  draw.save();
  draw.translate(12, top + plotH / 2);
  draw.rotate(-Math.PI / 2);
  draw.textBaseline = "middle";
  draw.fillText(t("corpus.prompts_axis"), 0, 0); // y axis title
  draw.restore();
  draw.strokeStyle = rgba(PREDICTION);
  draw.setLineDash([4, 3]);
  draw.font = font(10);
  draw.fillStyle = rgba(PREDICTION);
  draw.textBaseline = "bottom";
  let lastLabel = -Infinity;
  for (const name of QUANTILES) {
    if (d[name] === null || d[name] === undefined) continue;
    const at = x(d[name]);
    draw.beginPath(); draw.moveTo(at, top); draw.lineTo(at, top + plotH); draw.stroke();
    const label = name.replace("p0", "p");
    if (at - lastLabel > textWidth(label, 10) + 2) { draw.fillText(label, at, top - 2); lastLabel = at; }
  }
  draw.setLineDash([]);
  Object.assign(canvas.dataset, { counts: JSON.stringify(counts), edges: JSON.stringify(edges),
    quantiles: JSON.stringify(Object.fromEntries(QUANTILES.map((q) => [q, d[q]]))) });
}

// ---- one prompt: its stored run, or an analysis of its text on the atlas's model ---------------------
async function openPrompt(ctx, index) {
  const atlas = seen.atlas.atlas;
  ctx.showError("");
  try {
    const body = await getJSON(url(atlas.name, "prompts", index));
    seen.prompt = body.prompt;
    drawPrompt();
    await follow(ctx, body.prompt, atlas.model);
  } catch (error) {
    ctx.showError(error.message);
  } finally {
    count("corpusPrompts");
  }
}

function drawPrompt() {
  const p = seen.prompt;
  const top = p.top.slice(0, 5).map((c) => el("span", {}, tokenChip(c.token), ` ${formatProb(c.prob)} `));
  $("corpus-prompt").replaceChildren(
    el("p", {}, el("strong", {}, t("corpus.prompt_n", { index: p.prompt_index, id: p.prompt_id })), " ",
      el("span", { className: "muted" }, t("corpus.prompt_facts", { n: p.n_tokens, run: p.run_id || "—" }))),
    el("p", { className: "corpus-full-text", testid: "corpus-prompt-text" }, p.text),
    el("p", {}, t("corpus.predicted"), ...top),
    el("p", { id: "corpus-note", testid: "corpus-note", className: "legend" }, seen.note));
}

async function follow(ctx, prompt, model) {
  if (prompt.run_id) {
    try {
      await getJSON(`/api/runs/${encodeURIComponent(prompt.run_id)}`);
      if ($("history").hidden) $("history-button").click();
      await ctx.openRun(prompt.run_id);
      note(t("corpus.opened_run", { id: prompt.run_id }));
      $("stored-run").scrollIntoView({ block: "nearest" });
      return;
    } catch (_) {
      note(t("corpus.no_run", { id: prompt.run_id })); // not kept by this server: the text is analysed instead
    }
  } else note("");
  const loaded = (await getJSON("/api/model")).model;
  $("prompt").value = prompt.text;
  if (loaded && loaded.fingerprint === model.fingerprint) {
    note(`${seen.note} ${t("corpus.analysing", { model: loaded.name })}`.trim());
    $("tab-tokens").click();
    $("analyze").click();
    return;
  }
  if (loaded && loaded.spec === model.spec) { // the same name, other weights (another seed, version or file)
    note(`${seen.note} ${t("corpus.not_this_model", { spec: model.spec })}`.trim());
    return;
  }
  const select = $("model-select");
  if ([...select.options].some((o) => o.value === model.spec)) {
    pending = { spec: model.spec, fingerprint: model.fingerprint };
    note(`${seen.note} ${t("corpus.switching", { spec: model.spec })}`.trim());
    $("tab-tokens").click();
    select.value = model.spec;
    select.dispatchEvent(new Event("change")); // the picker loads it and analyses the prompt box
    return;
  }
  note(`${seen.note} ${t("corpus.other_model", { spec: model.spec, loaded: loaded ? loaded.spec : "—" })}`.trim());
}

export default {
  id: "corpus",
  testid: "corpus",
  get title() { return t("corpus.title"); },

  mount(root, ctx) {
    seen.ctx = ctx;
    const canvas = el("canvas", { id: "corpus-canvas", testid: "corpus-canvas" });
    root.append(el("div", {}, // one child: the shell shows and hides a view's children as a whole
      el("p", { className: "legend" }, t("corpus.legend")),
      el("p", { id: "corpus-empty", testid: "corpus-empty", className: "muted", hidden: true }, t("corpus.none")),
      el("div", { id: "corpus-body" },
        el("div", { className: "actions" },
          el("label", {}, t("corpus.atlas"), el("select", { id: "corpus-atlas", testid: "corpus-atlas" })),
          el("label", {}, t("corpus.metric"), el("select", { id: "corpus-metric", testid: "corpus-metric" })),
          el("span", { id: "corpus-readout", testid: "corpus-readout", className: "readout" }, t("corpus.hover"))),
        el("p", { id: "corpus-facts", testid: "corpus-facts", className: "muted" }),
        el("div", { className: "corpus-columns" },
          el("div", { className: "grid-chart" }, el("div", { className: "axis-title" }, t("corpus.head_axis")),
            el("div", { className: "grid-plot" }, el("div", { id: "corpus-ticks-x", className: "grid-ticks x" }),
              el("div", { id: "corpus-ticks-y", className: "grid-ticks y" }), canvas),
            el("div", { className: "axis-title" }, t("corpus.layer_axis")), el("p", { id: "corpus-key", testid: "corpus-key" })),
          el("div", { id: "corpus-head", testid: "corpus-head", hidden: true },
            el("p", {}, el("strong", { id: "corpus-head-title", testid: "corpus-head-title" })),
            el("canvas", { id: "corpus-histogram", testid: "corpus-histogram" }),
            el("p", { id: "corpus-stats", testid: "corpus-stats", className: "readout" }),
            el("p", { className: "legend" }, t("corpus.unusual"), " ", el("span", { id: "corpus-robust", testid: "corpus-robust" })),
            el("ol", { id: "corpus-unusual", testid: "corpus-unusual", className: "corpus-unusual" }))),
        el("div", { id: "corpus-prompt", testid: "corpus-prompt-detail", className: "corpus-detail" }))));
    $("corpus-atlas").addEventListener("change", () => openAtlas(ctx, $("corpus-atlas").value));
    $("corpus-metric").addEventListener("change", () => {
      seen.metric = $("corpus-metric").value;
      drawAtlas(ctx);
      if (seen.head) openHead(ctx, seen.head.layer, seen.head.head);
    });
    canvas.addEventListener("mousemove", (event) => {
      const at = headAt(event);
      if (at) $("corpus-readout").textContent = t("corpus.readout", { layer: at.layer, head: at.head, value: format(at.value) });
    });
    canvas.addEventListener("click", (event) => {
      const at = headAt(event);
      if (at) openHead(ctx, at.layer, at.head);
    });
    if (seen.list) { // re-mounted (a language switch): drawn again from what was fetched
      fillSelect($("corpus-atlas"), seen.list.atlases.map((a) => [a.name, a.name]), seen.atlas ? seen.atlas.atlas.name : "");
      $("corpus-empty").hidden = seen.list.atlases.length > 0;
      $("corpus-body").hidden = !seen.atlas;
      if (seen.atlas) {
        fillSelect($("corpus-metric"), seen.atlas.atlas.metrics.map((m) => [m, title(m)]), seen.metric);
        drawAtlas(ctx);
      }
      if (seen.head) drawHead();
      if (seen.prompt) drawPrompt();
    } else loadList(ctx);
  },

  update() {}, // the atlas does not follow the analysis; it is drawn when mounted and on its own controls

  follow(state, ctx) { // after the switch this view asked for: say so when the loaded model is not the atlas's
    if (!pending || !state.model || state.model.spec !== pending.spec) return;
    if (state.model.fingerprint !== pending.fingerprint) ctx.showError(t("corpus.fingerprint", { spec: pending.spec }));
    pending = null;
  },

  exportPNG() {
    return seen.head ? $("corpus-histogram") : $("corpus-canvas");
  },

  exportData() {
    return seen.atlas ? { name: `attnscope-corpus-${seen.atlas.atlas.name}.json`,
      data: { atlas: seen.atlas.atlas, grid: seen.atlas.grid, head: seen.head ? seen.head.body : null } } : null;
  },
};
