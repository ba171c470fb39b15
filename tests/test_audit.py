"""``attnscope audit`` as a real process: the report's files (HTML, JSON, PDF, signed envelope), its
numbers against plain ``transformers`` eager attention computed here, the PDF rendered with poppler
(``pdftoppm``) and its text (``pdftotext``) holding the rule results, personal data masked in every
file, one-line refusals of bad input, and the exit status (1 when a critical rule failed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.analysis.test_attribution import eager_attentions
from tests.conftest import tiny

PHONE = "13812345678"
TEXT = f"Patient leaflet: aspirin can cause nausea and bleeding. Call {PHONE}. It comes in a red box."
RULES = """\
version: 1
lexicons:
  drug: [aspirin]
  side_effect: [nausea, bleeding]
  packaging: [red, box]
rules:
  - name: side-effect-reads-drug
    from: {lexicon: side_effect}
    to: {lexicon: drug}
    layers: all
    heads: all
    aggregation: mean
    measure: mass
    comparison: ">="
    threshold: 0.99
    severity: critical
  - name: answer-may-read-anything
    from: {answer: true}
    to: {lexicon: packaging}
    layers: all
    heads: all
    aggregation: max
    measure: mass
    comparison: "<="
    threshold: 1.0
    severity: warning
"""
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None and os.environ.get("ATTNSCOPE_REQUIRE_BROWSER") != "1",
    reason="poppler-utils (pdftoppm, pdftotext) is not installed",
)


def audit(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTNSCOPE_HOME": str(tmp_path / "home"), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "attnscope", "audit", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    keys = subprocess.run(
        [sys.executable, "-m", "attnscope", "keys", "generate", "--out", str(folder / "keys")],
        capture_output=True, text=True, env={**os.environ, "ATTNSCOPE_HOME": str(folder / "home")},
    )  # fmt: skip
    assert keys.returncode == 0, keys.stderr
    result = audit(
        folder, TEXT, "--rules", str(folder / "rules.yaml"), "--model", "tiny:llama", "--out", str(folder / "a.html"),
        "--pdf", "--sign", "--key", str(folder / "keys" / "attnscope-signing.key"), "-q",
    )  # fmt: skip
    return folder, result


def test_a_failed_critical_rule_exits_1_after_writing_every_file(made):
    folder, result = made
    assert result.returncode == 1, result.stderr
    assert "1 failed (1 critical)" in result.stdout
    for name in ("a.html", "a.json", "a.pdf", "a.intoto.json"):
        assert (folder / name).stat().st_size > 1000, name
    data = json.loads((folder / "a.json").read_text())
    results = {r["rule"]: r for r in data["rules"]["results"]}
    assert results["side-effect-reads-drug"]["passed"] is False
    assert results["answer-may-read-anything"]["passed"] is True
    assert data["provenance"]["result_kind"] == "audit" and data["provenance"]["signing_key_fingerprint"]


def test_the_numbers_are_eager_attention(made):
    folder, _ = made
    data = json.loads((folder / "a.json").read_text())
    model = tiny("llama")
    text = TEXT.replace(PHONE, "[PHONE]")  # the stored text is masked; the model saw the original
    assert data["text"] == text
    maps = eager_attentions(model, TEXT)  # per layer (heads, query, key)
    query = data["snapshot"]["query"]
    assert query == maps[0].shape[1] - 1
    expected = np.stack([layer[:, query].mean(axis=0) for layer in maps])
    assert np.allclose(data["snapshot"]["weights"], expected, atol=1e-5)

    def over(*words: str) -> list[int]:  # the tokens whose characters overlap the words, found here
        places = [(TEXT.find(w), TEXT.find(w) + len(w)) for w in words]
        return [t["index"] for t in data["tokens"] if t["start"] is not None and t["end"] > t["start"]
                and any(t["start"] < e and t["end"] > b for b, e in places)]  # fmt: skip

    drug, effects = over("aspirin"), over("nausea", "bleeding")
    (evidence,) = data["evidence"]
    assert evidence["marked"] == drug and evidence["rows"] == effects
    layer, head = evidence["layer"], evidence["head"]
    assert np.allclose(evidence["weights"], maps[layer][head][effects].mean(axis=0), atol=1e-5)
    mass = np.mean([maps[k][h][effects][:, drug].sum(axis=-1).mean() for k in range(len(maps))
                    for h in range(maps[0].shape[0])])  # fmt: skip
    assert data["rules"]["results"][0]["value"] == pytest.approx(mass, abs=1e-5)


@needs_poppler
def test_the_pdf_renders_and_holds_the_rule_results(made):
    folder, _ = made
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(folder / "a.pdf"), str(folder / "page")], check=True)
    from PIL import Image

    pages = sorted(folder.glob("page-*.png"))
    assert len(pages) >= 2
    first = np.asarray(Image.open(pages[0]).convert("L"))
    assert (first < 128).mean() > 0.005  # ink on the page, not a blank one
    text = subprocess.run(["pdftotext", str(folder / "a.pdf"), "-"], capture_output=True, text=True).stdout
    # a table cell wraps a long rule name over lines, at a hyphen that pdftotext then drops
    joined = "".join(text.split()).replace("-", "")
    for expected in ("Rule-match log", "side-effect-reads-drug", "FAILED", "answer-may-read-anything", "Suggested"):
        assert "".join(expected.split()).replace("-", "") in joined, expected


def test_personal_data_is_masked_in_every_file(made):
    folder, _ = made
    for name in ("a.html", "a.json", "a.intoto.json"):
        assert PHONE.encode() not in (folder / name).read_bytes(), name
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(folder / "a.pdf"), "-"], capture_output=True, text=True).stdout
        assert PHONE not in text and "[PHONE]" in text


def test_the_signature_covers_every_file(made, tmp_path):
    folder, _ = made
    public = str(folder / "keys" / "attnscope-signing.pub")
    verify = [sys.executable, "-m", "attnscope", "verify", "--key", public, str(folder / "a.intoto.json")]
    assert subprocess.run(verify, capture_output=True, text=True).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("page-*", "home", "keys"))
    pdf = copy / "a.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 1
    pdf.write_bytes(bytes(data))
    checked = subprocess.run([*verify[:-1], str(copy / "a.intoto.json")], capture_output=True, text=True)
    assert checked.returncode != 0 and "a.pdf" in checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.txt"], "must name an .html file"),
        (["--rules", "missing.yaml"], "missing.yaml"),
        (["--bias", "no-such-suite"], "no-such-suite"),
        (["--counterfactuals", "9"], "0 … 5"),
        (["--system", "hi"], "--system is for --chat"),
    ],
)
def test_bad_input_is_refused_in_one_line(tmp_path, args, message):
    (tmp_path / "r.yaml").write_text(RULES, encoding="utf-8")
    base = {"--rules": str(tmp_path / "r.yaml"), "--out": str(tmp_path / "o.html")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value if flag != "--out" else str(tmp_path / value)
    argv = [TEXT, "--model", "tiny:llama", *(item for pair in base.items() for item in pair)]
    result = audit(tmp_path, *argv)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "o.html").exists()


@needs_poppler
def test_a_chinese_audit_pdf_holds_its_chinese_text(tmp_path):
    text = "说明书：阿司匹林可能引起恶心和胃出血。请放在红色盒子里。"
    result = audit(tmp_path, text, "--rules", "example:medical-zh", "--model", "tiny:qwen2", "--out",
                   str(tmp_path / "z.html"), "--pdf", "-q")  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert json.loads((tmp_path / "z.json").read_text())["text"] == text
    assert text in (tmp_path / "z.html").read_text(encoding="utf-8")
    pdf_text = subprocess.run(["pdftotext", str(tmp_path / "z.pdf"), "-"], capture_output=True, text=True).stdout
    assert "阿司匹林可能引起恶心和胃出血" in "".join(pdf_text.split())


def test_values_quoted_by_rules_or_cut_by_counterfactuals_are_masked_too(tmp_path):
    """A rule file may name a value (a rule called after a phone number, a selector on its digits), and
    a counterfactual that removes part of a value leaves the rest in its edited text: neither reaches
    any file. A rule over several spans gets a counterfactual without every one of them."""
    rules = f"""version: 1
lexicons:
  drug: [aspirin, ibuprofen]
rules:
  - name: reads-{PHONE}
    description: the prediction reads the end of {PHONE}
    from: {{answer: true}}
    to: {{regex: "5678"}}
    measure: mass
    comparison: ">="
    threshold: 0.99
    severity: warning
  - name: reads-drugs
    from: {{answer: true}}
    to: {{lexicon: drug}}
    measure: mass
    comparison: ">="
    threshold: 0.99
    severity: warning
"""
    (tmp_path / "r.yaml").write_text(rules, encoding="utf-8")
    text = f"Take aspirin or ibuprofen; call {PHONE} now. Then"
    result = audit(tmp_path, text, "--rules", str(tmp_path / "r.yaml"), "--model", "tiny:llama", "--out",
                   str(tmp_path / "m.html"), "--pdf", "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "m.json").read_text())
    made = {item["rule"]: item for item in data["counterfactuals"]}
    assert set(made) == {"reads-[PHONE]", "reads-drugs"}
    assert made["reads-drugs"]["counterfactual_text"] == "Take  or ; call [PHONE] now. Then"  # both spans gone
    assert "[PHONE]" in made["reads-[PHONE]"]["counterfactual_text"]  # the value's remaining part: masked
    files = [(tmp_path / name).read_bytes() for name in ("m.html", "m.json")]
    if shutil.which("pdftotext"):
        files.append(subprocess.run(["pdftotext", str(tmp_path / "m.pdf"), "-"], capture_output=True).stdout)
    for content in files:
        assert PHONE[:7].encode() not in content and PHONE.encode() not in content
