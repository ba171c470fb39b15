// Personal data in the page: an answer's "pii" spans (start, end, kind, label; never the values)
// mask the tokens over them — their text becomes the label — until the user ticks "show personal
// data". That choice is display only: never sent to the server, never stored.
import { $ } from "./dom.js";

export const revealed = () => $("reveal-pii").checked;

// A zero-width byte piece continues the character before its position (as the server's masking).
function over(token, spans, offset) {
  if (token.start === null || token.start === undefined) return null;
  const start = token.start + offset;
  const end = token.end + offset;
  const [lo, hi] = start === end && start > 0 ? [start - 1, start] : [start, Math.max(end, start + 1)];
  return spans.find((s) => s.start < hi && s.end > lo) || null;
}

export const CONTINUED = "…"; // the text of a span's later tokens: the label once per value is enough

// tokens (offsets + offset index into the text the spans were found in) with the masked ones' text
// replaced: the first token of a value by its span's label, the value's later tokens by CONTINUED;
// the same array when nothing is masked or data is revealed.
export function masked(tokens, spans, offset = 0) {
  if (!tokens || !spans || !spans.length || revealed()) return tokens;
  let previous = null;
  return tokens.map((token) => {
    const span = over(token, spans, offset);
    const text = span === previous ? CONTINUED : span && span.label;
    if (token.start !== null && token.start !== undefined) previous = span;
    return span ? { ...token, text, masked: true } : token;
  });
}

// A generation's answer as shown: prompt and answer tokens and each step's token masked (the texts
// stay as given: they name the trace on the server).
export function maskedGeneration(body) {
  const spans = body.pii;
  if (!spans || !spans.length || revealed()) return body;
  const generated = masked(body.generated.tokens, spans, body.prompt.text.length);
  return {
    ...body,
    prompt: { ...body.prompt, tokens: masked(body.prompt.tokens, spans) },
    generated: { ...body.generated, tokens: generated },
    steps: body.steps.map((step, s) => (generated[s] && generated[s].masked
      ? { ...step, token: { ...step.token, text: generated[s].text } } : step)),
  };
}
