// The generation panel: Generate streams each new token as the server produces it (server-sent
// events), then a timeline replays the steps. Choosing a step shows, in the views below, the
// attention of the position that produced its token (query p - 1) and its candidates; the step diff,
// key frames, loops, a marked span's attention and the centre-of-mass trajectory are computed here
// from the steps' rows (GET /api/traces/{id}/steps: one float16 matrix per layer and head).
import { getArray, postJSON } from "./api.js";
import { $, count, el, scaleLegend, tokenChip } from "./dom.js";
import { format, formatProb } from "./format.js";
import { track } from "./jobs.js";
import { PREDICTION, colourBar, colourWords, css, onColours } from "./palette.js";
import * as S from "./steps.js";
import { BeamTree } from "./beams.js";
import { StepMatrix, divergingAt } from "./step-matrix.js";
import { drawDiff, drawMarks, drawTrajectory } from "./timeline.js";
import { maskedGeneration } from "./privacy.js";
import { markFlag, stepFlags } from "./rule-flags.js";
import { mountVirtualStrip, unmountVirtualStrip } from "./virtual.js";
import { t } from "./i18n.js";
import "./locales/generation.js";

let diffBar = null; // the step diff's colour bar, drawn once per theme and palette
const DIFF_BAR = () => (diffBar = diffBar || colourBar(divergingAt));
const PLAY_MS = 180; // a step every PLAY_MS while playing
const VIEWS_AFTER_MS = 60; // while the timeline is dragged, the views below follow once it pauses this long
const EXACT_AFTER_MS = 250; // the shown row is float16 from the steps matrix; the exact analysis follows
const VIRTUAL_MIN_STEPS = 1500;

export class Generation {
  // hooks: view() -> {layer, head}; showRow(query, weights, prediction): draw the views now;
  // analyzeAt(query): the exact analysis of that query; methods(): the catalogue's methods that score
  // steps; fail(error)
  constructor(hooks) {
    this.hooks = hooks;
    this.body = null; // the /api/generate answer
    this.matrix = null; // {key, values: Float32Array, width}
    this.step = 0;
    this.timer = null;
    this.exact = null;
    this.marks = { keyFrames: [], loops: [], faded: [] };
    // dragging: the panel follows every frame, the views below once the drag pauses (VIEWS_AFTER_MS)
    $("timeline").addEventListener("input", () => this.setStep(Number($("timeline").value), { live: true }));
    $("play").addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    $("diff-base").addEventListener("input", () => this.draw());
    $("constraint").addEventListener("input", () => { if (this.matrix) { this.markSpan(); this.draw(); } });
    this.matrixView = new StepMatrix(this, hooks);
    this.beams = new BeamTree(this);
    document.addEventListener("keydown", (event) => this.key(event));
    onColours(() => this.recolour());
  }

  get active() { return this.body !== null; }
  relabel() { // the page's language changed: every line of the panel worded again, the numbers kept
    if (!this.active || !this.matrix) return;
    this.summarise();
    this.computeMarks();
    this.renderTokens();
    this.matrixView.fillMethods();
    this.beams.show(this.raw.beam_tree);
    this.draw();
  }
  recolour() { // the theme or the palette changed: the legends' colour words and every canvas again
    diffBar = null;
    this.matrixView.recolour();
    if (!this.active || !this.matrix) return;
    this.computeMarks();
    this.renderTokens();
    this.draw();
  }
  // the analysed text: prompt + answer (an encoder-decoder's: the encoder's input; its trace has the answer)
  get text() { return this.seq2seq ? this.body.prompt.text : this.body.prompt.text + this.body.generated.text; }
  get steps() { return this.body.steps; }
  get seq2seq() { return Boolean(this.body && this.body.target_tokens); } // an encoder-decoder's generation
  // the key tokens of the panel's rows: the decoder's (prompt + answer, or an encoder-decoder's
  // start token + answer) or, for cross-attention, the encoder's
  get tokens() {
    if (!this.seq2seq) return [...this.body.prompt.tokens, ...this.body.generated.tokens];
    return this.stack === "cross" ? this.body.prompt.tokens : this.body.target_tokens;
  }
  // the stack the panel's rows come from: the views' stack, cross-attention while they show the encoder
  get stack() {
    const stack = this.hooks.view().stack;
    return stack === "encoder" ? "cross" : stack;
  }

  clear() {
    this.serial = (this.serial || 0) + 1;
    clearTimeout(this.views);
    clearTimeout(this.exact);
    this.pause();
    this.body = null;
    this.matrix = null;
    this.matrixView.clear();
    this.beams.show(null);
    $("generation").hidden = true;
  }

  // ---- generating ---------------------------------------------------------------------------------
  // decoding: {do_sample, seed} or {num_beams} (greedy: {})
  async run({ text, maxNewTokens, chat, decoding = {} }) {
    this.clear();
    const serial = ++this.serial; // a clear() or another run meanwhile makes this one's answer stale
    $("generation").hidden = false;
    $("gen-summary").textContent = t("gen.generating");
    const strip = $("step-tokens");
    unmountVirtualStrip(strip);
    strip.replaceChildren();
    const prompt = chat ? { messages: [{ role: "user", content: text }] } : { text };
    const body = await track(t("gen.job"), (id) => postJSON("/api/generate", {
      ...prompt, ...decoding, max_new_tokens: maxNewTokens, top_k: 10, progress_id: id,
    }), { progress: true, onItems: (items) => { if (serial === this.serial) this.stream(items); } });
    if (serial !== this.serial) return null; // the page moved on (another model, another text)
    this.raw = body; // as answered; this.body is what the panel shows (personal data masked: privacy.js)
    this.body = maskedGeneration(body);
    this.beams.show(body.beam_tree);
    this.step = body.steps.length - 1;
    await this.sync();
    this.setStep(this.step, { show: false });
    await this.hooks.analyzeAt(this.steps[this.step].position - 1); // the views, exact
    return body;
  }

  remask() { // "show personal data" changed
    if (!this.active) return;
    this.body = maskedGeneration(this.raw);
    this.renderTokens();
    if (this.matrix) this.draw();
  }

  stream(items) { // tokens as they come: a preview (the answer has the exact text and spans)
    const strip = $("step-tokens");
    for (const item of items) { // a reconnected event stream sends everything again: skip what is shown
      if (item.step >= strip.childElementCount) strip.append(this.tokenNode(item.step, item.text, item.prob));
    }
  }

  tokenNode(step, text, prob) {
    const node = el("span", { className: "step-token", testid: "step-token" }, tokenChip(text));
    Object.assign(node.dataset, { step: String(step), token: text, prob: String(prob) });
    node.style.background = css(PREDICTION, 0.08 + 0.32 * prob);
    node.title = t("gen.step_title", { step, text: JSON.stringify(text), p: formatProb(prob) });
    node.addEventListener("click", () => this.setStep(step));
    if (this.body && step === this.step) node.classList.add("current");
    if (this.marks.keyFrames.includes(step)) node.classList.add("key");
    if (this.body) markFlag(node, (stepFlags(this.body.trace_id) || new Map()).get(step)); // a rule failed at this step
    return node;
  }

  renderTokens() {
    const strip = $("step-tokens");
    const make = (s) => [this.tokenNode(s, this.steps[s].token.text, this.steps[s].prob)];
    if (this.steps.length > VIRTUAL_MIN_STEPS) {
      mountVirtualStrip(strip, this.steps.length, make, []);
      return;
    }
    unmountVirtualStrip(strip);
    strip.replaceChildren(...this.steps.flatMap((_, s) => make(s)));
  }

  // ---- the steps matrix of the current layer and head -------------------------------------------------
  async sync() { // after a generation, and after each analysis (the views' layer or head may have changed)
    if (!this.active) return;
    const { layer, head } = this.hooks.view();
    const stack = this.stack;
    const key = `${this.body.trace_id}|${layer}|${head}`;
    if (this.matrix && this.matrix.key === key && (!stack || stack === this.matrix.stack)) return;
    const params = new URLSearchParams({ layer: String(layer), head: String(head), ...(stack ? { stack } : {}) });
    const traceId = this.body.trace_id;
    const { header, values } = await getArray(`/api/traces/${traceId}/steps?${params}`);
    if (!this.active || this.body.trace_id !== traceId) return; // cleared meanwhile
    this.matrix = { key, values, width: header.shape[1], layer: header.layer, stack: header.stack };
    this.summarise();
    $("timeline").max = String(Math.max(0, this.steps.length - 1));
    this.computeMarks();
    this.renderTokens();
    this.matrixView.fillMethods();
    this.draw();
  }

  summarise() { // the panel's first line
    const { steps } = this;
    const last = steps[steps.length - 1];
    const reason = this.body.stop_reason;
    $("gen-summary").textContent = t("gen.summary", { n: steps.length, reason,
      why: t(reason === "length" ? "gen.stop.length" : reason === "eos" ? "gen.stop.eos" : "gen.stop.other"),
      logprob: format(last ? last.logprob_cum : 0) });
  }

  // What the steps' rows say, once per matrix (a layer/head change); the marked span's share follows
  // the span field alone (markSpan), without going over every row pair again.
  computeMarks() {
    if (!this.matrix) return;
    const { values, width } = this.matrix;
    const n = this.steps.length;
    this.centres = [...Array(n).keys()].map((s) => S.centreOfMass(S.row(values, width, s)));
    const cross = this.matrix.stack === "cross"; // keys: the encoder's tokens, not the steps' prefixes
    this.positions = cross ? null : this.steps.map((st) => st.position);
    $("trajectory-legend").textContent = t("gen.trajectory", { ...colourWords(), where: t(cross ? "gen.trajectory.cross" : "gen.trajectory.query") });
    this.marks = {
      branches: this.steps.filter((st) => st.parent !== undefined && st.beam !== st.parent).map((st) => st.step),
      keyFrames: S.keyFrames(S.stepDistances(values, width, n)),
      loops: S.loopSteps(this.steps.map((s) => s.token.id), values, width),
      faded: [],
    };
    this.markSpan();
  }

  markSpan() {
    const { values, width } = this.matrix;
    const n = this.steps.length;
    const marked = this.constraintSpan();
    const mass = marked ? S.spanMass(values, width, n, this.body.prompt.tokens, marked.start, marked.end) : null;
    this.mass = mass;
    this.marks.faded = mass && mass.tokens ? [...mass.mass.keys()].filter((s) => mass.mass[s] < S.CONSTRAINT_LEVEL) : [];
    const steps = (count) => (count === 1 ? t("gen.step1") : t("gen.steps", { n: count }));
    $("marks-legend").textContent = t("gen.marks", { ...colourWords(), distance: S.KEY_FRAME_DISTANCE, frames: steps(this.marks.keyFrames.length),
      ngram: S.LOOP_NGRAM, loops: steps(this.marks.loops.length), level: S.CONSTRAINT_LEVEL * 100,
      faded: marked ? steps(this.marks.faded.length) : t(this.seq2seq && this.stack !== "cross" ? "gen.marks.cross" : "gen.marks.none") }) +
      (this.body.settings.num_beams > 1 ? t("gen.marks.beams", { branches: steps(this.marks.branches.length) }) : ".");
  }

  constraintSpan() { // the marked text, found in the prompt (when the rows' keys are the prompt's tokens)
    const wanted = $("constraint").value;
    if (!wanted || !this.body || (this.seq2seq && this.stack !== "cross")) return null;
    const start = this.body.prompt.text.indexOf(wanted);
    return start < 0 ? null : { start, end: start + wanted.length };
  }

  // ---- choosing a step ------------------------------------------------------------------------------
  // show: draw the views for it too (now from the steps' rows, exactly after EXACT_AFTER_MS, or at
  // once with exactNow)
  setStep(step, { show = true, exactNow = false, live = false } = {}) {
    if (!this.active || !this.matrix || !this.steps.length) return;
    this.step = Math.max(0, Math.min(this.steps.length - 1, step));
    $("timeline").value = String(this.step);
    const strip = $("step-tokens");
    for (const node of strip.querySelectorAll(".step-token.current")) node.classList.remove("current");
    const node = strip.querySelector(`[data-step="${this.step}"]`);
    if (node) node.classList.add("current");
    this.draw();
    count("steps");
    if (!show) return;
    const info = this.steps[this.step];
    const query = info.position - 1;
    const views = () => {
      const weights = Array.from(S.row(this.matrix.values, this.matrix.width, this.step));
      this.hooks.showRow(query, weights, { position: query, top: info.top }, this.matrix.stack);
    };
    clearTimeout(this.views);
    if (live) this.views = setTimeout(views, VIEWS_AFTER_MS);
    else views();
    clearTimeout(this.exact);
    const exact = () => this.hooks.analyzeAt(query);
    if (exactNow) exact();
    else this.exact = setTimeout(exact, EXACT_AFTER_MS);
  }

  draw() {
    const { values, width } = this.matrix;
    const s = this.step;
    const info = this.steps[s];
    $("step-label").textContent = t("gen.step_of", { s, n: this.steps.length - 1 });
    drawMarks($("timeline-marks"), this.steps.length, { ...this.marks, current: s });
    this.beams.draw(s);
    this.drawInfo(info);
    const typed = Number($("diff-base").value);
    const base = $("diff-base").value === "" || !Number.isInteger(typed) ? s - 1
      : Math.max(0, Math.min(this.steps.length - 1, typed));
    const canvas = $("step-diff");
    Object.assign(canvas.dataset, { from: String(base), to: String(s) });
    if (base < 0 || base === s) {
      drawDiff(canvas, new Float32Array(this.keys(s)), this.keys(s));
      $("diff-legend").replaceChildren(t("gen.diff.none", { s, what: t(base < 0 ? "gen.diff.before" : "gen.diff.other") }));
    } else {
      this.drawDiffOf(base, s, S.difference(values, width, base, s));
    }
    drawTrajectory($("trajectory"), this.centres, this.positions, s, width);
    this.matrixView.draw();
  }

  keys(s) { // how many key positions step s's row has: its prefix, or every encoder token (cross)
    return this.matrix.stack === "cross" ? this.matrix.width : this.steps[s].position;
  }

  drawDiffOf(base, s, diff) {
    const n = Math.max(this.keys(s), this.keys(base));
    const top = drawDiff($("step-diff"), diff, n);
    const tokens = this.tokens;
    const [most, least] = S.extremes(diff, n, 3);
    const chip = (i, kind) => {
      const item = el("span", { className: `diff-item ${kind}`, testid: `diff-${kind}` }, tokenChip(tokens[i].text),
        ` #${i} ${diff[i] > 0 ? "+" : ""}${format(diff[i])}`);
      Object.assign(item.dataset, { position: String(i), delta: String(diff[i]) });
      return item;
    };
    const gained = most.filter((i) => diff[i] > 0).map((i) => chip(i, "gain"));
    const lost = least.filter((i) => diff[i] < 0).map((i) => chip(i, "loss"));
    $("diff-legend").replaceChildren(
      t("gen.diff", { ...colourWords(), s, base, layer: this.matrix.layer, head: this.hooks.view().head, top: format(top) }),
      ...(gained.length ? gained : ["—"]), t("gen.diff.lost"), ...(lost.length ? lost : ["—"]), " ",
      scaleLegend(DIFF_BAR(), -top, top, t("gen.difference")),
    );
  }

  drawInfo(info) {
    const rows = info.top.slice(0, 5).map((c) => el("li", { testid: "step-candidate", dataset: { prob: String(c.prob) } },
      tokenChip(c.token), ` ${formatProb(c.prob)}`));
    const sampled = info.sampled_prob !== undefined ? t("gen.sampled", { p: formatProb(info.sampled_prob) }) : "";
    $("step-info").replaceChildren(
      el("span", {}, t("gen.info", { step: info.step }), tokenChip(info.token.text), t("gen.info.detail", { position: info.position,
        p: formatProb(info.prob), sampled, logprob: format(info.logprob_cum),
        beam: info.beam !== null && info.beam !== undefined ? t("gen.info.beam", { n: info.beam }) : "" })),
      el("ol", { className: "step-top" }, ...rows),
    );
    const window = (this.body.windows || [])[this.matrix.layer];
    const p = info.position;
    const layer = this.matrix.layer;
    const slid = window && p > window ? t("gen.slid", { layer, window, last: p - window - 1 })
      : window ? t("gen.window", { layer, window }) : "";
    const cache = this.seq2seq
      ? t("gen.cache.seq2seq", { p, last: p - 1, n: this.body.prompt.tokens.length }) + (this.stack === "cross" ? t("gen.cache.cross") : "")
      : t("gen.cache", { p, last: p - 1, slid });
    $("cache-state").textContent = cache + (this.mass ? t("gen.marked", { p: formatProb(this.mass.mass[info.step]) }) : "");
  }

  // ---- playing ---------------------------------------------------------------------------------------
  play() {
    if (!this.active) return;
    if (this.step >= this.steps.length - 1) this.setStep(0);
    $("play").textContent = "⏸";
    $("play").setAttribute("aria-pressed", "true");
    this.timer = setInterval(() => {
      if (this.step >= this.steps.length - 1) { this.pause(); return; }
      this.setStep(this.step + 1);
    }, PLAY_MS);
  }

  pause() {
    clearInterval(this.timer);
    this.timer = null;
    $("play").textContent = "▶";
    $("play").setAttribute("aria-pressed", "false");
  }

  key(event) { // ← and → step through the generation when no text field has the focus
    if (!this.active || !["ArrowLeft", "ArrowRight"].includes(event.key)) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "range"))) return;
    if (target && target.id === "timeline") return; // the range moves itself
    event.preventDefault();
    this.setStep(this.step + (event.key === "ArrowRight" ? 1 : -1));
  }

  followQuery(query) { // a token clicked in the views: the step that query produced, if any
    if (!this.active) return false;
    const step = this.steps.findIndex((s) => s.position - 1 === query);
    if (step < 0) return false;
    this.setStep(step, { exactNow: true });
    return true;
  }
}
