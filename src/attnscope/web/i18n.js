// The interface's languages: English and Simplified Chinese. Every label, message and tooltip is a
// key looked up with t(); each module registers its own strings with strings({en: {...}, "zh-CN": {...}})
// at its top level. The language is the one chosen in the page (kept in localStorage), else the
// browser's (any zh* → 简体中文), else English. Static HTML carries data-i18n (text), data-i18n-title,
// data-i18n-placeholder and data-i18n-aria-label attributes, translated by translateDocument().
// On a switch, onLanguage() listeners run (the shell re-mounts and redraws the views).

export const LANGUAGES = [["en", "English"], ["zh-CN", "简体中文"]];
const STORE = "attnscope.language";
const tables = { en: {}, "zh-CN": {} };
const listeners = [];

function initial() {
  try {
    const kept = localStorage.getItem(STORE);
    if (kept && kept in tables) return kept;
  } catch { /* storage blocked: fall through to the browser's language */ }
  const preferred = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"]);
  for (const tag of preferred) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

let current = initial();

// Registers a module's strings: {en: {key: text}, "zh-CN": {key: text}}. English is the fallback.
export function strings(table) {
  for (const [lang, entries] of Object.entries(table)) {
    if (!(lang in tables)) throw new Error(`i18n: unknown language ${lang}`);
    Object.assign(tables[lang], entries);
  }
}

// t("compare.layers", {n: 3}) → the current language's text with {n} replaced; English when the
// current language lacks the key; the key itself when no language has it (a visible bug, never blank).
export function t(key, params = {}) {
  const text = tables[current][key] ?? tables.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// Whether a key is registered (in English): lets a caller fall back to a server's own text.
export const has = (key) => key in tables.en;

export const language = () => current;
export const isChinese = () => current === "zh-CN";

export function translateDocument(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const [attribute, data] of [["title", "i18nTitle"], ["placeholder", "i18nPlaceholder"], ["aria-label", "i18nAriaLabel"]]) {
    for (const node of root.querySelectorAll(`[data-${attribute === "aria-label" ? "i18n-aria-label" : `i18n-${attribute}`}]`)) {
      node.setAttribute(attribute, t(node.dataset[data]));
    }
  }
}

export function setLanguage(lang) {
  if (!(lang in tables)) throw new Error(`i18n: unknown language ${lang}`);
  current = lang;
  try { localStorage.setItem(STORE, lang); } catch { /* not kept: this page only */ }
  document.documentElement.lang = lang;
  translateDocument();
  for (const listener of listeners) listener(lang);
}

export const onLanguage = (listener) => listeners.push(listener);

// Every registered key of one language (the completeness test compares English with 简体中文).
export const keys = (lang) => Object.keys(tables[lang]);

// One language's own text of a key (undefined when that language lacks it), whatever the page shows.
export const textIn = (lang, key) => tables[lang][key];
