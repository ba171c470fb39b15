// Where checked rules failed (views/rules.js sets them from a POST /api/rules/check answer): the `to`
// tokens of each failed rule's worst cell, and the generation steps where a step rule failed. The
// token view and the generation timeline outline them (classes rule-flag rule-flag-<severity>: a
// ring that pulses, still under prefers-reduced-motion). Flags belong to the model, text and
// generation they were checked on: another text, model or generation shows none.

const RANK = { info: 0, warning: 1, critical: 2 };
let flags = null; // {fingerprint, text, traceId, generated, tokens: Map, steps: Map}; a Map: index -> {severity, rules}

function add(map, key, result) {
  const known = map.get(key);
  if (!known) { map.set(key, { severity: result.severity, rules: [result.rule] }); return; }
  if (!known.rules.includes(result.rule)) known.rules.push(result.rule);
  if (RANK[result.severity] > RANK[known.severity]) known.severity = result.severity;
}

// body: the check's answer (null: no flags)
export function setFlags(body) {
  if (!body) { flags = null; return; }
  const tokens = new Map();
  const steps = new Map();
  for (const result of body.results.filter((r) => r.passed === false)) {
    for (const token of result.where.tokens || []) add(tokens, token.index, result);
    const failed = (result.steps || []).filter((s) => s.passed === false).map((s) => s.step);
    if (!failed.length && result.where.step !== null && result.where.step !== undefined) failed.push(result.where.step);
    for (const step of failed) add(steps, step, result);
  }
  flags = { fingerprint: body.model.fingerprint, text: body.text, traceId: body.trace_id, generated: Boolean(body.generation), tokens, steps };
}

// {index: {severity, rules}} of the tokens of `text` analysed by the model with `fingerprint` (null: none)
export function tokenFlags(fingerprint, text) {
  return flags && flags.fingerprint === fingerprint && flags.text === text ? flags.tokens : null;
}

// {step: {severity, rules}} of the generation kept as `traceId` (null: none)
export function stepFlags(traceId) {
  return flags && flags.generated && flags.traceId === traceId ? flags.steps : null;
}

// Outline `node` when `flag` ({severity, rules}) says a rule failed there; clear it otherwise.
export function markFlag(node, flag) {
  node.classList.remove("rule-flag", "rule-flag-info", "rule-flag-warning", "rule-flag-critical");
  if (!flag) { delete node.dataset.rules; delete node.dataset.ruleSeverity; return; }
  node.classList.add("rule-flag", `rule-flag-${flag.severity}`);
  node.dataset.rules = flag.rules.join(" ");
  node.dataset.ruleSeverity = flag.severity;
}

// The generation's step chips (#step-tokens) as the flags say, without drawing the strip again.
export function markSteps(traceId) {
  const steps = stepFlags(traceId);
  for (const node of document.querySelectorAll("#step-tokens .step-token")) {
    markFlag(node, steps ? steps.get(Number(node.dataset.step)) : null);
  }
}
