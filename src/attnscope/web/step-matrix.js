// The per-step attribution of a generation (POST /api/traces/{id}/attribute): generated steps ×
// earlier positions on a canvas, with labelled axes, a colour bar and a hover read-out of raw scores.
import { postJSON } from "./api.js";
import { $, count, fillSelect, scaleLegend } from "./dom.js";
import { format } from "./format.js";
import { track } from "./jobs.js";
import { ATTENTION, NEGATIVE, POSITIVE, colourBar } from "./palette.js";
import { drawMatrix, matrixCells } from "./timeline.js";

export const fade = (rgb, t) => rgb.map((c) => Math.round(255 - (255 - c) * t));
// colour-bar position t in [0, 1] of a signed scale: teal (−) through white (0) to red (+)
export const divergingAt = (t) => (t < 0.5 ? fade(NEGATIVE, 1 - 2 * t) : fade(POSITIVE, 2 * t - 1));

export class StepMatrix {
  // panel: the Generation (its body, steps, step, tokens and active state); hooks: methods(), fail(error)
  constructor(panel, hooks) {
    this.panel = panel;
    this.hooks = hooks;
    this.shown = null; // {method, spec, body, cells, geometry}
    $("step-method").addEventListener("change", () => this.attribute($("step-method").value));
    $("attribution-matrix").addEventListener("mousemove", (event) => this.readout(event));
  }

  clear() {
    this.shown = null;
    $("attribution-matrix").hidden = true;
    $("matrix-legend").textContent = "";
    $("matrix-readout").textContent = "";
  }

  // the methods that score steps; none for an encoder-decoder (its steps read the encoder through
  // cross-attention: not attributed per step yet)
  fillMethods() {
    const usable = this.panel.seq2seq ? [] : this.hooks.methods();
    const options = [["", usable.length ? "— (none)" : "— (decoder-only models)"], ...usable.map((m) => [m.name, m.title])];
    fillSelect($("step-method"), options, this.shown ? this.shown.method : "");
    $("step-method").disabled = !usable.length;
  }

  async attribute(method) {
    if (!method) {
      this.clear();
      return;
    }
    const spec = this.hooks.methods().find((m) => m.name === method);
    const traceId = this.panel.body.trace_id;
    try {
      const body = await track(`${spec.title} for every step`, (id) => postJSON(`/api/traces/${traceId}/attribute`,
        { method, progress_id: id }), { progress: true });
      if (!this.panel.active || this.panel.body.trace_id !== traceId) return;
      this.shown = { method, spec, body };
      this.draw();
    } catch (error) {
      this.fillMethods(); // back to what the matrix shows
      this.hooks.fail(error);
    } finally {
      count("stepAttributions");
    }
  }

  draw() {
    if (!this.shown) return;
    const canvas = $("attribution-matrix");
    const { spec, body } = this.shown;
    const width = this.panel.tokens.length;
    let top = 0;
    for (const row of body.scores) for (const v of row) if (v !== null) top = Math.max(top, Math.abs(v));
    const signed = spec.signed || body.scores.some((row) => row.some((v) => v !== null && v < 0));
    canvas.hidden = false;
    Object.assign(canvas.dataset, { method: body.method, rows: String(body.scores.length), scale: String(top) });
    if (!this.shown.cells) this.shown.cells = matrixCells(body.scores, width, { signed, scale: top });
    const labels = this.panel.steps.map((s) => s.token.text.replace(/ /g, "␣").replace(/\n/g, "↵"));
    this.shown.geometry = drawMatrix(canvas, this.shown.cells, { labels, current: this.panel.step });
    const at = (t) => (signed ? divergingAt(t) : fade(ATTENTION, t));
    $("matrix-legend").replaceChildren(
      `${spec.title}: row s scores the tokens before step s's token (it cannot depend on later ones: blank). ` +
      (signed ? "Red positive, teal negative; colour = |score| ÷ the largest |score|. " : "Colour = score ÷ the largest score. ") +
      "The blue outline is the step shown; hover a cell for its raw score. ",
      scaleLegend(colourBar(at), signed ? -top : 0, top, "score"),
    );
  }

  readout(event) {
    if (!this.shown || !this.shown.geometry) return;
    const g = this.shown.geometry;
    const box = event.target.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    if (x < g.left || x >= g.right || y < g.top || y >= g.bottom) return;
    const s = Math.floor(((y - g.top) / (g.bottom - g.top)) * g.steps);
    const k = Math.floor(((x - g.left) / (g.right - g.left)) * g.width);
    const row = this.shown.body.scores[s] || [];
    const value = k < row.length ? row[k] : null;
    const tokens = this.panel.tokens;
    const out = $("matrix-readout");
    out.dataset.step = String(s);
    out.dataset.position = String(k);
    out.dataset.value = value === null ? "" : String(value);
    out.textContent = `step ${s} (${JSON.stringify(this.panel.steps[s].token.text)}) ← position ${k} ` +
      `(${JSON.stringify(tokens[k] ? tokens[k].text : "")}): ${value === null ? "— (after the step's query)" : format(value)}`;
  }
}
