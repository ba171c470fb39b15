// The model picker: the installed models and the loaded one's status in the header, and switching
// the server's model (the page then forgets the previous model's answer and analyses afresh).
import { getJSON, postJSON } from "./api.js";
import { $, fillSelect } from "./dom.js";
import { track } from "./jobs.js";
import { t } from "./i18n.js";
import "./locales/shell.js";

export class ModelPicker {
  // hooks: state (the shell's: model, catalogue, result, attribution, layer, head, query, stack);
  // methods (the method controls, rebuilt for the model's kind); analyze(options); fail(error)
  constructor(hooks) {
    this.hooks = hooks;
    this.methodsKind = null; // the model kind the method selector was built for
  }

  async refresh() {
    const { state, methods } = this.hooks;
    const [info, models] = await Promise.all([getJSON("/api/model"), getJSON("/api/models")]);
    if (info.model) state.model = info.model;
    const current = info.model ? info.model.spec : "";
    const options = models.models.filter((m) => m.installed).map((m) => [m.alias, `${m.alias} — ${m.title}`]);
    if (current && !options.some(([alias]) => alias === current)) options.unshift([current, current]);
    fillSelect($("model-select"), options, current);
    $("model-status").textContent = info.model ? `${info.model.name} · ${info.model.kind}` : info.message;
    const kind = info.model ? info.model.kind : null;
    if (state.catalogue && kind !== this.methodsKind) {
      methods.load(state.catalogue, kind);
      this.methodsKind = kind;
    }
  }

  async switch() {
    const { state, analyze, fail } = this.hooks;
    const spec = $("model-select").value;
    $("model-status").textContent = `${t("shell.model.loading", { spec })}…`;
    $("analyze").disabled = true;
    try {
      const info = await track(t("shell.model.loading", { spec }), () => postJSON("/api/model", { spec }));
      state.model = info.model;
      state.result = null;
      state.attribution = null;
      state.layer = -1; state.head = "mean"; state.query = -1; state.stack = null;
      await this.refresh();
    } catch (error) {
      fail(error);
      await this.refresh().catch(() => {});
      $("analyze").disabled = false;
      return;
    }
    await analyze({ fresh: true });
  }
}
