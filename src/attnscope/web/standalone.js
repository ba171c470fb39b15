// The standalone file's "server" (render/standalone.py writes the file, render/bundle.py its boot):
// the page's own modules run unchanged, and the requests they make — fetch of /api/… and /static/…,
// the progress EventSource, the tile Worker — are answered here, in the browser, from the trace the
// file embeds. No server, no network. What the file does not hold (a method that runs the model
// again, another text, a head's row at a query whose rows were not kept) is refused with a 409 whose
// detail says, in the page's language, that it needs `attnscope serve`; the page shows it as any error.
//
// The payload (inflated by the boot script): [u32 meta length][meta JSON][arrays]. meta.arrays names
// each array: {offset, bytes, dtype: f16|u8|f32, planed (f16 low bytes, then high bytes), shape, packed}.
//   rows:  f16 (layers, heads, queries, keys) — every head's row at meta.row_queries (exact to float16)
//   maps:  tier "heads": f16 (layers, heads, N, N); tier "layers": f16 or u8 (layers, N, N) head means
//          (u8: round(w / row max × 255), row maxima in "scales" f32 (layers, N)); packed "lower": row q
//          keeps keys 0…q only (a causal map)
//   thumbs-max, thumbs-mean: f16 (layers, heads, cells, cells), the model view's pooled maps
import { float16ToFloat32 } from "./api.js";
import { language, onLanguage, setLanguage, t } from "./i18n.js";
import "./locales/standalone.js";

const boot = window.attnscopeStandalone;
const TRACE = "standalone"; // the trace id of every answer

// ---- the payload ---------------------------------------------------------------------------------
const view = new DataView(boot.payload.buffer, boot.payload.byteOffset, boot.payload.byteLength);
const metaLength = view.getUint32(0, true);
const meta = JSON.parse(new TextDecoder().decode(boot.payload.subarray(4, 4 + metaLength)));
const region = boot.payload.subarray(4 + metaLength);

function decode(name) { // an array of the payload: Uint16Array of float16 bits, Uint8Array or Float32Array
  const spec = meta.arrays[name];
  if (!spec) return null;
  const bytes = region.slice(spec.offset, spec.offset + spec.bytes);
  if (spec.dtype === "u8") return bytes;
  if (spec.dtype === "f32") return new Float32Array(bytes.buffer);
  const half = bytes.length / 2;
  const bits = new Uint16Array(half);
  for (let i = 0; i < half; i++) bits[i] = spec.planed ? bytes[i] | (bytes[half + i] << 8) : bytes[2 * i] | (bytes[2 * i + 1] << 8);
  return bits;
}
const arrays = Object.fromEntries(Object.keys(meta.arrays).map((name) => [name, decode(name)]));

function floatToHalf(value) { // round to nearest even, as numpy's float16 cast
  const f32 = new Float32Array([value]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  let exponent = ((x >>> 23) & 0xff) - 127 + 15;
  let mantissa = x & 0x7fffff;
  if (exponent >= 0x1f) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const middle = 1 << (shift - 1);
    return sign | (half + (rest > middle || (rest === middle && (half & 1)) ? 1 : 0));
  }
  const rest = mantissa & 0x1fff;
  let half = (exponent << 10) | (mantissa >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1;
  return sign | half;
}

// ---- rows of the embedded arrays ------------------------------------------------------------------
const N = meta.keys; // key tokens of the stack (= query tokens: one self-attention stack)
const H = meta.heads_count;
const layerRow = (layer) => meta.layers.indexOf(layer); // captured layer → row of the arrays

function packedRow(data, base, query) { // row `query` of one map stored at `base`, as (keys,) float32
  const out = new Float32Array(N);
  const lower = meta.arrays.maps.packed === "lower";
  const start = base + (lower ? (query * (query + 1)) / 2 : query * N);
  const count = lower ? query + 1 : N;
  for (let k = 0; k < count; k++) out[k] = float16ToFloat32(data[start + k]);
  return out;
}

const mapCells = () => (meta.arrays.maps.packed === "lower" ? (N * (N + 1)) / 2 : N * N);

function headRow(layer, head, query) { // one head's row, or null when the file does not hold it
  const l = layerRow(layer);
  const q = meta.row_queries.indexOf(query);
  if (q >= 0) {
    const start = ((l * H + head) * meta.row_queries.length + q) * N;
    return Float32Array.from(arrays.rows.subarray(start, start + N), float16ToFloat32);
  }
  if (meta.tier === "heads") return packedRow(arrays.maps, (l * H + head) * mapCells(), query);
  return null;
}

function meanRow(layer, query) { // the mean of heads (float32, as the server averages)
  const l = layerRow(layer);
  if (meta.row_queries.includes(query) || meta.tier === "heads") {
    const out = new Float32Array(N);
    for (let h = 0; h < H; h++) headRow(layer, h, query).forEach((w, k) => { out[k] += w; });
    return out.map((w) => w / H);
  }
  if (meta.tier !== "layers") return null;
  if (meta.arrays.maps.dtype === "f16") return packedRow(arrays.maps, l * mapCells(), query);
  const out = new Float32Array(N); // u8 of the row's maximum
  const lower = meta.arrays.maps.packed === "lower";
  const start = l * mapCells() + (lower ? (query * (query + 1)) / 2 : query * N);
  const scale = arrays.scales[l * N + query] / 255;
  for (let k = 0; k < (lower ? query + 1 : N); k++) out[k] = arrays.maps[start + k] * scale;
  return out;
}

function combined(layer, head, query) { // head: an index, "mean" or "max"
  if (head === "mean") return meanRow(layer, query);
  if (head !== "max") return headRow(layer, head, query);
  const rows = [...Array(H).keys()].map((h) => headRow(layer, h, query));
  if (rows.some((row) => row === null)) return null;
  return rows[0].map((_, k) => Math.max(...rows.map((row) => row[k])));
}

// ---- answers -------------------------------------------------------------------------------------
class Refused extends Error {}

const headWords = (head) => (head === "mean" || head === "max" ? t(`standalone.head.${head}`) : t("standalone.head.n", { n: head }));
const refuse = (what) => { throw new Refused(t("standalone.needs_server", { what })); };

function resolve({ layer = -1, head = "mean", query = -1, stack }) {
  if (stack && stack !== meta.stack) refuse(t("standalone.what.stack", { stack }));
  const number = (value, size, name) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < -size || n >= size) throw new Refused(`${name} ${value}: out of range`);
    return n < 0 ? n + size : n;
  };
  const resolvedLayer = meta.layers[number(layer, meta.layers.length, "layer")];
  const resolvedHead = head === "mean" || head === "max" ? head : number(head, H, "head");
  return { layer: resolvedLayer, head: resolvedHead, query: number(query, N, "query") };
}

function rowFor(asked) {
  const { layer, head, query } = resolve(asked);
  const row = combined(layer, head, query);
  if (!row) refuse(t("standalone.what.row", { head: headWords(head), query, layer }));
  return { layer, head, query, row };
}

function rowStats(row) { // attnscope.analysis.stats.row_stats
  let sum = 0; let max = -Infinity; let argmax = 0; let entropy = 0;
  row.forEach((w, k) => { sum += w; if (w > max) { max = w; argmax = k; } if (w > 0) entropy -= w * Math.log(w); });
  const ordered = [...row].sort((a, b) => b - a);
  let reached = 0;
  let mass90 = 1; // numpy's argmax of an all-false test is 0: one token
  for (let i = 0; i < ordered.length; i++) {
    reached += ordered[i];
    if (reached >= 0.9 * sum - 1e-12) { mass90 = i + 1; break; }
  }
  return { sum, max, argmax, entropy_nats: entropy, mass90_tokens: sum > 0 ? mass90 : 0 };
}

function displayStats(row) { // attnscope.analysis.stats.display_rows: every basis the page can show
  const without = (drop) => {
    const kept = row.map((w, k) => (drop(k) ? 0 : w));
    const total = kept.reduce((a, b) => a + b, 0);
    return total > 0 ? kept.map((w) => w / total) : kept;
  };
  const special = (k) => meta.base.tokens[k].special;
  return { raw: rowStats(row), without_special: rowStats(without(special)), without_first: rowStats(without((k) => k === 0)),
    without_first_and_special: rowStats(without((k) => k === 0 || special(k))) };
}

function sameText(body) {
  if (body.dp_epsilon !== undefined && body.dp_epsilon !== null) refuse(t("standalone.what.dp"));
  if (body.text !== undefined && !meta.texts.includes(body.text)) refuse(t("standalone.what.text"));
}

function analyze(body) {
  sameText(body);
  const { layer, head, query, row } = rowFor(body);
  const label = meta.labels[String(layer)][String(head)].replace("{query}", String(query));
  return { ...meta.base, attention: { stack: meta.stack, layer, head, query, label, weights: Array.from(row) },
    prediction: meta.predictions[query] ?? null, stats: displayStats(row), trace_id: TRACE };
}

function binary(values, shape, extra = {}) { // server/binary.py's format, float16
  const header = new TextEncoder().encode(JSON.stringify({ dtype: "float16", shape, scale: 1, ...extra }));
  const buffer = new ArrayBuffer(4 + header.length + 2 * values.length);
  new DataView(buffer).setUint32(0, header.length, true);
  new Uint8Array(buffer, 4, header.length).set(header);
  const out = new DataView(buffer, 4 + header.length);
  values.forEach((v, i) => out.setUint16(2 * i, floatToHalf(v), true));
  return buffer;
}

function grid(params) {
  const { query } = resolve({ query: params.get("query") ?? -1, stack: params.get("stack") });
  const values = new Float32Array(meta.layers.length * H * N);
  meta.layers.forEach((layer, l) => {
    for (let h = 0; h < H; h++) {
      const row = headRow(layer, h, query);
      if (!row) refuse(t("standalone.what.row", { head: headWords(h), query, layer }));
      values.set(row, (l * H + h) * N);
    }
  });
  return binary(values, [meta.layers.length, H, N], { layers: meta.layers, query, pooled: 1 });
}

function matrix(params) {
  const { layer, head } = resolve({ layer: params.get("layer"), head: params.get("head"), stack: params.get("stack") });
  const values = new Float32Array(N * N);
  for (let q = 0; q < N; q++) {
    const row = combined(layer, head, q);
    if (!row) refuse(t("standalone.what.map", { head: headWords(head), layer }));
    values.set(row, q * N);
  }
  return binary(values, [N, N], { layer });
}

// The heatmap's tiles (capture/tiles.py): a level-l tile covers 256·2^l tokens per side, each cell
// the maximum of its 2^l × 2^l block; uint8 of the tile's maximum, as the server sends them.
const TILE = 256;
let whole = null; // {key, values: (N, N) float32} of the map the tiles are cut from

function wholeMap(params) {
  const { layer, head } = resolve({ layer: params.get("layer"), head: params.get("head"), stack: params.get("stack") });
  const key = `${layer}|${head}`;
  if (!whole || whole.key !== key) {
    const values = new Float32Array(N * N);
    for (let q = 0; q < N; q++) {
      const row = combined(layer, head, q);
      if (!row) refuse(t("standalone.what.map", { head: headWords(head), layer }));
      values.set(row, q * N);
    }
    whole = { key, layer, head, values };
  }
  return whole;
}

function pyramid(params) {
  const map = wholeMap(params);
  const levels = N > TILE ? Math.ceil(Math.log2(N / TILE)) + 1 : 1;
  const grids = [...Array(levels).keys()].map((level) => { const n = Math.ceil(N / (TILE << level)); return [n, n]; });
  const max = map.values.reduce((a, b) => Math.max(a, b), 0);
  const heads = map.head === "mean" || map.head === "max" ? [...Array(H).keys()] : [map.head];
  return { schema_version: meta.base.schema_version, result: "pyramid", model: meta.base.model, tile: TILE, levels,
    shape: [N, N], grids, max, layer: map.layer, head: map.head, heads, stack: meta.stack };
}

function tile(params) {
  const map = wholeMap(params);
  const [level, ty, tx] = ["level", "ty", "tx"].map((name) => Number(params.get(name)));
  const factor = 1 << level;
  const span = TILE * factor;
  const [r0, c0] = [ty * span, tx * span];
  const [r1, c1] = [Math.min(N, r0 + span), Math.min(N, c0 + span)];
  if (!(r0 < r1 && c0 < c1)) throw new Refused(`tile (${ty}, ${tx}) out of range at level ${level}`);
  const [rows, cols] = [Math.ceil((r1 - r0) / factor), Math.ceil((c1 - c0) / factor)];
  const cells = new Float32Array(rows * cols);
  for (let q = r0; q < r1; q++) {
    for (let k = c0; k < c1; k++) {
      const at = Math.floor((q - r0) / factor) * cols + Math.floor((k - c0) / factor);
      cells[at] = Math.max(cells[at], map.values[q * N + k]);
    }
  }
  const scale = cells.reduce((a, b) => Math.max(a, b), 0);
  const header = new TextEncoder().encode(JSON.stringify({ dtype: "uint8", shape: [rows, cols], scale, level, ty, tx,
    tile: TILE, factor }));
  const buffer = new ArrayBuffer(4 + header.length + cells.length);
  new DataView(buffer).setUint32(0, header.length, true);
  new Uint8Array(buffer, 4, header.length).set(header);
  new Uint8Array(buffer, 4 + header.length).set(cells.map((v) => (scale > 0 ? Math.round((v / scale) * 255) : 0)));
  return buffer;
}

function thumbnails(params) {
  const size = Number(params.get("size") ?? 32);
  const pool = params.get("pool") ?? "max";
  resolve({ stack: params.get("stack") });
  const found = arrays[`thumbs-${pool}`];
  if (!found || size !== meta.thumbs.size) refuse(t("standalone.what.size", { size, pool }));
  const header = meta.arrays[`thumbs-${pool}`];
  return binary(Float32Array.from(found, float16ToFloat32), header.shape, { ...meta.thumbs.header, pool, stack: meta.stack });
}

function steps(params) { // a generation's rows, one per step: query p_s - 1 (generation.py)
  const { layer, head } = resolve({ layer: params.get("layer"), head: params.get("head"), stack: params.get("stack") });
  const positions = meta.generation.steps.map((step) => step.position);
  const values = new Float32Array(positions.length * N);
  positions.forEach((position, s) => {
    const row = combined(layer, head, position - 1);
    if (!row) refuse(t("standalone.what.row", { head: headWords(head), query: position - 1, layer }));
    values.set(row, s * N);
  });
  return binary(values, [positions.length, N], { layer, stack: meta.stack, positions });
}

function generate(body) {
  if (!meta.generation) refuse(t("standalone.what.request"));
  const text = body.text ?? (body.messages && body.messages.length === 1 ? body.messages[0].content : null);
  if (text !== meta.generation.prompt.text && text !== meta.prompt) refuse(t("standalone.what.text"));
  return { ...meta.generation, trace_id: TRACE };
}

function answer(method, path, params, body) {
  const route = `${method} ${path.replace(`/api/traces/${TRACE}/`, "/api/traces/{id}/")}`;
  switch (route) {
    case "GET /api/model": return meta.model_status;
    case "GET /api/models": return meta.models;
    case "GET /api/methods": return meta.methods;
    case "POST /api/analyze": return analyze(body);
    case "POST /api/heads": sameText(body); if (meta.heads) return meta.heads; break;
    case "POST /api/generate": return generate(body);
    case "GET /api/traces/{id}/grid": return grid(params);
    case "GET /api/traces/{id}/row": {
      const { layer, query, row } = rowFor({ layer: params.get("layer"), head: params.get("head"), query: params.get("query"), stack: params.get("stack") });
      return binary(row, [1, N], { layer, query });
    }
    case "GET /api/traces/{id}/matrix": return matrix(params);
    case "GET /api/traces/{id}/model-view": return thumbnails(params);
    case "GET /api/traces/{id}/pyramid": return pyramid(params);
    case "GET /api/traces/{id}/tile": return tile(params);
    case "GET /api/traces/{id}/steps": if (meta.generation) return steps(params); break;
    default: if (method === "POST" && /^\/api\/jobs\/[^/]+\/cancel$/.test(path)) return { result: "job", cancelled: true };
  }
  if (route === "POST /api/model") refuse(t("standalone.what.model"));
  return refuse(t("standalone.what.request"));
}

const realFetch = window.fetch.bind(window);

window.fetch = async (input, init = {}) => {
  const address = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (/^(data|blob):/.test(address)) return realFetch(input, init);
  const url = new URL(address, "http://standalone.invalid/");
  if (url.pathname.startsWith("/static/") && boot.sources[url.pathname.slice(8)] !== undefined) {
    return new Response(boot.sources[url.pathname.slice(8)], { status: 200 });
  }
  const method = (init.method || "GET").toUpperCase();
  try {
    const body = typeof init.body === "string" ? JSON.parse(init.body) : {};
    const answered = answer(method, url.pathname, url.searchParams, body);
    if (answered instanceof ArrayBuffer) return new Response(answered, { status: 200, headers: { "Content-Type": "application/octet-stream" } });
    return new Response(JSON.stringify(answered), { status: 200, headers: { "Content-Type": "application/json" } });
  } catch (error) {
    const detail = error instanceof Refused ? error.message : String(error && error.message ? error.message : error);
    const code = error instanceof Refused ? "needs_server" : "standalone";
    return new Response(JSON.stringify({ detail, code }), { status: 409, headers: { "Content-Type": "application/json" } });
  }
};

window.EventSource = class { // no server, no progress stream: the answers come at once
  constructor(url) { this.url = url; this.onmessage = null; }
  close() {}
  addEventListener() {}
};

const RealWorker = window.Worker;
window.Worker = class extends RealWorker { // the tile worker, from its blob: URL
  constructor(url, options) {
    const path = String(url).replace(/^\/static\//, "");
    super(boot.urls[path] ?? url, options);
  }
};

// ---- the page ------------------------------------------------------------------------------------
if (boot.language && boot.language !== language()) setLanguage(boot.language);
document.documentElement.dataset.standalone = meta.tier;

function banner() {
  const holds = meta.tier === "heads" ? t("standalone.holds.heads") : t(`standalone.holds.${meta.tier}`, {
    queries: t(meta.generation ? "standalone.queries.steps" : "standalone.queries.last"),
    precision: t(meta.arrays.maps && meta.arrays.maps.dtype === "u8" ? "standalone.precision.u8" : "standalone.precision.f16"),
  });
  const box = document.getElementById("standalone-banner") || document.createElement("p");
  Object.assign(box, { id: "standalone-banner", className: "muted" });
  box.setAttribute("data-testid", "standalone-banner");
  box.textContent = t("standalone.banner", { spec: meta.model_status.model.spec, holds });
  document.querySelector("main").prepend(box);
}

await import("./app.js");
banner();
onLanguage(banner);
const started = () => document.body.dataset.ready === "1";
while (!started()) await new Promise((done) => setTimeout(done, 20));
if (meta.generation) {
  document.getElementById("max-new-tokens").value = String(meta.generation.steps.length);
  document.getElementById("generate").click(); // the Generation panel, from the stored answer
} else {
  document.getElementById("analyze").click();
}
