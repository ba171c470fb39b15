// Display transforms of attention weights, and which tokens an analysis' rows and columns are.
// Raw softmax probabilities are the default; every other choice is explicit and labelled in the UI.
import { clipLevel } from "./contrast.js";

// weights: raw row; tokens: [{special, ...}]
// excludeSpecial: zero special tokens and renormalise the rest to sum to 1 (changes the weights)
// excludeFirst: the same for the first key (often an attention sink); both may be set
// scale: "raw" (colour = weight) or "minmax" (colour = (w - min) / (max - min); display only)
// adapt: at the raw scale, colour a long row up to its 99th percentile (contrast.js; returned as clip)
export function displayWeights(raw, tokens, { excludeSpecial = false, excludeFirst = false, scale = "raw", adapt = false } = {}) {
  const excluded = (i) => (excludeSpecial && Boolean(tokens[i] && tokens[i].special)) || (excludeFirst && i === 0);
  let weights = Array.from(raw);
  if (excludeSpecial || excludeFirst) {
    const kept = weights.reduce((sum, w, i) => sum + (excluded(i) ? 0 : w), 0);
    weights = weights.map((w, i) => (excluded(i) ? 0 : kept > 0 ? w / kept : 0));
  }
  let colours = weights;
  let range = [0, 1];
  let clip = null;
  if (scale === "raw" && adapt) {
    clip = clipLevel(weights.filter((_, i) => !excluded(i)));
    if (clip) { range = [0, clip.value]; colours = weights.map((w) => w / clip.value); }
  }
  if (scale === "minmax") {
    const considered = weights.filter((_, i) => !excluded(i));
    const lo = Math.min(...considered);
    const hi = Math.max(...considered);
    range = [lo, hi];
    colours = weights.map((w) => (hi > lo ? Math.max(0, (w - lo) / (hi - lo)) : 0));
  }
  return { weights, colours: colours.map((c) => Math.min(1, Math.max(0, c))), range, clip };
}

// Key tokens (columns) and query tokens (rows) of an analysis: an encoder-decoder's decoder and
// cross stacks have the target's tokens on one side.
export function keyTokens(result) {
  return result.attention.stack === "decoder" && result.target_tokens ? result.target_tokens : result.tokens;
}

export function queryTokens(result) {
  return result.attention.stack === "encoder" ? result.tokens : (result.target_tokens || result.tokens);
}
