"""The report follows the interface's language: ``POST /api/report`` with ``language: zh-CN`` (the web
page's) and ``attnscope report --language zh-CN`` write Chinese headings, table headers and
observations around exactly the same numbers and data as the English report; a language the report
does not have is refused."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile

from tests.conftest import CHINESE
from tests.test_cli import run

HEADINGS_ZH = [
    "下一个词元的预测（原始概率）", "观察", "各方法的词元重要性",
    "分数（原始值）", "注意力头指标（层 × 注意力头）", "来源记录",
]  # fmt: skip
HEADINGS_EN = [
    "Next-token prediction (raw probabilities)", "Observations", "Token importance by method", "Scores (raw)",
]  # fmt: skip


def report_of(client, language: str | None) -> tuple[str, dict]:
    body = {"text": CHINESE, "methods": ["attention", "grad-x-input", "occlusion"]}
    if language is not None:
        body["language"] = language
    response = client.post("/api/report", json=body)
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return archive.read("report.html").decode("utf-8"), json.loads(archive.read("report.json"))


def numbers(page: str) -> list[str]:
    """Every number the page shows (the exact values and the formatted cells), in order."""
    exact = re.findall(r"data-(?:value|score)=['\"]([^'\"]*)['\"]", page)
    shown = re.findall(r"<td class='num'[^>]*>([^<]*)</td>", page)
    return exact + shown


def headings(page: str) -> list[str]:
    """The headings, without a method's running time (it differs from run to run)."""
    return [re.sub(r" · \S+ (s|秒)$", "", h) for h in re.findall(r"<h[123]>([^<]*)</h[123]>", page)]


def test_the_chinese_report_has_chinese_words_and_the_english_numbers(client):
    english, data_en = report_of(client, None)  # the default: English, as before
    chinese, data_zh = report_of(client, "zh-CN")
    assert headings(report_of(client, "en")[0]) == headings(english)  # "en" is the default
    for heading in HEADINGS_EN:
        assert f"<h2>{heading}</h2>" in english
    for heading in HEADINGS_ZH:
        assert f"<h2>{heading}</h2>" in chinese
    assert "<html lang='zh-CN'>" in chinese and "<h1>attnscope 报告</h1>" in chinese
    assert not any(h in chinese for h in HEADINGS_EN)
    # the same numbers in the same places: the cells, the exact values behind them and the embedded data
    assert numbers(chinese) == numbers(english) and len(numbers(english)) > 20
    assert len(headings(chinese)) == len(headings(english))
    scores = {name: (body["units"], body["scores"]) for name, body in data_en["methods"].items()}
    assert {name: (body["units"], body["scores"]) for name, body in data_zh["methods"].items()} == scores
    assert data_zh["observations"] == data_en["observations"]  # the JSON keeps the English sentences
    # the observations are worded in Chinese in the page, one for one, with the same numbers in them
    said_zh = re.search(r"<ul data-testid='observations'>(.*?)</ul>", chinese).group(1)
    said_en = re.search(r"<ul data-testid='observations'>(.*?)</ul>", english).group(1)
    assert said_zh.count("<li>") == said_en.count("<li>") == len(data_en["observations"])
    assert "最重要的单位是" in said_zh and "most important unit" in said_en
    figures = re.compile(r"\d+(?:\.\d+)?(?:e[+-]\d+)?%?")
    assert sorted(figures.findall(html.unescape(said_zh))) == sorted(figures.findall(html.unescape(said_en)))


def test_a_language_the_report_does_not_have_is_refused(client):
    response = client.post("/api/report", json={"text": CHINESE, "methods": ["attention"], "language": "fr"})
    assert 400 <= response.status_code < 500 and "language" in response.text


def test_the_cli_writes_the_report_in_chinese(tmp_path):
    out = tmp_path / "report.html"
    args = ["report", CHINESE, "-m", "tiny:llama", "--methods", "attention", "grad-norm", "--out"]
    done = run(*args, str(out), "--language", "zh-CN")
    assert done.returncode == 0, done.stderr.decode()
    chinese = out.read_text(encoding="utf-8")
    assert "<h2>观察</h2>" in chinese and "<h2>Observations</h2>" not in chinese
    english_out = tmp_path / "english.html"
    assert run(*args, str(english_out)).returncode == 0
    assert numbers(chinese) == numbers(english_out.read_text(encoding="utf-8"))
    refused = run(*args, str(tmp_path / "x.html"), "--language", "fr")
    assert refused.returncode == 2 and not (tmp_path / "x.html").exists()
