"""``POST /api/syntax`` and ``attnscope syntax``: the same JSON as the library, and one-line refusals
(a CoNLL-U that does not spell the text, a missing parser) before the model runs."""

from __future__ import annotations

import json

from attnscope.analysis.parsers import parse_conllu, parse_text
from attnscope.capture import capture
from attnscope.render.syntax import syntax_answer, syntax_json
from tests.analysis.test_syntax import TEXT, conllu
from tests.conftest import CHINESE, tiny
from tests.server.conftest import assert_same
from tests.test_cli import run


def test_api_answers_the_library_json(client):
    response = client.post("/api/syntax", json={"text": TEXT, "conllu": conllu()})
    assert response.status_code == 200, response.text
    body = response.json()
    trace = capture(tiny("qwen2"), TEXT, backend="full")
    assert_same(body, syntax_json(trace, parse_conllu(TEXT, conllu())))
    assert body["parser"] == {"parser": "conllu", "model": None, "language": "", "dependencies": True}
    assert [r["relation"] for r in body["relations"]] == sorted(r["relation"] for r in body["relations"])  # all count 1
    assert body["overall"]["count"] == 7 and body["layers"] == trace.num_layers()
    accuracy = body["accuracy"]["dependent_to_head"]["det"]
    best = body["relations"][[r["relation"] for r in body["relations"]].index("det")]["dependent_to_head"]
    assert accuracy[best["layer"]][best["head"]] == best["accuracy"] == max(max(row) for row in accuracy)
    words = body["words"]
    assert [TEXT[w["start"] : w["end"]] for w in words] == [w["text"] for w in words]
    assert all(body["tokens"][k]["word"] == w["index"] for w in words for k in w["tokens"])


def test_api_chinese_gives_parts_of_speech_and_the_install_hint(client):
    response = client.post("/api/syntax", json={"text": CHINESE, "parser": "jieba"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [w["text"] for w in body["words"]][:3] == ["我", "爱", "中国"] and body["words"][2]["pos"] == "ns"
    assert body["relations"] == [] and body["accuracy"] is None and "zh_core_web_sm" in body["install"]


def test_api_refusals_are_one_line_4xx(client):
    bad = conllu().replace("capital", "kapital")
    for payload, code, message in (
        ({"text": TEXT, "conllu": bad}, "bad_input", "does not match the text"),
        ({"text": TEXT, "conllu": "1\tThe\n"}, "bad_input", "columns, not 10"),
        ({"text": TEXT, "conllu": conllu([("The", "\u00b2", "det")])}, "bad_input", "HEAD must be a number"),
        ({"text": CHINESE, "parser": "spacy"}, "parser_missing", "pip install"),
        ({"text": TEXT, "parser": "stanza"}, None, ""),
        ({"text": "   "}, None, ""),
    ):
        if payload.get("parser") == "spacy" and _has_chinese_pipeline():
            continue
        response = client.post("/api/syntax", json=payload)
        assert 400 <= response.status_code < 500, response.text
        detail = response.json()["detail"]
        if code:
            assert response.json()["code"] == code and message in detail and "\n" not in detail


def test_api_checks_the_length_before_parsing(client):
    n = 20_000  # a chain of 20,000 words: the text is past the model's length (and the web app's limit)
    # the last word points back to the first: a cycle the parser would refuse, so answering with the
    # length error shows the length was checked first (no timed assertion)
    chain = "\n".join(f"{i}\ta\t_\t_\t_\t_\t{i + 1 if i < n else 1}\tdep\t_\t_" for i in range(1, n + 1))
    response = client.post("/api/syntax", json={"text": " ".join(["a"] * n), "conllu": chain})
    assert response.status_code == 400 and "the text is 20,000 tokens" in response.json()["detail"]


def _has_chinese_pipeline() -> bool:
    from attnscope.analysis.parsers import installed_pipelines

    return bool(installed_pipelines("zh"))


def test_cli_json_is_the_library_answer_and_the_table(tmp_path):
    path = tmp_path / "parse.conllu"
    path.write_text(conllu(), encoding="utf-8")
    result = run("syntax", TEXT, "--parse", str(path), "--model", "tiny:llama", "--json", "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    out = json.loads(result.stdout.decode("utf-8"))
    library = syntax_answer(tiny("llama"), TEXT, conllu=conllu())
    assert_same(out, library)
    shown = run("syntax", TEXT, "--parse", str(path), "--model", "tiny:llama", "--quiet")
    lines = shown.stdout.decode("utf-8").splitlines()
    det = next(line for line in lines if line.strip().startswith("det "))
    best = next(r for r in library["relations"] if r["relation"] == "det")
    assert f"L{best['dependent_to_head']['layer']} H{best['dependent_to_head']['head']}" in det
    assert f"{best['baseline']['offset']:+d}" in det


def test_cli_refusals_exit_2_with_one_line(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text(conllu().replace("capital", "kapital"), encoding="utf-8")
    result = run("syntax", TEXT, "--parse", str(path), "--model", "tiny:llama")
    assert result.returncode == 2
    error = result.stderr.decode("utf-8").strip()
    assert error.startswith("error:") and "does not match the text" in error and "\n" not in error
    digit = tmp_path / "digit.conllu"  # a superscript digit: str.isdigit() says yes, int() refuses it
    digit.write_text("1\ta\t_\t_\t_\t_\t\u00b2\tnsubj\t_\t_\n2\tb\t_\t_\t_\t_\t0\troot\t_\t_\n", encoding="utf-8")
    result = run("syntax", "a b", "--parse", str(digit), "--model", "tiny:llama")
    error = result.stderr.decode("utf-8").strip()
    assert result.returncode == 2 and "HEAD must be a number" in error and "\n" not in error, error
    missing = run("syntax", TEXT, "--parse", str(tmp_path / "none.conllu"), "--model", "tiny:llama")
    assert missing.returncode == 2 and "cannot read" in missing.stderr.decode("utf-8")
    if not parse_text_has_english():
        result = run("syntax", TEXT, "--model", "tiny:llama")
        assert result.returncode == 2 and "pip install 'attnscope[syntax]'" in result.stderr.decode("utf-8")


def parse_text_has_english() -> bool:
    try:
        parse_text("The capital of France is")
    except Exception:
        return False
    return True
