// Contrast that adapts to long inputs. Over many keys, raw attention weights are small (about 1/N)
// beside a few large ones (a sink token), so a raw colour scale shows an empty page. At the default
// (raw) scale, rows of at least ADAPT_MIN_KEYS keys are coloured up to their 99th percentile instead:
// the colour bar ends there and says so; the weights themselves (tooltips, exports) stay raw.
// The head view pools keys beyond POOL_MAX_KEYS into consecutive groups, with a note.
import { format } from "./format.js";
import { strings, t } from "./i18n.js";

strings({
  en: {
    "contrast.clipped": "attention weight; colour clipped at the {p}th percentile ({value}) of this row: " +
      "weights above it share the strongest colour (adapted contrast for a long input)",
    "contrast.clipped_map": "attention weight; colour clipped at the {p}th percentile ({value}) of this map's non-zero " +
      "weights: weights above it share the strongest colour (adapted contrast for a long input)",
    "contrast.clipped_grid": "attention weight; colour clipped at the {p}th percentile ({value}) of the non-zero " +
      "weights of all these rows: weights above it share the strongest colour (adapted contrast for a long input)",
    "contrast.lines_bar": "attention weight of each key (raw probability)",
    "contrast.lines_bar_pooled": "attention weight of each group of keys (the sum of its raw probabilities)",
    "contrast.pooled": "{n} keys pooled into {groups} groups of {size} consecutive keys: lines and bars show each group's " +
      "summed weight, labelled by its key range and first token",
  },
  "zh-CN": {
    "contrast.clipped": "注意力权重；颜色在该行的第 {p} 百分位数（{value}）处截断：" +
      "高于它的权重都用最深的颜色（长输入的自适应对比度）",
    "contrast.clipped_map": "注意力权重；颜色在该图非零权重的第 {p} 百分位数（{value}）处截断：" +
      "高于它的权重都用最深的颜色（长输入的自适应对比度）",
    "contrast.clipped_grid": "注意力权重；颜色在所有这些行非零权重的第 {p} 百分位数（{value}）处截断：" +
      "高于它的权重都用最深的颜色（长输入的自适应对比度）",
    "contrast.lines_bar": "每个键的注意力权重（原始概率）",
    "contrast.lines_bar_pooled": "每组键的注意力权重（组内原始概率之和）",
    "contrast.pooled": "{n} 个键按每组 {size} 个相邻的键合并为 {groups} 组：线条和色块表示每组权重之和，" +
      "标注为键的范围和组内第一个词元",
  },
});

export const ADAPT_MIN_KEYS = 256;
export const CLIP_PERCENTILE = 99;
export const POOL_MAX_KEYS = 400;

// The p-th percentile of `values`, linear between the closest ranks (numpy's default).
export function percentile(values, p) {
  const sorted = Float64Array.from(values).sort();
  if (!sorted.length) return NaN;
  const position = (p / 100) * (sorted.length - 1);
  const low = Math.floor(position);
  const high = Math.min(sorted.length - 1, low + 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
}

// {percentile, value} when a row of `weights` (the considered ones) is long enough and its 99th
// percentile is below its maximum (clipping there changes the picture), else null.
export function clipLevel(weights) {
  if (weights.length < ADAPT_MIN_KEYS) return null;
  let max = -Infinity;
  for (const w of weights) if (w > max) max = w;
  const value = percentile(weights, CLIP_PERCENTILE);
  return value > 0 && value < max ? { percentile: CLIP_PERCENTILE, value } : null;
}

// The colour bar's caption of a clipped scale: of a row (the token strip) or of a whole map (the heatmap).
export const clipCaption = (clip, of = "row") =>
  t({ map: "contrast.clipped_map", grid: "contrast.clipped_grid" }[of] ?? "contrast.clipped",
    { p: clip.percentile, value: format(clip.value) });

// Keys pooled for the head view: at most POOL_MAX_KEYS groups of `size` consecutive keys, each with its
// summed weight. groups: [{first, last, weight}] (first, last: key indexes, inclusive).
export function poolKeys(weights, maxKeys = POOL_MAX_KEYS) {
  const n = weights.length;
  const size = Math.max(1, Math.ceil(n / maxKeys));
  const groups = [];
  for (let first = 0; first < n; first += size) {
    const last = Math.min(n, first + size) - 1;
    let weight = 0;
    for (let k = first; k <= last; k++) weight += weights[k];
    groups.push({ first, last, weight });
  }
  return { size, groups };
}

export const lineScaleCaption = (pooled) => t(pooled ? "contrast.lines_bar_pooled" : "contrast.lines_bar");

export const poolNote = (n, pooled) => t("contrast.pooled", { n, groups: pooled.groups.length, size: pooled.size });
