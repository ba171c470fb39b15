// The token view: every token as it appears in the text, coloured by the attention row of the
// query (layer and head above) or by the chosen method's scores; the prediction in blue. Strips
// over VIRTUAL_MIN_TOKENS tokens are virtualised (only the blocks near the visible part are mounted).
import { $, el, hideTip, scaleLegend, showTip, table, tokenChip } from "../dom.js";
import { tokensToCanvas } from "../draw.js";
import { dpWords, format, formatProb } from "../format.js";
import { ATTENTION, NEGATIVE, POSITIVE, PALETTE, attentionRGB, colourBar, css, scoreColour } from "../palette.js";
import { revealed } from "../privacy.js";
import { markFlag, tokenFlags } from "../rule-flags.js";
import { mountVirtualStrip, unmountVirtualStrip } from "../virtual.js";
import { displayWeights, keyTokens, queryTokens } from "../weights.js";

const VIRTUAL_MIN_TOKENS = 1500;
let shown = null; // {tokens, fills, prediction}: what the strip shows, for the PNG export

const onWhite = (rgb, alpha) => rgb.map((c) => Math.round(255 - (255 - c) * alpha));

// Per-token colour strength |score| / max |score| and the sign (display scaling; raw values in data-score).
function methodColours(tokenScores) {
  const finite = tokenScores.filter((s) => s !== null && Number.isFinite(s));
  const top = finite.length ? Math.max(...finite.map(Math.abs)) : 0;
  const colours = tokenScores.map((s) => ({
    strength: s === null || !top ? 0 : Math.min(1, Math.abs(s) / top), negative: s !== null && s < 0, score: s,
  }));
  return { colours, top };
}

function legend(state, ctx, { attribution, method, excludeSpecial, scale, range }) {
  const result = state.result;
  let text;
  let bar;
  if (attribution) {
    const details = attribution.details || {};
    const extra = details.delta !== undefined && details.delta !== null
      ? ` Completeness delta ${format(details.delta)} (${details.steps} steps).` : "";
    const query = attribution.query ?? result.attention.query;
    const spec = state.attribution.spec;
    const target = spec.explains_target && attribution.target && attribution.target.text != null
      ? ["for the prediction ", tokenChip(attribution.target.text), ` after token ${query}`] : [`for query token ${query}`];
    // the catalogue's flag says whether the method's scores can be negative; a negative score from a
    // method that says otherwise still gets the signed colours
    const signed = spec.signed || attribution.token_scores.some((s) => s !== null && s < 0);
    const colours = signed
      ? "red positive, teal negative, colour = |score| ÷ the largest |score|"
      : "scores are never negative: the redder, the higher; colour = score ÷ the largest score";
    text = [`${spec.title} scores per ${attribution.granularity} `, ...target,
      `: ${colours} (display scaling; hover for raw scores).${extra}`];
    $("legend").dataset.signed = String(signed);
    const at = (t) => (signed ? (t < 0.5 ? onWhite(NEGATIVE, 1 - 2 * t) : onWhite(POSITIVE, 2 * t - 1)) : onWhite(POSITIVE, t));
    bar = scaleLegend(colourBar(at), signed ? -method.top : 0, method.top, "score");
  } else {
    const head = result.attention.head;
    text = `Red: attention from token ${result.attention.query} in layer ${result.attention.layer}, ` +
      `${typeof head === "number" ? `head ${head}` : `${head} of heads`}` +
      ` (${excludeSpecial ? "renormalised without special tokens" : result.dp ? "noised" : "raw softmax probabilities"}` +
      `${scale === "minmax" ? ", colour min–max scaled" : ""}).` +
      (result.prediction ? " Blue: the predicted next token."
        : result.dp ? " Prediction withheld (differential privacy)." : " This model has no next-token head.") +
      (state.generated && !(result.target_tokens && keyTokens(result) === result.tokens) ? " Faded: this step's token and the later ones (not generated yet when it was chosen)." : "");
    bar = scaleLegend(colourBar(attentionRGB), range[0], range[1], "attention weight");
    delete $("legend").dataset.signed;
  }
  const parts = result.parts && keyTokens(result) === result.tokens ? result.parts : [];
  const noised = [...(result.dp ? [dpWords("Attention weights", result.dp, ": values may be negative (coloured as 0)")] : []),
    ...(attribution && attribution.dp ? [dpWords("Scores", attribution.dp)] : [])];
  const dp = noised.length ? [el("span", { className: "dp-label", testid: "dp-label" }, ...noised), " "] : [];
  const personal = result.pii && result.pii.length ? [el("span", { testid: "pii-note" }, ` Personal data: ${result.pii.length} ` +
    `value(s) (${[...new Set(result.pii.map((p) => p.label))].join(", ")}) ${revealed() ? "shown (on this page only)"
      : "masked; tick “show personal data” to see them here (never sent or stored)"}.`)] : [];
  $("legend").replaceChildren(...dp, el("span", {}, ...[text].flat()), " ", bar,
    ...(parts.length ? [partsLegend(parts)] : []), ...personal);
}

// The part (a chat message's role, a generation's prompt or answer) each token belongs to, by
// character overlap with the parts' spans (null: none, e.g. a chat template's own markup).
function partOf(tokens, parts) {
  return tokens.map((token) => {
    if (token.start === null) return null;
    const part = parts.find((p) => token.start < p.end && Math.max(token.end, token.start + 1) > p.start);
    return part ? part.name : null;
  });
}

const partColour = (name) => css(PALETTE.parts[name] || PALETTE.parts.other);

function partsLegend(parts) {
  const names = [...new Set(parts.map((p) => p.name))];
  return el("span", { className: "parts-legend", testid: "parts-legend" }, " Underline: the text's parts — ",
    ...names.flatMap((name, i) => [i ? ", " : "", el("span", { className: "part-swatch", dataset: { part: name },
      style: { background: partColour(name) } }), ` ${name}`]),
    " (tokens the template adds between them have none).");
}

function appendText(span, text) {
  const parts = text.split("\n");
  parts.forEach((part, i) => {
    if (part) span.append(document.createTextNode(part));
    if (i < parts.length - 1) span.append(el("span", { className: "nl" }, "↵"), document.createTextNode("\n"));
  });
}

function showCandidates(event, top) {
  const list = el("table", { testid: "candidates" });
  top.forEach((candidate, rank) => {
    const row = list.insertRow();
    row.setAttribute("data-testid", "candidate");
    row.dataset.prob = String(candidate.prob);
    row.dataset.token = candidate.token;
    row.insertCell().textContent = String(rank + 1);
    row.insertCell().append(tokenChip(candidate.token));
    const p = row.insertCell();
    p.className = "num";
    p.textContent = formatProb(candidate.prob);
    const bar = el("div", { className: "bar", style: { width: `${Math.max(1, candidate.prob * 120)}px` } });
    const cell = row.insertCell();
    cell.className = "barcell";
    cell.append(bar);
  });
  showTip(event, el("div", { className: "muted" }, "top-10 next tokens (raw softmax probabilities)"), list);
}

function predictionNodes(result) {
  const top = result.prediction.top;
  const link = el("span", { className: "link", title: "the red weights of the query token feed this prediction" },
    result.prediction.position === keyTokens(result).length - 1 ? "⟶" : `⟶ after token ${result.prediction.position}:`);
  const span = el("span", { className: "prediction", testid: "prediction" }, top[0].token,
    el("span", { className: "p" }, formatProb(top[0].prob)));
  Object.assign(span.dataset, { token: top[0].token, prob: String(top[0].prob), tokenId: String(top[0].id) });
  span.addEventListener("mouseenter", (event) => showCandidates(event, top));
  span.addEventListener("mouseleave", hideTip);
  return [link, span];
}

function tokenTip(event, token, weight, methodScore, flag) {
  const span = token.start === null ? "inserted by the tokenizer"
    : token.start === token.end ? `continues the character before position ${token.start} (byte-level piece)`
      : `characters [${token.start}, ${token.end})`;
  const exact = (v) => el("span", {}, format(v), el("span", { className: "muted" }, ` (${v})`));
  const rows = [["token", tokenChip(token.text)], ["id", String(token.id)], ["span", el("span", { className: "wrap" }, span)],
    ["attention weight", exact(weight)], ["special", token.special ? "yes" : "no"]];
  if (methodScore) rows.push([`${methodScore[0]} score`, methodScore[1] === null ? "—" : exact(methodScore[1])]);
  if (flag) rows.push([`rules failed (${flag.severity})`, el("span", { className: "wrap" }, flag.rules.join(", "))]);
  showTip(event, table(rows));
}

export default {
  id: "tokens",
  title: "Tokens",
  testid: "token-view",

  mount(root) {
    root.append(el("p", { className: "legend", id: "legend" }), el("div", { className: "strip", id: "strip", testid: "token-strip" }));
  },

  update(state, ctx) {
    const result = state.result;
    const strip = $("strip");
    const tokens = keyTokens(result);
    const { excludeSpecial, scale, hideSpecial } = state.display;
    const { weights, colours, range } = displayWeights(result.attention.weights, tokens, { excludeSpecial, scale });
    const attribution = state.attribution && tokens === result.tokens ? state.attribution.body : null;
    const method = attribution ? methodColours(attribution.token_scores) : null;
    legend(state, ctx, { attribution, method, excludeSpecial, scale, range });
    strip.classList.toggle("hide-special", hideSpecial);
    const fills = tokens.map((_, i) => (method
      ? scoreColour(method.colours[i].score, method.top) : css(ATTENTION, colours[i])));
    shown = { tokens, fills, prediction: result.prediction ? result.prediction.top[0] : null };
    // gaps between token spans are text no token covers (e.g. spaces a WordPiece tokenizer drops);
    // decoder-side target tokens of an encoder-decoder have spans into the target, so no gaps there
    const text = tokens === result.tokens ? result.text : "";
    const parts = text && result.parts ? partOf(tokens, result.parts) : null;
    const fadeFuture = state.generated && !(result.target_tokens && tokens === result.tokens); // keys are the steps' tokens
    const flagged = tokens === result.tokens && result.model ? tokenFlags(result.model.fingerprint, state.text) : null; // failed rules
    if (flagged && flagged.size) {
      $("legend").append(el("span", { testid: "rule-flag-note" }, " Outlined: the tokens of rules that failed (Rules view)."));
    }
    const cursorBefore = new Int32Array(tokens.length); // end of the text covered before each token
    let cursor = 0;
    tokens.forEach((token, index) => {
      cursorBefore[index] = cursor;
      if (token.end !== null) cursor = token.end;
    });
    const tail = [];
    if (text && cursor < text.length) tail.push(el("span", { className: "gap" }, text.slice(cursor)));
    if (result.prediction) tail.push(...predictionNodes(result));

    const makeNodes = (index) => {
      const token = tokens[index];
      const nodes = [];
      if (text && token.start !== null && token.start > cursorBefore[index]) {
        nodes.push(el("span", { className: "gap" }, text.slice(cursorBefore[index], token.start)));
      }
      const span = el("span", { className: "tok", testid: "token" });
      span.dataset.tokenIndex = String(index);
      span.dataset.weight = String(weights[index]);
      const strength = method ? method.colours[index].strength : colours[index];
      span.style.setProperty("--a", strength.toFixed(4));
      if (strength > 0.6) span.classList.add("light"); // white text on the strongest colours
      if (method) {
        span.dataset.score = String(method.colours[index].score);
        span.classList.add(method.colours[index].negative ? "neg" : "pos");
      }
      if (token.special) span.classList.add("special");
      if (parts && parts[index]) {
        span.dataset.part = parts[index];
        span.style.setProperty("--part", partColour(parts[index]));
      }
      if (index === result.attention.query && tokens === queryTokens(result)) span.classList.add("query"); // not in cross
      if (fadeFuture && index > result.attention.query) span.classList.add("future"); // not generated yet
      if (!token.special && token.start === token.end) span.classList.add("empty");
      if (flagged && flagged.has(index)) markFlag(span, flagged.get(index));
      appendText(span, token.text);
      span.addEventListener("mouseenter", (event) => tokenTip(event, token, weights[index],
        method ? [state.attribution.spec.title, method.colours[index].score] : null, flagged && flagged.get(index)));
      span.addEventListener("mouseleave", hideTip);
      span.addEventListener("click", () => ctx.setQuery(index));
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
  },

  exportPNG() {
    return shown ? tokensToCanvas(shown.tokens, shown.fills, shown.prediction) : null;
  },
};
