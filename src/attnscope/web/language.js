// The language switch: a select in the header (English / 简体中文), first set from the browser's
// language or the one kept from the last visit (i18n.js). On a switch the static HTML is translated
// (i18n.js), every mounted view's root is emptied and mounted again, the tab titles and the controls
// built from data (layer, head, method options) are relabelled, and the shown view is drawn again from
// the current state: the analysis is not redone, its numbers stay.
import { $, count } from "./dom.js";
import { LANGUAGES, language, onLanguage, setLanguage, translateDocument } from "./i18n.js";

// What the user typed or chose in a view's form fields with an id (value, ticked, data-* such as the
// text a suggestion was made for), so that a re-mount in the new language keeps it.
function typed(root) {
  return [...root.querySelectorAll("input[id], textarea[id], select[id]")].map((field) => ({
    id: field.id, value: field.value, checked: field.checked, dataset: { ...field.dataset },
  }));
}

function retype(root, kept) {
  for (const { id, value, checked, dataset } of kept) {
    const field = root.querySelector(`#${CSS.escape(id)}`);
    if (!field || field.type === "file") continue;
    if (field.type === "checkbox" || field.type === "radio") field.checked = checked;
    else if (field.tagName !== "SELECT" || [...field.options].some((o) => o.value === value)) field.value = value;
    Object.assign(field.dataset, dataset);
  }
}

// views: the registry; mounted: the ids of the views mounted so far (the shell mounts a view when
// first shown); ctx: the views' context; relabel(): the shell's data-built labels in the new language.
export function wireLanguage({ views, mounted, ctx, relabel }) {
  const select = $("language-select");
  select.replaceChildren(...LANGUAGES.map(([code, name]) => new Option(name, code)));
  select.value = language();
  document.documentElement.lang = language();
  translateDocument();
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguage(async (lang) => {
    select.value = lang;
    for (const view of views) {
      const tab = $(`tab-${view.id}`);
      if (tab) tab.textContent = view.title;
      if (!mounted.has(view.id)) continue;
      const root = $(`view-${view.id}`);
      const kept = typed(root);
      root.replaceChildren();
      view.mount(root, ctx);
      retype(root, kept);
    }
    try {
      relabel();
      await ctx.render();
    } finally {
      count("languages"); // tests wait on it
    }
  });
}
