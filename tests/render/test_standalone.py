"""The standalone HTML file without a browser (attnscope.render.standalone, render.bundle): personal
data masked, provenance carried, bad inputs refused with nothing written, every web module bundled,
and 1,000 tokens of the default model within the 5 MB budget. The browser tests are in
tests/web/test_standalone.py."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import pytest

from attnscope.capture import capture
from attnscope.errors import InputError
from attnscope.render import bundle
from attnscope.render.standalone import DEFAULT_BUDGET, standalone_html, write_standalone
from tests.conftest import ENGLISH, packaged, tiny

WEB = Path(__file__).resolve().parents[2] / "src" / "attnscope" / "web"


def payload_of(html: bytes) -> tuple[dict, bytes]:
    """The embedded data, decoded here from the file's bytes: (meta, arrays)."""
    text = html.decode("utf-8")
    found = re.search(r'id="attnscope-data">([^<]+)<', text)
    raw = zlib.decompress(base64.b64decode(found.group(1)))
    length = int.from_bytes(raw[:4], "little")
    return json.loads(raw[4 : 4 + length]), raw[4 + length :]


def test_personal_data_is_masked_and_the_provenance_travels(tmp_path):
    model = tiny("llama")
    text = "Write to jane.doe@example.com about it"
    html = standalone_html(capture(model, text))
    meta, _ = payload_of(html)
    assert b"jane.doe@example.com" not in html
    assert "jane.doe@example.com" not in json.dumps(meta, ensure_ascii=False)
    assert "jane.doe" not in meta["base"]["text"] and meta["base"]["text"].startswith("Write to ")
    settings = json.loads(re.search(r'id="attnscope-settings">([^<]+)<', html.decode()).group(1))
    record = settings["provenance"]
    assert record["masking_policy"] == "mask" and record["masked_spans"] >= 1
    assert record["model_spec"] == "tiny:llama" and record["attnscope_version"]
    assert record["weights_sha256"] == trace_record(model)["weights_sha256"]
    kept = standalone_html(capture(model, text), pii_policy="off")
    assert "jane.doe@example.com" in payload_of(kept)[0]["base"]["text"]


def trace_record(model) -> dict:
    return capture(model, "x").provenance


def test_bad_inputs_are_refused_and_nothing_is_written(tmp_path):
    trace = capture(tiny("llama"), ENGLISH)
    target = tmp_path / "out.html"
    for bad, message in (
        (lambda: write_standalone({"tokens": []}, target), "Trace"),
        (lambda: write_standalone(trace, target, language="fr"), "language"),
        (lambda: write_standalone(trace, target, pii_policy="nope"), "policy"),
        (lambda: write_standalone(trace, target, budget_bytes=100_000), "budget"),
        (lambda: write_standalone(trace, target, content="all"), "content"),
        (lambda: write_standalone(trace, target, top_k=0), "top_k"),
        (lambda: write_standalone(trace, tmp_path / "missing" / "out.html"), "folder"),
    ):
        with pytest.raises(InputError, match=message):
            bad()
    assert list(tmp_path.iterdir()) == []


def test_every_module_of_the_page_is_in_the_bundle_with_no_relative_import_left():
    modules = bundle.bundled_modules()
    on_disk = {str(p.relative_to(WEB)) for p in WEB.rglob("*.js")}
    assert on_disk <= set(modules) and "palette.json" in modules
    for path, source in modules.items():
        if path.endswith(".js"):
            assert not re.search(r"""(from|import)\s*\(?\s*["']\.\.?/""", source), path
            assert "import.meta.url" not in source, path


@pytest.mark.slow
def test_a_thousand_tokens_of_the_default_model_fit_the_budget():
    from benchmarks.capture import text_of_tokens

    model = packaged("qwen2.5-coder-0.5b")
    trace = capture(model, text_of_tokens(model.tokenizer, 1000), backend="qk")
    assert len(trace.tokens) == 1000
    html = standalone_html(trace)
    assert len(html) <= DEFAULT_BUDGET == 5_000_000
    meta, _ = payload_of(html)
    assert meta["keys"] == 1000 and meta["tier"] in ("layers", "rows")
