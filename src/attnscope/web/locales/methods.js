// The method catalogue's words: the server sends each method's title, description and option help in
// English (GET /api/methods); the page shows these translations keyed by method name (and option
// name), with the server's text as the fallback for a method registered by a plug-in.
import { has, strings, t } from "../i18n.js";

strings({
  en: {
    "methods.attention_row": "attention row (layer and head above)",
    "methods.models": "{title} ({kinds} models)",
    "methods.or": " or ",
    "methods.auto": "auto",
    "methods.limits": " ({min} to {max})",
    "methods.between": "between {min} and {max}",
    "methods.integer": "{name} must be an integer {range}",
    "methods.number": "{name} must be a number {range}",
    "methods.range": "{name} must be {range}",
    "methods.empty": "{name} is empty (for example {example})",
    "methods.unit.token": "token", "methods.unit.word": "word", "methods.unit.sentence": "sentence", "methods.unit.paragraph": "paragraph",
    "methods.kind.causal": "causal", "methods.kind.masked": "masked", "methods.kind.seq2seq": "seq2seq",
  },
  "zh-CN": {
    "methods.attention_row": "注意力行（上方所选的层和注意力头）",
    "methods.models": "{title}（仅限{kinds}模型）",
    "methods.or": "或",
    "methods.auto": "自动",
    "methods.limits": "（{min} 到 {max}）",
    "methods.between": "介于 {min} 和 {max} 之间",
    "methods.integer": "{name} 必须是{range}的整数",
    "methods.number": "{name} 必须是{range}的数",
    "methods.range": "{name} 必须{range}",
    "methods.empty": "{name} 为空（例如 {example}）",
    "methods.unit.token": "词元", "methods.unit.word": "词", "methods.unit.sentence": "句", "methods.unit.paragraph": "段落",
    "methods.kind.causal": "因果", "methods.kind.masked": "掩码", "methods.kind.seq2seq": "编码器-解码器",
  },
});

// Titles and descriptions of the built-in methods; option help by "method.option".
const EN = {
  attention: ["attention", "the query's attention weights: a layer or the mean over layers, heads combined"],
  rollout: ["attention rollout", "attention propagated through the residual stream, r·I + (1 − r)·A multiplied over layers"],
  flow: ["attention flow", "maximum flow from each input token to the query through the layer graph"],
  "grad-norm": ["gradient norm", "L2 norm of the gradient of the target's log-probability with respect to each input embedding"],
  "grad-x-input": ["gradient × input", "gradient · embedding: the signed first-order contribution of each input embedding"],
  "integrated-gradients": ["integrated gradients", "gradients integrated from a baseline embedding, with the completeness gap (delta) reported"],
  occlusion: ["occlusion", "log-probability drop of the target when each unit is removed (or masked), and the KL divergence"],
  "head-metrics": ["head metrics", "entropy, sparsity, locality, sink mass, previous-token score and focus consistency of every head"],
  induction: ["induction score", "attention from a repeated token to the one after its first occurrence (a random word sequence written twice)"],
  parts: ["prompt parts", "attention mass from a query token or part to each named part of the prompt, per layer and head"],
  agreement: ["method agreement", "Spearman and Kendall rank agreement between the token attribution methods' scores"],
};
const ZH = {
  attention: ["注意力", "查询词元的注意力权重：某一层或各层的均值，注意力头合并"],
  rollout: ["注意力展开", "沿残差流传播的注意力：逐层相乘 r·I + (1 − r)·A"],
  flow: ["注意力流", "在层图中从每个输入词元到查询词元的最大流"],
  "grad-norm": ["梯度范数", "目标对数概率对每个输入嵌入的梯度的 L2 范数"],
  "grad-x-input": ["梯度 × 输入", "梯度 · 嵌入：每个输入嵌入带符号的一阶贡献"],
  "integrated-gradients": ["积分梯度", "从基线嵌入开始积分的梯度，并报告完备性差距（delta）"],
  occlusion: ["遮挡", "移除（或掩码）每个单位时目标对数概率的下降，以及 KL 散度"],
  "head-metrics": ["注意力头指标", "每个注意力头的熵、稀疏度、局部性、汇聚质量、前一词元得分和聚焦一致性"],
  induction: ["归纳得分", "从重复词元到其首次出现之后那个词元的注意力（一段随机词序列写两遍）"],
  parts: ["提示词组成部分", "每一层和注意力头上，从查询词元或某部分到提示词各命名部分的注意力质量"],
  agreement: ["方法一致性", "各词元归因方法得分之间的 Spearman 与 Kendall 秩一致性"],
};
const HELP_EN = {
  "attention.layers": "a layer, a range such as 4-7, or all (mean over them)",
  "attention.heads": "a head, a list such as 1,3 (their mean), mean or max",
  "rollout.residual": "weight of the residual connection, r in r·I + (1 − r)·A",
  "flow.residual": "weight of the residual connection, r in r·I + (1 − r)·A",
  "integrated-gradients.steps": "interpolation steps; auto: 32, 96, 288, 864 until |delta| ≤ 5% of |f(x) − f(baseline)|",
  "integrated-gradients.baseline": "what every ordinary token starts from",
  "occlusion.mode": "remove the unit's characters, or mask its tokens",
  "head-metrics.threshold": "sparsity: the weight below which a key counts as ignored",
};
const HELP_ZH = {
  "attention.layers": "一层、一个范围（如 4-7）或 all（取其均值）",
  "attention.heads": "一个注意力头、一个列表（如 1,3，取其均值）、mean 或 max",
  "rollout.residual": "残差连接的权重，即 r·I + (1 − r)·A 中的 r",
  "flow.residual": "残差连接的权重，即 r·I + (1 − r)·A 中的 r",
  "integrated-gradients.steps": "插值步数；auto：依次取 32、96、288、864，直到 |delta| ≤ |f(x) − f(基线)| 的 5%",
  "integrated-gradients.baseline": "每个普通词元的起点",
  "occlusion.mode": "移除该单位的字符，或掩码其词元",
  "head-metrics.threshold": "稀疏度：低于该权重的键词元视为被忽略",
};
const table = (pairs, index) => Object.fromEntries(Object.entries(pairs).map(([n, v]) => [`method.${n}.${index ? "description" : "title"}`, v[index]]));
const help = (pairs) => Object.fromEntries(Object.entries(pairs).map(([n, v]) => [`method.${n}.help`, v]));
strings({
  en: { ...table(EN, 0), ...table(EN, 1), ...help(HELP_EN) },
  "zh-CN": { ...table(ZH, 0), ...table(ZH, 1), ...help(HELP_ZH) },
});

// A catalogue entry's words in the page's language; the server's English for a method the page does not know.
export const methodTitle = (spec) => (has(`method.${spec.name}.title`) ? t(`method.${spec.name}.title`) : spec.title);
export const methodDescription = (spec) => (has(`method.${spec.name}.description`) ? t(`method.${spec.name}.description`) : spec.description);
export const optionHelp = (spec, option) => (has(`method.${spec.name}.${option.name}.help`) ? t(`method.${spec.name}.${option.name}.help`) : option.help);
export const unitLabel = (unit) => (has(`methods.unit.${unit}`) ? t(`methods.unit.${unit}`) : unit);
