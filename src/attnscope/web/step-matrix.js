// The per-step attribution of a generation (POST /api/traces/{id}/attribute): generated steps ×
// earlier positions on a canvas, with labelled axes, a colour bar and a hover read-out of raw scores.
import { postJSON } from "./api.js";
import { $, count, fillSelect, scaleLegend } from "./dom.js";
import { format } from "./format.js";
import { track } from "./jobs.js";
import { ATTENTION, NEGATIVE, POSITIVE, blend, colourBar, colourWords } from "./palette.js";
import { drawMatrix, matrixCells } from "./timeline.js";
import { t } from "./i18n.js";
import "./locales/generation.js";
import { methodTitle } from "./locales/methods.js";

export const fade = (rgb, t) => blend(rgb, t); // over the page background
// colour-bar position t in [0, 1] of a signed scale: negative (−) through the background (0) to positive (+)
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

  recolour() { // the theme or the palette changed: the cells painted again on the next draw
    if (this.shown) this.shown.cells = null;
  }

  // the methods that score steps; none for an encoder-decoder (its steps read the encoder through
  // cross-attention: not attributed per step yet)
  fillMethods() {
    const usable = this.panel.seq2seq ? [] : this.hooks.methods();
    const options = [["", usable.length ? t("matrix.none") : t("matrix.decoder_only")], ...usable.map((m) => [m.name, methodTitle(m)])];
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
      const body = await track(t("matrix.job", { method: methodTitle(spec) }), (id) => postJSON(`/api/traces/${traceId}/attribute`,
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
    const at = (x) => (signed ? divergingAt(x) : fade(ATTENTION, x));
    $("matrix-legend").replaceChildren(
      t("matrix.legend", { method: methodTitle(spec) }) + t(signed ? "matrix.signed" : "matrix.unsigned", colourWords()) + t("matrix.outline"),
      scaleLegend(colourBar(at), signed ? -top : 0, top, t("matrix.score")),
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
    out.textContent = t("matrix.readout", { s, text: JSON.stringify(this.panel.steps[s].token.text), k,
      key: JSON.stringify(tokens[k] ? tokens[k].text : ""), value: value === null ? t("matrix.after") : format(value) });
  }
}
