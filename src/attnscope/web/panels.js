// Analysis panels: attribution colours for the token strip, the head-metric grid, the method
// agreement table and the prompt-part panel. Numbers come from the server (the library's JSON).

const LABEL_COLOURS = {
  induction: "#7b3294", "previous-token": "#1b7837", sink: "#b2182b", local: "#2166ac",
  broad: "#999999", mixed: "#dddddd", "not captured": "#ffffff",
};

export const METRIC_TITLES = {
  entropy: "entropy (nats)", sparsity: "sparsity (share below 1%)", locality: "locality (mean distance)",
  sink: "sink mass (first token)", previous_token: "previous-token score", focus_consistency: "focus consistency",
  induction: "induction score",
};

// Per-token colour strength |score| / max |score| and the sign (display scaling only; raw values in data-score).
export function attributionColours(tokenScores) {
  const finite = tokenScores.filter((s) => s !== null && Number.isFinite(s));
  const top = finite.length ? Math.max(...finite.map(Math.abs)) : 0;
  return tokenScores.map((s) => ({
    strength: s === null || !top ? 0 : Math.min(1, Math.abs(s) / top),
    negative: s !== null && s < 0,
    score: s,
  }));
}

// A table of text (or DOM node) cells, with an optional header row; used by app.js too.
export function table(rows, header) {
  const t = document.createElement("table");
  if (header) {
    const tr = t.createTHead().insertRow();
    header.forEach((h) => { const th = document.createElement("th"); th.textContent = h; tr.append(th); });
  }
  const body = t.createTBody();
  rows.forEach((cells) => {
    const tr = body.insertRow();
    cells.forEach((c) => {
      const td = tr.insertCell();
      if (c instanceof Node) td.append(c); else td.textContent = c;
    });
  });
  return t;
}

const fixed = (v, digits = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));

// ---- head metrics -------------------------------------------------------------------------------
const CELL = 14;

function viridis(t) {
  // a few stops of viridis, linearly interpolated
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

export function drawMetricGrid(canvas, values) {
  const layers = values.length;
  const heads = layers ? values[0].length : 0;
  const flat = values.flat().filter((v) => v !== null);
  const low = Math.min(...flat);
  const high = Math.max(...flat);
  canvas.width = heads * CELL;
  canvas.height = layers * CELL;
  canvas.style.width = `${heads * CELL}px`;
  canvas.style.height = `${layers * CELL}px`;
  const ctx = canvas.getContext("2d");
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const v = values[l][h];
      if (v === null) { ctx.fillStyle = "#fff"; } else {
        const [r, g, b] = viridis(high > low ? (v - low) / (high - low) : 0.5);
        ctx.fillStyle = `rgb(${r},${g},${b})`;
      }
      ctx.fillRect(h * CELL, l * CELL, CELL - 1, CELL - 1);
    }
  }
  return { low, high };
}

export function renderHeadMetrics(container, data, metric, onHover) {
  const values = data.metrics[metric];
  const canvas = document.createElement("canvas");
  canvas.setAttribute("data-testid", "metric-canvas");
  canvas.dataset.metric = metric;
  const { low, high } = drawMetricGrid(canvas, values);
  const scale = document.createElement("p");
  scale.className = "muted";
  scale.textContent = `${METRIC_TITLES[metric] || metric}: layers (rows) × heads (columns); colour from ${fixed(low)} (dark) to ${fixed(high)} (yellow).`;
  canvas.addEventListener("mousemove", (event) => {
    const rect = canvas.getBoundingClientRect();
    const h = Math.floor((event.clientX - rect.left) / CELL);
    const l = Math.floor((event.clientY - rect.top) / CELL);
    if (l < 0 || h < 0 || l >= values.length || h >= values[0].length) return;
    onHover(`layer ${l}, head ${h}: ${metric} = ${fixed(values[l][h], 4)} · label ${data.labels[l][h]}`);
  });
  const labels = document.createElement("div");
  labels.className = "label-grid";
  labels.setAttribute("data-testid", "head-labels");
  labels.style.gridTemplateColumns = `repeat(${data.labels[0].length}, ${CELL}px)`;
  data.labels.forEach((row, l) => row.forEach((label, h) => {
    const cell = document.createElement("span");
    cell.title = `L${l} H${h}: ${label}`;
    cell.dataset.label = label;
    cell.style.background = LABEL_COLOURS[label] || "#fff";
    labels.append(cell);
  }));
  const legend = document.createElement("p");
  legend.className = "muted";
  for (const [label, colour] of Object.entries(LABEL_COLOURS)) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.background = colour;
    chip.style.color = ["induction", "previous-token", "sink", "local"].includes(label) ? "#fff" : "#222";
    chip.textContent = label;
    legend.append(chip, " ");
  }
  const counts = {};
  data.labels.flat().forEach((label) => { counts[label] = (counts[label] || 0) + 1; });
  const summary = document.createElement("p");
  summary.className = "muted";
  summary.textContent = "Head types: " + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ") +
    (data.note ? ` (${data.note})` : "");
  const left = document.createElement("div");
  left.append(scale, canvas);
  const right = document.createElement("div");
  const title = document.createElement("p");
  title.className = "muted";
  title.textContent = "head type labels";
  right.append(title, labels, legend, summary);
  const wrap = document.createElement("div");
  wrap.className = "metrics-wrap";
  wrap.append(left, right);
  container.replaceChildren(wrap);
}

// ---- agreement -------------------------------------------------------------------------------
export function renderAgreement(container, data) {
  const methods = data.agreement.methods;
  const rows = methods.map((a, i) => [a, ...methods.map((_, j) => fixed(data.agreement.spearman[i][j], 2))]);
  const spearman = table(rows, ["Spearman ρ", ...methods]);
  spearman.setAttribute("data-testid", "agreement-table");
  spearman.dataset.methods = methods.join(",");
  const kendallRows = methods.map((a, i) => [a, ...methods.map((_, j) => fixed(data.agreement.kendall[i][j], 2))]);
  const kendall = table(kendallRows, ["Kendall τ", ...methods]);
  const scoreRows = data.units.map((unit, index) => [unit.text, ...methods.map((m) => fixed(data.methods[m].scores[index], 4))]);
  const scores = table(scoreRows, ["unit", ...methods]);
  scores.setAttribute("data-testid", "agreement-scores");
  const note = document.createElement("p");
  note.className = "muted";
  const target = data.target || {};
  const skipped = Object.entries(data.skipped || {}).map(([m, why]) => `${m}: ${why}`).join("; ");
  note.textContent = `Rank agreement over the units up to the query, for the target ${JSON.stringify(target.text)}` +
    (skipped ? `. Skipped — ${skipped}` : "") + ". Low agreement between attention and occlusion/gradients means " +
    "attention is not explaining this prediction.";
  container.replaceChildren(note, spearman, kendall, scores);
}

// ---- prompt parts ----------------------------------------------------------------------------
// One part per non-empty line (or sentence when the text is one line): "name: snippet".
export function suggestParts(text) {
  let pieces = text.split("\n").filter((line) => line.trim());
  if (pieces.length < 2) pieces = text.split(/(?<=[.!?。！？])\s*/).filter((s) => s.trim());
  return pieces.slice(0, 12).map((piece, i) => `part${i + 1}: ${piece.trim()}`).join("\n");
}

export function parseParts(text, spec) {
  const parts = [];
  let from = 0;
  for (const raw of spec.split("\n")) {
    if (!raw.trim()) continue;
    const colon = raw.indexOf(":");
    if (colon < 1) throw new Error(`a part line is "name: text from the prompt", not ${JSON.stringify(raw)}`);
    const name = raw.slice(0, colon).trim();
    const snippet = raw.slice(colon + 1).trim();
    let start = text.indexOf(snippet, from);
    if (start < 0) start = text.indexOf(snippet);
    if (!snippet || start < 0) throw new Error(`part ${JSON.stringify(name)}: ${JSON.stringify(snippet)} is not in the prompt`);
    parts.push({ name, start, end: start + snippet.length });
    from = start + snippet.length;
  }
  if (!parts.length) throw new Error("name at least one part");
  return parts;
}

export function renderParts(container, data) {
  const names = data.parts;
  const rows = data.mean_over_heads.map((row, layer) => {
    const cells = row.map((v) => {
      const span = document.createElement("span");
      span.className = "mass";
      span.textContent = v === null ? "—" : v.toFixed(3);
      if (v !== null) span.style.background = `rgba(220, 38, 38, ${Math.min(1, v).toFixed(3)})`;
      return span;
    });
    return [`layer ${layer}`, ...cells];
  });
  const t = table(rows, ["", ...names]);
  t.setAttribute("data-testid", "parts-table");
  t.dataset.parts = names.join("|");
  const note = document.createElement("p");
  note.className = "muted";
  note.textContent = "Attention mass from the query to each part (sum over the part's tokens, mean over query " +
    "tokens and heads; each row sums to 1). Per-head values are in the JSON export.";
  container.replaceChildren(note, t);
}
