// Keyboard navigation: views (1–9, [ and ]), layer (↑ ↓), head (Shift+↑ ↓), query token (← →) and "?"
// for the list of keys. Never while typing (in an input, a textarea, a select or editable text) and
// never with Ctrl, Alt or ⌘ (the browser's and the prompt's own shortcuts). The layer and head keys
// step the view controls' selects and fire their change event: the shell does the rest.
import { $, el } from "./dom.js";
import { strings, t } from "./i18n.js";
import { queryTokens } from "./weights.js";

strings({
  en: {
    "keys.title": "Keyboard",
    "keys.button": "keys",
    "keys.button.title": "keyboard shortcuts (?)",
    "keys.close": "Close",
    "keys.views": "show view 1 to 9",
    "keys.prevnext": "previous / next view",
    "keys.layer": "previous / next layer",
    "keys.head": "previous / next head (mean, max, head 0, 1, …)",
    "keys.query": "query token: previous / next",
    "keys.help": "show or hide this list",
    "keys.escape": "close this list",
    "keys.analyze": "analyse the prompt (in the prompt box)",
    "keys.note": "Keys act when the focus is not in a text box or a list; Tab moves the focus, which is outlined.",
  },
  "zh-CN": {
    "keys.title": "键盘",
    "keys.button": "快捷键",
    "keys.button.title": "键盘快捷键（?）",
    "keys.close": "关闭",
    "keys.views": "显示第 1 至 9 个视图",
    "keys.prevnext": "上一个 / 下一个视图",
    "keys.layer": "上一层 / 下一层",
    "keys.head": "上一个 / 下一个注意力头（平均、最大、头 0、1……）",
    "keys.query": "查询词元：上一个 / 下一个",
    "keys.help": "显示或隐藏此列表",
    "keys.escape": "关闭此列表",
    "keys.analyze": "分析提示词（在提示词输入框中）",
    "keys.note": "焦点不在文本框或下拉列表中时，快捷键才生效；Tab 键移动焦点，焦点处有轮廓线。",
  },
});

const KEYS = [
  ["1 … 9", "keys.views"], ["[  ]", "keys.prevnext"], ["↑  ↓", "keys.layer"], ["Shift + ↑  ↓", "keys.head"],
  ["←  →", "keys.query"], ["?", "keys.help"], ["Esc", "keys.escape"], ["Ctrl + Enter", "keys.analyze"],
];

const typing = (target) => target instanceof Element &&
  (target.closest("input, textarea, select, [contenteditable='true'], [contenteditable='']") !== null);

// Moves a select by `step` options (bounded) and fires its change event; false when it cannot move.
function stepSelect(select, step) {
  if (!select || select.disabled || !select.options.length) return false;
  const index = Math.min(select.options.length - 1, Math.max(0, select.selectedIndex + step));
  if (index === select.selectedIndex) return false;
  select.selectedIndex = index;
  select.dispatchEvent(new Event("change"));
  return true;
}

function tabs() {
  return [...document.querySelectorAll("#tabs [role='tab']")].filter((tab) => !tab.hidden);
}

function showTab(index) {
  const all = tabs();
  if (index < 0 || index >= all.length) return false;
  all[index].click();
  all[index].focus({ preventScroll: true });
  return true;
}

function helpOverlay() {
  const rows = KEYS.map(([keys, what]) => el("tr", {}, el("td", {}, el("kbd", {}, keys)), el("td", { dataset: { i18n: what } }, t(what))));
  const close = el("button", { type: "button", testid: "keys-help-close", dataset: { i18n: "keys.close" } }, t("keys.close"));
  const box = el("div", { className: "keys-box", role: "document" },
    el("h2", { dataset: { i18n: "keys.title" } }, t("keys.title")), el("table", {}, el("tbody", {}, ...rows)),
    el("p", { className: "muted", dataset: { i18n: "keys.note" } }, t("keys.note")), close);
  const overlay = el("div", { className: "keys-help", id: "keys-help", testid: "keys-help", hidden: true }, box);
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-modal", "true");
  overlay.dataset.i18nAriaLabel = "keys.title";
  overlay.setAttribute("aria-label", t("keys.title"));
  close.addEventListener("click", () => toggleHelp(false));
  overlay.addEventListener("click", (event) => { if (event.target === overlay) toggleHelp(false); });
  return overlay;
}

let opener = null; // the element focused before the list opened (focus returns to it)

function toggleHelp(show = $("keys-help").hidden) {
  const overlay = $("keys-help");
  if (show === !overlay.hidden) return;
  overlay.hidden = !show;
  if (show) {
    opener = document.activeElement;
    overlay.querySelector("button").focus();
  } else if (opener && opener.focus) opener.focus();
}

// Called once (design.js) with the shell's ctx; `bar`: the header, where the "keys" button goes.
export function wireKeys(ctx, bar) {
  document.body.append(helpOverlay());
  const button = el("button", { type: "button", testid: "keys-button", dataset: { i18n: "keys.button", i18nTitle: "keys.button.title" },
    title: t("keys.button.title") }, t("keys.button"));
  button.addEventListener("click", () => toggleHelp(true));
  bar.append(button);
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (!$("keys-help").hidden) {
      if (event.key === "Escape" || event.key === "?") { event.preventDefault(); toggleHelp(false); }
      return; // the list is open: no other key acts behind it
    }
    if (typing(event.target)) return;
    if (handle(event, ctx)) event.preventDefault();
  });
}

function handle(event, ctx) {
  const { key } = event;
  if (key === "?") { toggleHelp(true); return true; }
  if (/^[1-9]$/.test(key)) return showTab(Number(key) - 1);
  if (key === "[" || key === "]") {
    const all = tabs();
    const at = all.findIndex((tab) => tab.getAttribute("aria-selected") === "true");
    return showTab((at + (key === "]" ? 1 : -1) + all.length) % all.length);
  }
  if (key === "ArrowUp" || key === "ArrowDown") {
    const step = key === "ArrowDown" ? 1 : -1;
    return stepSelect($(event.shiftKey ? "head" : "layer"), step);
  }
  if ((key === "ArrowLeft" || key === "ArrowRight") && !event.shiftKey) {
    const result = ctx.state.result;
    if (!result) return false;
    const last = queryTokens(result).length - 1;
    const query = Math.min(last, Math.max(0, result.attention.query + (key === "ArrowRight" ? 1 : -1)));
    if (query === result.attention.query) return false;
    ctx.setQuery(query);
    return true;
  }
  return false;
}
