// The token view: every token as it appears in the text, coloured by the attention row of the
// query (layer and head above) or by the chosen method's scores; the prediction in blue. Strips
// over VIRTUAL_MIN_TOKENS tokens are virtualised (only the blocks near the visible part are mounted).
import { $, el, hideTip, scaleLegend, showTip, table, tokenChip } from "../dom.js";
import { tokensToCanvas } from "../draw.js";
import { dpWords, format, formatProb } from "../format.js";
import { NEGATIVE, POSITIVE, PALETTE, attentionRGB, blend, colourBar, colourWords, css, inkOnScore, readableInk, scoreColour } from "../palette.js";
import { revealed } from "../privacy.js";
import { markFlag, tokenFlags } from "../rule-flags.js";
import { mountVirtualStrip, unmountVirtualStrip } from "../virtual.js";
import { displayWeights, keyTokens, queryTokens } from "../weights.js";
import { firstExcludedLabel } from "../exclusion.js";
import { objectiveLegend } from "../objective.js";
import { clipCaption } from "../contrast.js";
import { t } from "../i18n.js";
import { methodTitle } from "../locales/methods.js";
import "../locales/tokens.js";

const VIRTUAL_MIN_TOKENS = 1500;
let shown = null; // {tokens, fills, prediction}: what the strip shows, for the PNG export

const onWhite = (rgb, alpha) => blend(rgb, alpha); // over the page background (white in the light theme)

// Per-token colour strength |score| / max |score| and the sign (display scaling; raw values in data-score).
function methodColours(tokenScores) {
  const finite = tokenScores.filter((s) => s !== null && Number.isFinite(s));
  const top = finite.length ? Math.max(...finite.map(Math.abs)) : 0;
  const colours = tokenScores.map((s) => ({
    strength: s === null || !top ? 0 : Math.min(1, Math.abs(s) / top), negative: s !== null && s < 0, score: s,
  }));
  return { colours, top };
}

function legend(state, ctx, { attribution, method, excludeSpecial, excludeFirst, scale, range, clip }) {
  const result = state.result;
  let text;
  let bar;
  if (attribution) {
    const details = attribution.details || {};
    const extra = details.delta !== undefined && details.delta !== null
      ? t("tokens.delta", { delta: format(details.delta), steps: details.steps }) : "";
    const query = attribution.query ?? result.attention.query;
    const spec = state.attribution.spec;
    const target = objectiveLegend({ ...attribution.target, objective: attribution.objective }, query) ?? (spec.explains_target && attribution.target && attribution.target.text != null
      ? [t("tokens.for_prediction"), tokenChip(attribution.target.text), t("tokens.after_token", { n: query })] : [t("tokens.for_query", { n: query })]);
    // the catalogue's flag says whether the method's scores can be negative; a negative score from a
    // method that says otherwise still gets the signed colours
    const signed = spec.signed || attribution.token_scores.some((s) => s !== null && s < 0);
    const colours = t(signed ? "tokens.signed" : "tokens.unsigned", colourWords());
    text = [t("tokens.per", { method: methodTitle(spec), unit: t(`methods.unit.${attribution.granularity}`) }), ...target,
      t("tokens.scaling", { colours, extra })];
    $("legend").dataset.signed = String(signed);
    const at = (x) => (signed ? (x < 0.5 ? onWhite(NEGATIVE, 1 - 2 * x) : onWhite(POSITIVE, 2 * x - 1)) : onWhite(POSITIVE, x));
    bar = scaleLegend(colourBar(at), signed ? -method.top : 0, method.top, t("tokens.score"));
  } else {
    const head = result.attention.head;
    text = t("tokens.red", { ...colourWords(), query: result.attention.query, layer: result.attention.layer,
      head: typeof head === "number" ? t("tokens.head", { n: head }) : t(`tokens.head.${head}`),
      basis: firstExcludedLabel({ excludeSpecial, excludeFirst })
        ?? (excludeSpecial ? t("tokens.renormalised") : result.dp ? t("tokens.noised") : t("tokens.raw")),
      minmax: scale === "minmax" ? t("tokens.minmax") : "" }) +
      (result.prediction ? t("tokens.blue") : result.dp ? t("tokens.withheld") : t("tokens.no_head")) +
      (state.generated && !(result.target_tokens && keyTokens(result) === result.tokens) ? t("tokens.faded") : "");
    bar = scaleLegend(colourBar(attentionRGB), range[0], range[1], clip ? clipCaption(clip) : t("tokens.attention_weight"));
    delete $("legend").dataset.signed;
  }
  const parts = result.parts && keyTokens(result) === result.tokens ? result.parts : [];
  const noised = [...(result.dp ? [dpWords(t("tokens.dp.weights"), result.dp, t("tokens.dp.negative"))] : []),
    ...(attribution && attribution.dp ? [dpWords(t("tokens.dp.scores"), attribution.dp)] : [])];
  const dp = noised.length ? [el("span", { className: "dp-label", testid: "dp-label" }, ...noised), " "] : [];
  const personal = result.pii && result.pii.length ? [el("span", { testid: "pii-note" }, t("tokens.pii", { n: result.pii.length,
    labels: [...new Set(result.pii.map((p) => p.label))].join(", "), state: revealed() ? t("tokens.pii.shown") : t("tokens.pii.masked") }))] : [];
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
  return el("span", { className: "parts-legend", testid: "parts-legend" }, t("tokens.parts"),
    ...names.flatMap((name, i) => [i ? ", " : "", el("span", { className: "part-swatch", dataset: { part: name },
      style: { background: partColour(name) } }), ` ${name}`]),
    t("tokens.parts.none"));
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
  showTip(event, el("div", { className: "muted" }, t("tokens.top10")), list);
}

function predictionNodes(result) {
  const top = result.prediction.top;
  const link = el("span", { className: "link", title: t("tokens.feeds", colourWords()) },
    result.prediction.position === keyTokens(result).length - 1 ? "⟶" : t("tokens.after", { n: result.prediction.position }));
  const span = el("span", { className: "prediction", testid: "prediction" }, top[0].token,
    el("span", { className: "p" }, formatProb(top[0].prob)));
  Object.assign(span.dataset, { token: top[0].token, prob: String(top[0].prob), tokenId: String(top[0].id) });
  span.addEventListener("mouseenter", (event) => showCandidates(event, top));
  span.addEventListener("mouseleave", hideTip);
  return [link, span];
}

function tokenTip(event, token, weight, methodScore, flag) {
  const span = token.start === null ? t("tokens.inserted")
    : token.start === token.end ? t("tokens.continues", { n: token.start })
      : t("tokens.characters", { start: token.start, end: token.end });
  const exact = (v) => el("span", {}, format(v), el("span", { className: "muted" }, ` (${v})`));
  const rows = [[t("tokens.tip.token"), tokenChip(token.text)], [t("tokens.tip.id"), String(token.id)],
    [t("tokens.tip.span"), el("span", { className: "wrap" }, span)],
    [t("tokens.tip.weight"), exact(weight)], [t("tokens.tip.special"), token.special ? t("tokens.yes") : t("tokens.no")]];
  if (methodScore) rows.push([t("tokens.tip.score", { method: methodScore[0] }), methodScore[1] === null ? "—" : exact(methodScore[1])]);
  if (flag) rows.push([t("tokens.tip.rules", { severity: flag.severity }), el("span", { className: "wrap" }, flag.rules.join(", "))]);
  showTip(event, table(rows));
}

export default {
  id: "tokens",
  get title() { return t("tokens.title"); },
  testid: "token-view",

  mount(root) {
    root.append(el("p", { className: "legend", id: "legend" }), el("div", { className: "strip", id: "strip", testid: "token-strip" }));
  },

  update(state, ctx) {
    const result = state.result;
    const strip = $("strip");
    const tokens = keyTokens(result);
    const { excludeSpecial, excludeFirst, scale, hideSpecial } = state.display;
    const { weights, colours, range, clip } = displayWeights(result.attention.weights, tokens, { excludeSpecial, excludeFirst, scale, adapt: true });
    const attribution = state.attribution && tokens === result.tokens ? state.attribution.body : null;
    const method = attribution ? methodColours(attribution.token_scores) : null;
    legend(state, ctx, { attribution, method, excludeSpecial, excludeFirst, scale, range, clip });
    strip.classList.toggle("hide-special", hideSpecial);
    const fills = tokens.map((_, i) => (method
      ? scoreColour(method.colours[i].score, method.top) : css(attentionRGB(colours[i]))));
    shown = { tokens, fills, prediction: result.prediction ? result.prediction.top[0] : null };
    // gaps between token spans are text no token covers (e.g. spaces a WordPiece tokenizer drops);
    // decoder-side target tokens of an encoder-decoder have spans into the target, so no gaps there
    const text = tokens === result.tokens ? result.text : "";
    const parts = text && result.parts ? partOf(tokens, result.parts) : null;
    const fadeFuture = state.generated && !(result.target_tokens && tokens === result.tokens); // keys are the steps' tokens
    const flagged = tokens === result.tokens && result.model ? tokenFlags(result.model.fingerprint, state.text) : null; // failed rules
    if (flagged && flagged.size) {
      $("legend").append(el("span", { testid: "rule-flag-note" }, t("tokens.flagged")));
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
      // the colour of the chosen palette, and black or white text, whichever contrasts more (WCAG ≥ 4.5)
      if (!method) span.style.background = fills[index];
      span.style.color = method ? inkOnScore(method.colours[index].score, method.top) : readableInk(attentionRGB(colours[index]));
      if (method) {
        span.dataset.score = String(method.colours[index].score);
        span.classList.add(method.colours[index].negative ? "neg" : "pos");
      }
      if (token.special) span.classList.add("special");
      if (excludeFirst && index === 0 && !method) span.classList.add("excluded"); // left out of the row, renormalised
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
        method ? [methodTitle(state.attribution.spec), method.colours[index].score] : null, flagged && flagged.get(index)));
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
