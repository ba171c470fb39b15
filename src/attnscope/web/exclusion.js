// Keys left out of an attention row on request, in words and as the statistics' basis: "renormalise
// without special tokens" and "exclude the first token" (the first key often soaks up attention it does
// not use — an attention sink). weights.js zeroes those keys and renormalises the rest to sum to 1; the
// server's result.stats has the row's statistics on each basis (attnscope.analysis.stats.display_rows).
import { strings, t } from "./i18n.js";

strings({
  en: {
    "exclusion.first": "exclude the first token (attention sink)",
    "exclusion.first.title": "leave the first key out of the attention row and renormalise the others to sum to 1 (display only; the model is not changed)",
    "exclusion.first.label": "first token excluded, renormalised",
    "exclusion.first_special.label": "first token and special tokens excluded, renormalised",
    "exclusion.token": "excluded from the row (first token)",
  },
  "zh-CN": {
    "exclusion.first": "排除第一个词元（注意力汇聚点）",
    "exclusion.first.title": "从注意力行中去掉第一个键，其余权重重新归一化为和为 1（仅影响显示，不改变模型）",
    "exclusion.first.label": "已排除第一个词元并重新归一化",
    "exclusion.first_special.label": "已排除第一个词元和特殊词元并重新归一化",
    "exclusion.token": "已从该行中排除（第一个词元）",
  },
});

// The key of result.stats that matches the display options.
export function statsBasis({ excludeSpecial = false, excludeFirst = false } = {}) {
  if (excludeFirst) return excludeSpecial ? "without_first_and_special" : "without_first";
  return excludeSpecial ? "without_special" : "raw";
}

// The legend's words for a row without its first key (null when the first key is kept).
export function firstExcludedLabel({ excludeSpecial = false, excludeFirst = false } = {}) {
  if (!excludeFirst) return null;
  return t(excludeSpecial ? "exclusion.first_special.label" : "exclusion.first.label");
}
