// The page's look: the theme (system / light / dark) and the colour palette, chosen in the header and
// kept in localStorage; a change re-installs the colour variables (palette.js) and redraws the view
// shown, so its canvases take the new colours. wireDesign(ctx) also wires the keyboard (keys.js) and
// the prediction panel of the details column (prediction-panel.js).
import { el } from "./dom.js";
import { strings, t } from "./i18n.js";
import { wireKeys } from "./keys.js";
import { PALETTES, THEMES, onColours, palette, setPalette, setTheme, theme } from "./palette.js";
import { mountPredictionPanel, renderPrediction } from "./prediction-panel.js";

strings({
  en: {
    "design.theme": "theme",
    "design.theme.system": "system",
    "design.theme.light": "light",
    "design.theme.dark": "dark",
    "design.palette": "colours",
    "design.palette.red": "white → red, red/teal (default)",
    "design.palette.viridis": "viridis, orange/blue",
    "design.palette.cividis": "cividis, orange/blue",
    "design.palette.blues": "white → blue, orange/blue",
    "design.palette.title": "attention on a sequential scale, signed scores on a diverging pair; every choice is readable with the common colour-vision deficiencies",
  },
  "zh-CN": {
    "design.theme": "主题",
    "design.theme.system": "跟随系统",
    "design.theme.light": "浅色",
    "design.theme.dark": "深色",
    "design.palette": "配色",
    "design.palette.red": "白 → 红，红/青（默认）",
    "design.palette.viridis": "viridis，橙/蓝",
    "design.palette.cividis": "cividis，橙/蓝",
    "design.palette.blues": "白 → 蓝，橙/蓝",
    "design.palette.title": "注意力用顺序色阶，带符号的分数用发散色对；每种配色对常见色觉缺陷都可辨读",
  },
});

const STORE = { theme: "attnscope.theme", palette: "attnscope.palette" };

function kept(name, allowed, fallback) {
  try {
    const value = localStorage.getItem(STORE[name]);
    return allowed.includes(value) ? value : fallback;
  } catch { return fallback; } // storage blocked: this page only
}

function keep(name, value) {
  try { localStorage.setItem(STORE[name], value); } catch { /* not kept */ }
}

// A labelled select whose texts are i18n keys (translateDocument relabels them on a language switch).
function picker(labelKey, testid, choices, chosen, onPick) {
  const select = el("select", { testid, id: testid });
  for (const [value, key] of choices) {
    const option = el("option", { value, dataset: { i18n: key } }, t(key));
    select.append(option);
  }
  select.value = chosen;
  select.addEventListener("change", () => onPick(select.value));
  return el("label", { className: "design-pick" }, el("span", { dataset: { i18n: labelKey } }, t(labelKey)), " ", select);
}

// Called once by the shell (app.js) with its ctx: header controls, keyboard, redraw on a colour change.
export function wireDesign(ctx) {
  setTheme(kept("theme", THEMES, "system"));
  setPalette(kept("palette", PALETTES, palette()));
  const themes = picker("design.theme", "theme-select", THEMES.map((n) => [n, `design.theme.${n}`]), theme(), (name) => {
    keep("theme", name);
    setTheme(name);
  });
  const palettes = picker("design.palette", "palette-select", PALETTES.map((n) => [n, `design.palette.${n}`]), palette(),
    (name) => { keep("palette", name); setPalette(name); });
  palettes.dataset.i18nTitle = "design.palette.title";
  palettes.title = t("design.palette.title");
  const bar = document.querySelector("header.bar");
  bar.append(el("span", { className: "design" }, themes, palettes));
  onColours(() => ctx.render()); // the view shown redraws its canvases with the new colours
  wireKeys(ctx, bar);
  mountPredictionPanel(); // the top-10, redrawn after every render (the shell counts them on <body>)
  new MutationObserver(() => renderPrediction(ctx.state.result)).observe(document.body, { attributeFilter: ["data-renders"] });
}
