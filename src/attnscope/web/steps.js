// What a generation's steps say, computed from their attention rows (pure functions, no DOM).
// A generation of S steps has a steps matrix (S rows of N floats, row-major): row s is what the
// query before generated token s attended to; only its first positions[s] entries can be non-zero.

export const KEY_FRAME_DISTANCE = 0.5; // Jensen–Shannon distance (base 2, 0…1) to the step before
export const LOOP_NGRAM = 4; // a loop: the last LOOP_NGRAM generated tokens repeat an earlier run …
export const CONSTRAINT_LEVEL = 0.05; // attention to a marked span below this is flagged

export function row(matrix, width, step) {
  return matrix.subarray(step * width, (step + 1) * width);
}

// Jensen–Shannon distance between two attention rows (each renormalised over its own keys; keys a
// row cannot see count as 0): sqrt of the divergence in bits, between 0 and 1.
export function jsDistance(a, b) {
  const n = Math.max(a.length, b.length);
  let sumA = 0;
  let sumB = 0;
  for (let i = 0; i < n; i++) { sumA += a[i] || 0; sumB += b[i] || 0; }
  if (!(sumA > 0) || !(sumB > 0)) return 0;
  let divergence = 0;
  for (let i = 0; i < n; i++) {
    const p = (a[i] || 0) / sumA;
    const q = (b[i] || 0) / sumB;
    const m = (p + q) / 2;
    if (p > 0) divergence += 0.5 * p * Math.log2(p / m);
    if (q > 0) divergence += 0.5 * q * Math.log2(q / m);
  }
  return Math.sqrt(Math.max(0, Math.min(1, divergence)));
}

// The distance of every step's row to the previous step's (0 for the first).
export function stepDistances(matrix, width, steps) {
  const out = new Float32Array(steps);
  for (let s = 1; s < steps; s++) out[s] = jsDistance(row(matrix, width, s), row(matrix, width, s - 1));
  return out;
}

export function keyFrames(distances, threshold = KEY_FRAME_DISTANCE) {
  return [...distances.keys()].filter((s) => distances[s] > threshold);
}

// The attention-weighted mean key position of a row (where the step looks, on average).
export function centreOfMass(values) {
  let total = 0;
  let moment = 0;
  for (let i = 0; i < values.length; i++) { total += values[i]; moment += i * values[i]; }
  return total > 0 ? moment / total : 0;
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

// Steps where the generation loops: its last LOOP_NGRAM tokens repeat an earlier run of the same
// tokens (period d = s - t) while attention cycles — the step's strongest key is the strongest key
// of step t, or that key one period later.
export function loopSteps(ids, matrix, width, n = LOOP_NGRAM) {
  const marks = [];
  const seen = new Map(); // n-gram -> last step it ended at
  for (let s = n - 1; s < ids.length; s++) {
    const gram = ids.slice(s - n + 1, s + 1).join(",");
    const t = seen.get(gram);
    if (t !== undefined) {
      const now = argmax(row(matrix, width, s));
      const then = argmax(row(matrix, width, t));
      if (now === then || now - then === s - t) marks.push(s);
    }
    seen.set(gram, s);
  }
  return marks;
}

// The attention mass each step gives to the tokens of [start, end) characters (a marked span).
export function spanMass(matrix, width, steps, tokens, start, end) {
  const inside = [];
  tokens.forEach((token, i) => {
    if (token.start !== null && token.start < end && token.end > start) inside.push(i);
  });
  const out = new Float32Array(steps);
  for (let s = 0; s < steps; s++) {
    const values = row(matrix, width, s);
    for (const i of inside) out[s] += values[i];
  }
  return { mass: out, tokens: inside.length };
}

// Per key position: row b minus row a (what gained or lost attention from step a to step b).
export function difference(matrix, width, from, to) {
  const a = row(matrix, width, from);
  const b = row(matrix, width, to);
  const out = new Float32Array(width);
  for (let i = 0; i < width; i++) out[i] = b[i] - a[i];
  return out;
}

// The k positions of 0…n-1 with the largest values and the k with the smallest (one pass, no sort
// of all n): [largest first], [smallest first].
export function extremes(values, n, k = 3) {
  const high = [];
  const low = [];
  const keep = (list, i, better) => {
    if (list.length === k && !better(values[i], values[list[k - 1]])) return;
    let at = list.length < k ? list.length : k - 1;
    list[at] = i;
    while (at > 0 && better(values[list[at]], values[list[at - 1]])) {
      [list[at], list[at - 1]] = [list[at - 1], list[at]];
      at -= 1;
    }
  };
  for (let i = 0; i < n; i++) {
    keep(high, i, (a, b) => a > b);
    keep(low, i, (a, b) => a < b);
  }
  return [high, low];
}
