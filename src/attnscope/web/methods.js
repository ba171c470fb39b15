// The "colour tokens by" controls, built from the method catalogue (GET /api/methods): the method
// selector lists the methods that score tokens (by title), the unit selector the catalogue's units,
// and the chosen method's options become inputs generated from their specs (number inputs with
// their limits, selects for choices, text for layers and heads, an "auto" box where allowed).
// The first entry, value "", is the page's own view: the attention row of the layer and head above.
import { el } from "./dom.js";
import { ObjectiveField } from "./objective.js";
import { t } from "./i18n.js";
import { methodDescription, methodTitle, optionHelp, unitLabel } from "./locales/methods.js";

export class MethodControls {
  constructor({ method, unit, options, onChange }) {
    this.select = method;
    this.unitSelect = unit;
    this.box = options;
    this.onChange = onChange;
    this.specs = new Map();
    this.inputs = new Map();
    this.objective = new ObjectiveField(() => this.onChange()); // what a target-explaining method explains
    this.select.addEventListener("change", () => { this.buildOptions(); this.onChange(); });
    this.unitSelect.addEventListener("change", () => this.onChange());
  }

  // catalogue: the /api/methods answer; kind: the loaded model's kind (causal, masked, seq2seq)
  load(catalogue, kind) {
    this.catalogue = catalogue;
    this.kind = kind;
    const chosen = this.select.value;
    const unit = this.unitSelect.value || "token";
    this.specs = new Map(catalogue.methods.filter((m) => m.scores_tokens).map((m) => [m.name, m]));
    const first = new Option(t("methods.attention_row"), "");
    const options = [first, ...[...this.specs.values()].map((spec) => {
      const option = new Option(methodTitle(spec), spec.name);
      option.title = methodDescription(spec);
      if (kind && !spec.kinds.includes(kind)) {
        option.disabled = true;
        option.textContent = t("methods.models", { title: methodTitle(spec), kinds: spec.kinds.map((k) => t(`methods.kind.${k}`)).join(t("methods.or")) });
      }
      return option;
    })];
    this.select.replaceChildren(...options);
    const keep = options.find((o) => o.value === chosen && !o.disabled);
    this.select.value = keep ? chosen : "";
    this.unitSelect.replaceChildren(...catalogue.units.map((u) => new Option(unitLabel(u), u)));
    this.unitSelect.value = catalogue.units.includes(unit) ? unit : catalogue.units[0];
    this.buildOptions();
  }

  // The same controls in the page's new language, the chosen method, unit and option values kept.
  relabel() {
    if (!this.catalogue) return;
    let values = null;
    try { values = this.options(); } catch { /* an option being edited: its default comes back */ }
    this.load(this.catalogue, this.kind);
    this.setOptions(values);
  }

  current() {
    return this.specs.get(this.select.value) || null;
  }

  unit() {
    return this.unitSelect.value;
  }

  choose(name, unit = this.unit()) {
    this.select.value = name;
    this.unitSelect.value = unit;
    this.buildOptions();
  }

  buildOptions() {
    const spec = this.current();
    this.inputs = new Map();
    for (const option of this.unitSelect.options) option.disabled = Boolean(spec) && !spec.units.includes(option.value);
    const fields = (spec ? spec.options : []).map((option) => this.field(option));
    const objective = this.objective.build(spec);
    if (objective) fields.unshift(objective);
    this.box.replaceChildren(...fields);
    this.box.hidden = fields.length === 0;
    this.box.dataset.method = spec ? spec.name : "";
  }

  field(option) {
    let input;
    if (option.type === "choice") {
      input = el("select", {}, ...option.choices.map((c) => new Option(c, c)));
      input.value = String(option.default);
    } else if (option.type === "int" || option.type === "float") {
      input = el("input", { type: "number", step: option.type === "int" ? "1" : "any", className: "number" });
      if (option.minimum !== null) input.min = String(option.minimum);
      if (option.maximum !== null) input.max = String(option.maximum);
      input.value = option.default === "auto" ? "" : String(option.default);
      if (option.auto) input.placeholder = t("methods.auto");
    } else { // layers, heads: text such as "all", "4-7", "1,3", "mean"
      input = el("input", { type: "text", size: 6, value: String(option.default) });
    }
    input.setAttribute("data-testid", `option-${option.name}`);
    input.dataset.option = option.name;
    input.addEventListener("change", () => this.onChange());
    let auto = null;
    if (option.auto) {
      auto = el("input", { type: "checkbox", checked: option.default === "auto" });
      auto.setAttribute("data-testid", `option-${option.name}-auto`);
      input.disabled = auto.checked;
      auto.addEventListener("change", () => {
        input.disabled = auto.checked;
        if (!auto.checked && !input.value) input.value = option.minimum !== null ? String(Math.max(option.minimum, 32)) : "";
        this.onChange();
      });
    }
    this.inputs.set(option.name, { option, input, auto });
    const limits = option.minimum !== null || option.maximum !== null
      ? t("methods.limits", { min: option.minimum ?? "−∞", max: option.maximum ?? "∞" }) : "";
    return el("label", { className: "option", title: `${optionHelp(this.current(), option)}${limits}` }, `${option.name} `, input,
      auto ? el("label", { className: "auto" }, auto, ` ${t("methods.auto")}`) : null);
  }

  // The request's {objective, target} (objective.js): {} for the next token
  target() {
    return this.objective.request();
  }

  // {name: value} for the request; an Error naming the option when an input is not valid
  options() {
    const values = {};
    for (const { option, input, auto } of this.inputs.values()) {
      if (auto && auto.checked) { values[option.name] = "auto"; continue; }
      if (option.type === "int" || option.type === "float") {
        const number = input.valueAsNumber;
        const range = t("methods.between", { min: option.minimum ?? "−∞", max: option.maximum ?? "∞" });
        if (!Number.isFinite(number) || (option.type === "int" && !Number.isInteger(number))) {
          throw new Error(t(option.type === "int" ? "methods.integer" : "methods.number", { name: option.name, range }));
        }
        if ((option.minimum !== null && number < option.minimum) || (option.maximum !== null && number > option.maximum)) {
          throw new Error(t("methods.range", { name: option.name, range }));
        }
        values[option.name] = number;
      } else if (option.type === "choice") {
        values[option.name] = input.value;
      } else {
        const text = input.value.trim();
        if (!text) throw new Error(t("methods.empty", { name: option.name, example: JSON.stringify(String(option.default)) }));
        values[option.name] = text;
      }
    }
    return values;
  }

  // Show the options a request used (e.g. after reverting to an earlier method).
  setOptions(values) {
    for (const [name, value] of Object.entries(values || {})) {
      const field = this.inputs.get(name);
      if (!field) continue;
      if (field.auto) { field.auto.checked = value === "auto"; field.input.disabled = value === "auto"; }
      if (value !== "auto") field.input.value = String(value);
    }
  }
}
