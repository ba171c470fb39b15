// Node positions of the attention graph (views/graph.js), in CSS pixels of its canvas:
// - columns: bertviz's head view, the queries of the kept edges on the left and their keys on the
//   right, each column in token order, spread over the same height (a token may sit in both);
// - force: one node per token, placed by a deterministic Fruchterman–Reingold layout (start on a circle
//   in token order (cross-attention: a node per query and per key token), springs weighted by the attention weight, repulsion between all pairs), so the same
//   graph always gets the same picture. Its cost is bounded: iterations × nodes² ≤ FORCE_BUDGET.

const FORCE_BUDGET = 3e7;
export const ROW_MAX = 18; // px per row of the columns layout (less for long columns)
const COLUMNS_MAX_HEIGHT = 24000; // px: browsers refuse canvases much taller than 32767

// Layout of {edges: [{query, key, weight}]} -> {kind, width, height, nodes: [{id, index, side, x, y}],
// ends(edge) -> [from, to] node objects}
export function columnsLayout(edges, width) {
  const queries = [...new Set(edges.map((e) => e.query))].sort((a, b) => a - b);
  const keys = [...new Set(edges.map((e) => e.key))].sort((a, b) => a - b);
  const rows = Math.max(queries.length, keys.length, 1);
  const row = Math.max(3, Math.min(ROW_MAX, COLUMNS_MAX_HEIGHT / rows));
  const top = 26;
  const height = Math.round(top + rows * row + 8);
  const label = Math.min(200, Math.round(width * 0.3));
  const place = (list, side, x) => {
    const pitch = (height - top - 8) / Math.max(list.length, 1);
    return new Map(list.map((index, i) => [index, { id: `${side}${index}`, index, side, x, y: top + (i + 0.5) * pitch, pitch }]));
  };
  const left = place(queries, "q", label);
  const right = place(keys, "k", width - label);
  return {
    kind: "columns", width, height, top, label, row,
    nodes: [...left.values(), ...right.values()],
    ends: (edge) => [left.get(edge.query), right.get(edge.key)],
  };
}

// bipartite: queries and keys are different tokens (cross-attention): a node per query and per key
export function forceLayout(edges, width, bipartite = false) {
  const qid = (index) => (bipartite ? `q${index}` : `n${index}`);
  const kid = (index) => (bipartite ? `k${index}` : `n${index}`);
  const ids = [...new Set(edges.flatMap((e) => [qid(e.query), kid(e.key)]))]
    .sort((a, b) => a[0].localeCompare(b[0]) || Number(a.slice(1)) - Number(b.slice(1)));
  const n = ids.length;
  const height = Math.round(Math.min(760, Math.max(360, width * 0.75)));
  const slot = new Map(ids.map((id, i) => [id, i]));
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) { // the circle, in token order
    const angle = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    x[i] = Math.cos(angle);
    y[i] = Math.sin(angle);
  }
  const springs = edges.filter((e) => qid(e.query) !== kid(e.key)).map((e) => [slot.get(qid(e.query)), slot.get(kid(e.key)), e.weight]);
  const k = Math.sqrt(4 / Math.max(n, 1)); // the ideal distance in a 2 × 2 box
  const iterations = Math.max(5, Math.min(300, Math.floor(FORCE_BUDGET / Math.max(n * n, 1))));
  const dx = new Float64Array(n);
  const dy = new Float64Array(n);
  let temperature = 0.2;
  for (let step = 0; step < iterations; step++) {
    dx.fill(0); dy.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const ex = x[i] - x[j]; const ey = y[i] - y[j];
        const d2 = Math.max(ex * ex + ey * ey, 1e-6);
        const f = (k * k) / d2;
        dx[i] += ex * f; dy[i] += ey * f; dx[j] -= ex * f; dy[j] -= ey * f;
      }
    }
    for (const [a, b, w] of springs) {
      const ex = x[a] - x[b]; const ey = y[a] - y[b];
      const d = Math.sqrt(ex * ex + ey * ey) || 1e-6;
      const f = (d / k) * (0.3 + w);
      dx[a] -= ex * f; dy[a] -= ey * f; dx[b] += ex * f; dy[b] += ey * f;
    }
    for (let i = 0; i < n; i++) {
      const d = Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]) || 1e-9;
      const move = Math.min(d, temperature);
      x[i] += (dx[i] / d) * move - x[i] * 0.01; // a weak pull to the centre keeps parts together
      y[i] += (dy[i] / d) * move - y[i] * 0.01;
    }
    temperature = Math.max(0.002, temperature * 0.97);
  }
  const fit = (values, size, pad) => {
    let low = Infinity; let high = -Infinity;
    for (const v of values) { low = Math.min(low, v); high = Math.max(high, v); }
    const span = high - low || 1;
    return (v) => pad + ((v - low) / span) * (size - 2 * pad);
  };
  const fx = fit(x, width, 70);
  const fy = fit(y, height, 24);
  const nodes = ids.map((id, i) => ({ id, index: Number(id.slice(1)), side: id[0], x: fx(x[i]), y: fy(y[i]) }));
  return { kind: "force", width, height, nodes, ends: (edge) => [nodes[slot.get(qid(edge.query))], nodes[slot.get(kid(edge.key))]] };
}
