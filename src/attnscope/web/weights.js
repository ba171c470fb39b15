// Display transforms of attention weights, and which tokens an analysis' rows and columns are.
// Raw softmax probabilities are the default; every other choice is explicit and labelled in the UI.

// weights: raw row; tokens: [{special, ...}]
// excludeSpecial: zero special tokens and renormalise the rest to sum to 1 (changes the weights)
// scale: "raw" (colour = weight) or "minmax" (colour = (w - min) / (max - min); display only)
export function displayWeights(raw, tokens, { excludeSpecial = false, scale = "raw" } = {}) {
  let weights = Array.from(raw);
  if (excludeSpecial) {
    const kept = weights.reduce((sum, w, i) => sum + (tokens[i] && tokens[i].special ? 0 : w), 0);
    weights = weights.map((w, i) => (tokens[i] && tokens[i].special ? 0 : kept > 0 ? w / kept : 0));
  }
  let colours = weights;
  let range = [0, 1];
  if (scale === "minmax") {
    const considered = weights.filter((_, i) => !(excludeSpecial && tokens[i] && tokens[i].special));
    const lo = Math.min(...considered);
    const hi = Math.max(...considered);
    range = [lo, hi];
    colours = weights.map((w) => (hi > lo ? Math.max(0, (w - lo) / (hi - lo)) : 0));
  }
  return { weights, colours: colours.map((c) => Math.min(1, Math.max(0, c))), range };
}

// Key tokens (columns) and query tokens (rows) of an analysis: an encoder-decoder's decoder and
// cross stacks have the target's tokens on one side.
export function keyTokens(result) {
  return result.attention.stack === "decoder" && result.target_tokens ? result.target_tokens : result.tokens;
}

export function queryTokens(result) {
  return result.attention.stack === "encoder" ? result.tokens : (result.target_tokens || result.tokens);
}
