// Display transforms of attention weights. Raw softmax probabilities are the default; every other
// choice is explicit and labelled in the UI.

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
  if (scale === "minmax") {
    const considered = weights.filter((_, i) => !(excludeSpecial && tokens[i] && tokens[i].special));
    const lo = Math.min(...considered);
    const hi = Math.max(...considered);
    colours = weights.map((w) => (hi > lo ? Math.max(0, (w - lo) / (hi - lo)) : 0));
  }
  return { weights, colours: colours.map((c) => Math.min(1, Math.max(0, c))) };
}
