"""The words of the HTML report in the interface's languages: English and Simplified Chinese.

The web page sends its language with ``POST /api/report`` and ``attnscope report --language`` picks
one; headings, table headers, notes, axis titles and the observations come from these tables, the
numbers and the data do not change. Method names, head-type labels and the server's own messages
(a skipped method's reason, the heads note, the provenance record) stay as the data has them: they
are identifiers that the JSON and the CLI use too. Glossary (the page uses the same, README
"Languages"): attention 注意力, layer 层, head 注意力头, token 词元, query 查询词元, key 键词元,
attribution 归因, method 方法, unit 单位, score 分数, probability 概率, agreement 一致性.
"""

from __future__ import annotations

from typing import Any

from attnscope.errors import InputError

LANGUAGES = ("en", "zh-CN")

EN: dict[str, str] = {
    "title": "attnscope report — {spec}",
    "heading": "attnscope report",
    "model": "<b>Model</b> {spec} ({kind}, {layers} layers × {heads} heads) · <b>granularity</b> {granularity}",
    "text": "Text",
    "dp": "<b>Differential privacy</b> — {line} · {releases} releases, total ε = {epsilon} ({composition})",
    "prediction": "Next-token prediction (raw probabilities)",
    "token": "token",
    "id": "id",
    "probability": "probability",
    "observations": "Observations",
    "thresholds": "Thresholds used by the observations:",
    "rule": "rule",
    "threshold": "threshold",
    "importance": "Token importance by method",
    "importance.note": "Colour: score ÷ the method's largest |score| (display scaling only): red positive and, "
    "for the methods whose scores can be negative, teal negative. Hover a unit for its raw score.",
    "delta": " — completeness delta {delta} ({steps} steps)",
    "seconds": " · {seconds} s",
    "skipped": "{method} skipped: {reason}",
    "scores": "Scores (raw)",
    "unit": "unit",
    "score": "score",
    "agreement": "Agreement between methods: {title}",
    "agreement.note": "Cells coloured red (agree, +1) to teal (disagree, −1).",
    "heads": "Head metrics (layers × heads)",
    "head": "head",
    "layer": "layer",
    "head_types": "Head types",
    "provenance": "Provenance",
    "field": "field",
    "value": "value",
    # observations (render/observations.py): the English ones are the report's JSON "observations"
    "obs.predicts": "The model predicts {token} {tone} (p = {p}; 'confident' means p ≥ {limit}).",
    "obs.confidently": "confidently",
    "obs.unconfidently": "without confidence",
    "obs.top": "{method}: the most important unit is {unit}.",
    "obs.incomparable": "Attention and occlusion rankings cannot be compared (a constant score vector).",
    "obs.unfaithful": "Attention is not a faithful explanation of this prediction: its ranking agrees poorly with "
    "occlusion (Spearman ρ = {rho} < {limit}).",
    "obs.faithful": "Attention ranks units much like occlusion does (Spearman ρ = {rho} ≥ {limit}).",
    "obs.pairs": "Method pairs in agreement (ρ ≥ {limit}): {pairs}.",
    "obs.list": ", ",
    "obs.ig": "Integrated gradients have not converged: |delta| = {delta} is more than {share} of "
    "|f(input) − f(baseline)| = {span}; use more steps.",
    "obs.sink": "{share} of heads put most of their attention on the first token (sink mass ≥ {limit}): raw "
    "attention there says little about the text.",
    "obs.head_types": "Head types: {counts}.",
    "obs.target": "Gradient and occlusion scores explain the target {target} ({objective}).",
    "obs.loss": "Gradient scores explain the loss: the mean log-probability of every token of the text given "
    "the ones before it (objective loss), not one prediction.",
}

ZH: dict[str, str] = {
    "title": "attnscope 报告 — {spec}",
    "heading": "attnscope 报告",
    "model": "<b>模型</b> {spec}（{kind}，{layers} 层 × {heads} 个注意力头）· <b>单位</b> {granularity}",
    "text": "文本",
    "dp": "<b>差分隐私</b> — {line} · 共发布 {releases} 次，总 ε = {epsilon}（{composition}）",
    "prediction": "下一个词元的预测（原始概率）",
    "token": "词元",
    "id": "ID",
    "probability": "概率",
    "observations": "观察",
    "thresholds": "观察所用的阈值：",
    "rule": "规则",
    "threshold": "阈值",
    "importance": "各方法的词元重要性",
    "importance.note": "颜色：分数 ÷ 该方法最大的 |分数|（仅用于显示缩放）：红色为正；对分数可能为负的方法，"
    "青色为负。将鼠标悬停在单位上可查看其原始分数。",
    "delta": " — 完备性差距 {delta}（{steps} 步）",
    "seconds": " · {seconds} 秒",
    "skipped": "{method} 已跳过：{reason}",
    "scores": "分数（原始值）",
    "unit": "单位",
    "score": "分数",
    "agreement": "方法之间的一致性：{title}",
    "agreement.note": "单元格颜色从红色（一致，+1）到青色（不一致，−1）。",
    "heads": "注意力头指标（层 × 注意力头）",
    "head": "注意力头",
    "layer": "层",
    "head_types": "注意力头类型",
    "provenance": "来源记录",
    "field": "字段",
    "value": "值",
    "obs.predicts": "模型{tone}预测 {token}（p = {p}；“有把握”指 p ≥ {limit}）。",
    "obs.confidently": "有把握地",
    "obs.unconfidently": "没有把握地",
    "obs.top": "{method}：最重要的单位是 {unit}。",
    "obs.incomparable": "注意力与遮挡的排序无法比较（分数向量为常数）。",
    "obs.unfaithful": "注意力不能忠实地解释这个预测：它的排序与遮挡的一致性很差（Spearman ρ = {rho} < {limit}）。",
    "obs.faithful": "注意力对单位的排序与遮挡十分相近（Spearman ρ = {rho} ≥ {limit}）。",
    "obs.pairs": "一致的方法对（ρ ≥ {limit}）：{pairs}。",
    "obs.list": "、",
    "obs.ig": "积分梯度尚未收敛：|delta| = {delta}，超过 |f(输入) − f(基线)| = {span} 的 {share}；请增加步数。",
    "obs.sink": "{share} 的注意力头把大部分注意力放在第一个词元上（汇聚质量 ≥ {limit}）：那里的原始注意力"
    "几乎不能说明文本。",
    "obs.head_types": "注意力头类型：{counts}。",
    "obs.target": "梯度和遮挡分数解释的是目标 {target}（{objective}）。",
    "obs.loss": "梯度分数解释的是损失：文本中每个词元在其前文条件下的平均对数概率（目标为 loss），而不是某一个预测。",
}

# The head metrics' titles (analysis.heads.metric_titles) and the observations' thresholds by name.
METRICS_ZH = {
    "entropy": "熵（奈特）",
    "sparsity": "稀疏度（低于 {threshold} 的键词元占比）",
    "locality": "局部性（平均距离，词元）",
    "sink": "汇聚质量（第一个词元）",
    "previous_token": "前一词元得分",
    "focus_consistency": "聚焦一致性",
    "induction": "归纳得分（重复的随机词）",
}
THRESHOLDS_ZH = {
    "attention_vs_occlusion": "注意力与遮挡的一致性",
    "agreement": "方法一致",
    "sink": "汇聚注意力头",
    "ig_delta": "积分梯度收敛",
    "confident": "有把握",
}
TABLES = {"en": EN, "zh-CN": ZH}


def check_language(language: str) -> str:
    """``language`` when the report can be written in it; an InputError naming the choices otherwise."""
    if language not in TABLES:
        raise InputError(f"language: {language!r} is not one of {', '.join(LANGUAGES)}")
    return language


def words(language: str) -> dict[str, str]:
    """The table of ``language`` (English for a key it lacks)."""
    return {**EN, **TABLES[check_language(language)]}


def say(language: str, key: str, **values: Any) -> str:
    """The ``key`` sentence of ``language`` with ``values`` filled in."""
    return words(language)[key].format(**values)


def metric_title(language: str, metric: str, english: str) -> str:
    """A head metric's title: the data's English one, or its translation (the sparsity threshold kept)."""
    if language == "en" or metric not in METRICS_ZH:
        return english
    threshold = english.split("below ")[-1].rstrip(")") if metric == "sparsity" else ""
    return METRICS_ZH[metric].format(threshold=threshold)


def threshold_name(language: str, name: str) -> str:
    """A threshold's name in the report's table: the identifier, with its meaning in Chinese."""
    return name if language == "en" or name not in THRESHOLDS_ZH else f"{name}（{THRESHOLDS_ZH[name]}）"
