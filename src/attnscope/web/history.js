// The History panel: the runs the server stored (GET /api/runs), searched by text, model, method,
// kind and date; a run opens from its stored answer alone (GET /api/runs/{id}: no model runs, so it
// shows exactly the numbers it was answered with, whatever model is loaded now), with the rule log
// of the rules checked on it (rule-log.js); delete; export.
import { ApiError, deleteJSON, getJSON } from "./api.js";
import { summaryLine, summaryTable } from "./bias-summary.js";
import { $, count, el, scaleLegend, tokenChip } from "./dom.js";
import { dpWords, format, formatProb } from "./format.js";
import { NEGATIVE, POSITIVE, attentionRGB, blend, colourBar, colourWords, css, onColours, scoreColour } from "./palette.js";
import { ruleLog } from "./rule-log.js";
import { t } from "./i18n.js";
import { methodTitle } from "./locales/methods.js";
import "./locales/history.js";
import "./locales/shell.js";

const PAGE = 50; // runs per page of the list
const fade = (rgb, t) => blend(rgb, t); // over the page background
const signedAt = (t) => (t < 0.5 ? fade(NEGATIVE, 1 - 2 * t) : fade(POSITIVE, 2 * t - 1));

export class History {
  // hooks: fail(error)
  constructor(hooks) {
    this.hooks = hooks;
    this.shown = 0;
    $("history-button").addEventListener("click", () => this.toggle());
    $("history-search").addEventListener("click", () => this.search());
    $("history-more").addEventListener("click", () => this.search({ more: true }));
    for (const id of ["history-text", "history-model"]) {
      $(id).addEventListener("keydown", (event) => { if (event.key === "Enter") this.search(); });
    }
    onColours(() => this.recolour());
  }

  // The theme or the palette changed: the open run drawn again in the new colours (its chips' backgrounds,
  // colour bars and legend words), at the step its timeline shows, from the answer already fetched.
  recolour() {
    const box = $("stored-run");
    if (!this.opened || box.dataset.runId !== this.opened.run.id) return;
    const range = box.querySelector('[data-testid="stored-timeline"]');
    this.show(this.opened.run, this.opened.answer, range ? range.value : null)
      .catch((error) => this.hooks.fail(error)).finally(() => count("runRecolours"));
  }

  toggle() {
    const open = $("history").hidden;
    $("history").hidden = !open;
    $("history-button").setAttribute("aria-pressed", String(open));
    if (open) this.search();
  }

  fillMethods(catalogue) {
    this.catalogue = catalogue;
    const chosen = $("history-method").value;
    const names = catalogue ? catalogue.methods.map((m) => [m.name, methodTitle(m)]) : [];
    $("history-method").replaceChildren(new Option(t("history.any_method"), ""), ...names.map(([v, title]) => new Option(title, v)));
    $("history-method").value = chosen;
  }

  // The panel in the page's new language: the method names, the list and the open run drawn again.
  relabel() {
    this.fillMethods(this.catalogue);
    if (!$("history").hidden) this.search();
    if ($("stored-run").dataset.runId) this.open($("stored-run").dataset.runId);
  }

  query(offset) {
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    const pairs = [["text", "history-text"], ["model", "history-model"], ["method", "history-method"],
      ["kind", "history-kind"], ["since", "history-since"], ["until", "history-until"]];
    for (const [name, id] of pairs) if ($(id).value) params.set(name, $(id).value);
    if (params.get("until")) params.set("until", nextDay(params.get("until"))); // "until" a day: that day included
    return params;
  }

  async search({ more = false } = {}) {
    const list = $("history-list");
    const offset = more ? this.shown : 0;
    try {
      const body = await getJSON(`/api/runs?${this.query(offset)}`);
      if (!more) list.replaceChildren();
      list.append(...views(body.runs).map((group) => this.group(group)));
      this.shown = offset + body.runs.length;
      $("history-count").textContent = body.total ? t("history.count", { shown: this.shown, total: body.total }) : t("history.none");
      $("history-more").hidden = this.shown >= body.total;
    } catch (error) {
      $("history-count").textContent = error instanceof ApiError && error.status === 400 ? error.message : "";
      if (!(error instanceof ApiError && error.status === 400)) this.hooks.fail(error);
    } finally {
      count("historySearches");
    }
  }

  // One row per analysis: the views of one text on one model (each layer, head or query the page
  // asked for is stored as its own run) fold under the newest, "N views" lists the rest.
  group(runs) {
    const row = this.item(runs[0]);
    if (runs.length === 1) return row;
    const rest = el("ul", { className: "run-views", testid: "run-views-list", hidden: true },
      ...runs.slice(1).map((run) => this.item(run)));
    const toggle = el("button", { type: "button", testid: "run-views", ariaExpanded: "false",
      title: t("history.views.title") }, t("history.views", { n: runs.length }));
    toggle.addEventListener("click", () => {
      rest.hidden = !rest.hidden;
      toggle.setAttribute("aria-expanded", String(!rest.hidden));
    });
    row.append(" ", toggle, rest);
    return row;
  }

  item(run) {
    const text = run.text.length > 90 ? `${run.text.slice(0, 89)}…` : run.text;
    const open = el("button", { type: "button", testid: "run-open" }, t("history.open"));
    const remove = el("button", { type: "button", testid: "run-delete" }, t("history.delete"));
    const row = el("li", { className: "run-item", testid: "run-item", dataset: { runId: run.id, kind: run.kind } },
      el("span", { className: "muted" }, `${run.created.slice(0, 19).replace("T", " ")} UTC · ${t(`shell.kind.${run.kind}`)} · ${run.model_name}` +
        (run.method ? ` · ${run.method}` : "")), " ", el("span", { className: "run-text" }, text), " ",
      el("span", { className: "muted" }, run.summary), " ", open, " ", remove);
    open.addEventListener("click", () => this.open(run.id));
    remove.addEventListener("click", () => this.remove(run.id, row));
    return row;
  }

  async remove(id, row) {
    try {
      await deleteJSON(`/api/runs/${id}`);
      if (row.querySelector(".run-views")) this.search(); // the newest of several views: the group is remade
      else row.remove();
      this.shown -= 1;
      if ($("stored-run").dataset.runId === id) $("stored-run").replaceChildren();
    } catch (error) {
      this.hooks.fail(error);
    } finally {
      count("runDeletes");
    }
  }

  async open(id) {
    try {
      const { run, answer } = await getJSON(`/api/runs/${id}`);
      this.opened = { run, answer };
      await this.show(run, answer);
    } catch (error) {
      this.hooks.fail(error);
    } finally {
      count("runOpens");
    }
  }

  // A stored run in the box below the list; `step`: the generation timeline's position (else the last).
  async show(run, answer, step = null) {
    const box = $("stored-run");
    box.dataset.runId = run.id;
    box.dataset.kind = run.kind;
    const head = el("p", { className: "stored-head" },
      el("strong", {}, t("history.stored", { id: run.id })), t("history.stored.detail", { kind: t(`shell.kind.${run.kind}`),
        created: run.created.replace("T", " "), origin: run.origin, model: run.model_name, fingerprint: run.model_fingerprint.slice(0, 12) }),
      el("a", { href: `/api/runs/${run.id}/export`, download: `attnscope-run-${run.id}.zip`, testid: "run-export" }, t("history.export")));
    const body = run.kind === "generation" ? generationOf(answer)
      : run.kind === "attribution" ? attributionOf(run.text, answer)
        : run.kind === "counterfactual" ? counterfactualOf(answer)
          : run.kind === "bias" ? [summaryLine(answer), summaryTable(answer)] : analysisOf(answer);
    const noised = answer.dp ? [el("p", { className: "legend", testid: "stored-dp-label" },
      dpWords(run.kind === "attribution" ? t("history.scores") : t("history.weights"), answer.dp, t("history.dp_note")))] : [];
    box.replaceChildren(head, ...noised, ...body);
    const range = box.querySelector('[data-testid="stored-timeline"]');
    if (range && step !== null) {
      range.value = step;
      range.dispatchEvent(new Event("input"));
    }
    const log = await ruleLog(run.id); // the rules checked on this run, if any
    if (log && box.dataset.runId === run.id) box.append(log);
  }
}

// Consecutive runs (newest first) of the same kind, model, text and method, grouped.
function views(runs) {
  const groups = [];
  const key = (run) => [run.kind, run.model_fingerprint, run.text_sha256, run.method || ""].join(" ");
  for (const run of runs) {
    const last = groups[groups.length - 1];
    if (last && key(last[0]) === key(run)) last.push(run);
    else groups.push([run]);
  }
  return groups;
}

function nextDay(date) {
  if (date.includes("T")) return date;
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + 1);
  return day.toISOString().slice(0, 10);
}

// A strip of tokens coloured by attention weights (the stored row), with the query outlined.
function weightStrip(tokens, weights, query) {
  const strip = el("div", { className: "strip stored-strip", testid: "stored-strip" }, ...tokens.map((token, i) => {
    const w = weights[i] || 0;
    const chip = el("span", { className: "tok", testid: "stored-token", title: `${format(w)}`,
      dataset: { weight: String(w), tokenIndex: String(i) } }, token.text);
    chip.style.background = css(attentionRGB(w), 1);
    if (i === query) chip.classList.add("query");
    if (token.special) chip.classList.add("special");
    return chip;
  }));
  return [strip, el("p", { className: "legend" }, t("history.red", colourWords()),
    scaleLegend(colourBar(attentionRGB), 0, 1, t("history.attention_weight")))];
}

function candidates(top) {
  return el("ol", { className: "step-top", testid: "stored-candidates" },
    ...top.slice(0, 10).map((c) => el("li", { dataset: { prob: String(c.prob) } }, tokenChip(c.token), ` ${formatProb(c.prob)}`)));
}

function analysisOf(answer) {
  const tokens = answer.attention.stack === "decoder" && answer.target_tokens ? answer.target_tokens : answer.tokens;
  return [el("p", {}, `${answer.attention.label}. `), ...weightStrip(tokens, answer.attention.weights, answer.attention.query),
    ...(answer.prediction ? [el("p", {}, t("history.candidates")), candidates(answer.prediction.top)] : [])];
}

function attributionOf(text, answer) {
  const scores = answer.scores;
  const top = Math.max(0, ...scores.filter((s) => s !== null).map(Math.abs));
  const signed = scores.some((s) => s !== null && s < 0);
  const strip = el("div", { className: "strip stored-strip", testid: "stored-strip" }, ...answer.units.map((unit, i) => {
    const chip = el("span", { className: "tok", testid: "stored-unit", dataset: { score: String(scores[i]) },
      title: scores[i] === null ? "—" : format(scores[i]) }, unit.start === null ? unit.text : text.slice(unit.start, unit.end));
    chip.style.background = scoreColour(scores[i], top);
    return chip;
  }));
  return [el("p", {}, t("history.per", { method: answer.method, unit: t(`methods.unit.${answer.granularity}`) }) +
    (answer.target && answer.target.text ? t("history.for_target", { target: JSON.stringify(answer.target.text) }) : t("history.for_prediction")) + ". "),
  strip, el("p", { className: "legend" }, t(signed ? "history.signed" : "history.unsigned", colourWords()),
    scaleLegend(colourBar(signed ? signedAt : (x) => fade(POSITIVE, x)),
    signed ? -top : 0, top, t("history.score")))];
}

// Both texts and both predictions (the page's Counterfactual view draws the rest from a fresh run).
function counterfactualOf(answer) {
  const side = (name, body) => [el("p", {}, `${name}: `, el("span", { className: "run-text", testid: "stored-text" }, body.text)),
    ...(body.prediction ? [candidates(body.prediction.top)] : [])];
  const changes = answer.changes.map((c) => `${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`).join("; ");
  return [el("p", {}, t("history.changes", { label: answer.view.label, n: answer.changes.length, changes })),
    ...side(t("history.original"), answer.original), ...side(t("history.counterfactual"), answer.counterfactual)];
}

function generationOf(answer) {
  const tokens = answer.target_tokens || [...answer.prompt.tokens, ...answer.generated.tokens];
  const range = el("input", { type: "range", min: "0", max: String(Math.max(0, answer.steps.length - 1)),
    value: String(Math.max(0, answer.steps.length - 1)), testid: "stored-timeline", ariaLabel: t("shell.step") });
  const view = el("div", {});
  const show = () => {
    const step = answer.steps[Number(range.value)];
    const { weights, label } = step.attention;
    const keys = step.attention.stack === "cross" ? answer.prompt.tokens : tokens;
    view.replaceChildren(el("p", {}, t("history.step", { n: step.step }), tokenChip(step.token.text),
      t("history.step.detail", { p: formatProb(step.prob), logprob: format(step.logprob_cum), label })),
    ...weightStrip(keys, [...weights, ...Array(Math.max(0, keys.length - weights.length)).fill(0)], step.position - 1),
    el("p", {}, t("history.step_candidates")), candidates(step.top));
  };
  range.addEventListener("input", show);
  show();
  const steps = el("div", { className: "step-tokens strip" }, ...answer.steps.map((s) =>
    el("span", { className: "step-token", dataset: { step: String(s.step), prob: String(s.prob) } }, tokenChip(s.token.text))));
  return [el("p", {}, t("history.prompt", { text: answer.prompt.text })), steps, range, view];
}
