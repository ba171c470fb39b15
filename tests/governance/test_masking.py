"""Personal data never leaves the process in a stored run: the runs store masks the text, the tokens
over a value (their text becomes the label, their id -1) and every text of the answer, by the chosen
policy, and records it in the answer's provenance.

The values' places are found here with ``str.find`` on values written in the test (not with the
detector under test); "never leaves" is checked as: the raw digits appear nowhere in the stored
bytes, the database file, or the exported file.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import pytest
from fastapi.testclient import TestClient

from attnscope.capture import capture, generate
from attnscope.errors import InputError
from attnscope.governance.privacy import PiiFoundError
from attnscope.render.json import analysis_json, generation_json
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.store.runs import RunsStore
from attnscope.store.transfer import export_run
from tests.conftest import tiny
from tests.server.conftest import loader

PHONE = "13812345678"
RESIDENT_ID = "110101199003074573"  # check digit 3 (ISO 7064 MOD 11-2)
TEXT = f"我的电话是{PHONE}，身份证号{RESIDENT_ID}。The capital of France is"


def places(text: str) -> list[tuple[int, int]]:
    return [(text.find(v), text.find(v) + len(v)) for v in (PHONE, RESIDENT_ID)]


def database_bytes(folder) -> bytes:
    """The runs database as on disk: its file and its write-ahead log (recent commits live there)."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("runs.sqlite3*")))


def no_raw_value(data: bytes) -> bool:
    return PHONE.encode() not in data and RESIDENT_ID.encode() not in data


@pytest.fixture(scope="module")
def model():
    return tiny("qwen2")


def test_a_stored_analysis_is_masked_and_says_so(tmp_path, model):
    answer = analysis_json(capture(model, TEXT))
    with RunsStore(tmp_path) as store:
        run = store.put(kind="analysis", text=TEXT, model=answer["model"], result=answer, origin="library")
        stored = store.read(run)
        kept = store.result(run)
    assert run.text == "我的电话是[PHONE]，身份证号[CN_ID]。The capital of France is"
    assert no_raw_value(stored) and no_raw_value(database_bytes(tmp_path))
    assert kept["text"] == run.text
    inside = places(TEXT)
    for token, original in zip(kept["tokens"], answer["tokens"], strict=True):
        start, end = original["start"], original["end"]
        if start is not None and start == end:  # a byte piece: part of the character before it
            start -= 1
        over = start is not None and any(start < e and end > s for s, e in inside)
        if over:
            assert token["text"] in ("[PHONE]", "[CN_ID]") and token["id"] == -1
        else:
            assert token == original
    assert kept["attention"] == answer["attention"]  # the numbers are untouched
    assert kept["provenance"]["masking_policy"] == "mask" and kept["provenance"]["masked_spans"] == 2
    assert answer["text"] == TEXT  # the caller's answer is not changed


def test_hash_drop_and_off_policies(tmp_path, model):
    answer = analysis_json(capture(model, TEXT))
    with RunsStore(tmp_path) as store:
        hashed = store.put(kind="analysis", text=TEXT, model=answer["model"], result=answer, origin="library",
                           pii_policy="hash")  # fmt: skip
        assert "[PHONE:" in hashed.text and no_raw_value(store.read(hashed))
        with pytest.raises(PiiFoundError):
            store.put(kind="analysis", text=TEXT, model=answer["model"], result=answer, origin="library",
                      pii_policy="drop")  # fmt: skip
        assert store.list()[1] == 1  # the dropped run left nothing
        kept = store.put(kind="analysis", text=TEXT, model=answer["model"], result=answer, origin="library",
                         pii_policy="off")  # fmt: skip
        assert kept.text == TEXT and store.result(kept)["provenance"]["masked_spans"] == 0


def test_a_generation_is_masked_in_its_prompt_answer_and_steps(tmp_path, model):
    trace = generate(model, TEXT, max_new_tokens=4)
    answer = generation_json(trace)
    with RunsStore(tmp_path) as store:
        run = store.put(kind="generation", text=TEXT, model=answer["model"], result=answer, origin="library")
        stored = store.read(run)
        out = export_run(store, run.id, tmp_path / "run.zip")
    assert no_raw_value(stored)
    with zipfile.ZipFile(out) as archive:
        assert all(no_raw_value(archive.read(name)) for name in archive.namelist())
    kept = json.loads(stored)
    assert "[PHONE]" in kept["prompt"]["text"] and kept["steps"] and len(kept["steps"]) == len(answer["steps"])


def test_the_server_masks_what_it_keeps(tmp_path):
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path)
    host.load("tiny:qwen2")
    client = TestClient(create_app(host), raise_server_exceptions=False)
    shown = client.post("/api/analyze", json={"text": TEXT}).json()
    assert shown["text"] == TEXT  # the answer to the local page is the text the user gave
    kept = client.get(f"/api/runs/{shown['run_id']}").json()
    assert no_raw_value(json.dumps(kept, ensure_ascii=False).encode())
    host.pii_policy = "drop"
    dropped = client.post("/api/analyze", json={"text": TEXT, "layer": 0}).json()
    assert "run_id" not in dropped and dropped["text"] == TEXT
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    host.store.close()


def test_a_report_file_never_holds_the_raw_values(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "ATTNSCOPE_HOME": str(tmp_path / "home")}

    def report(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = ["report", TEXT, "--model", "tiny:gpt2", "--methods", "attention", "grad-x-input", "-q", *extra]
        return subprocess.run([sys.executable, "-m", "attnscope", *argv], env=env, capture_output=True, text=True)

    made = report("--out", str(tmp_path / "r.html"))
    assert made.returncode == 0, made.stderr
    for name in ("r.html", "r.json"):
        assert no_raw_value((tmp_path / name).read_bytes()), name
    data = json.loads((tmp_path / "r.json").read_text())
    assert "[PHONE]" in data["text"] and data["provenance"]["masked_spans"] >= 2
    refused = report("--out", str(tmp_path / "d.html"), "--pii-policy", "drop")
    assert refused.returncode == 2 and "no report written" in refused.stderr
    assert not (tmp_path / "d.html").exists() and not (tmp_path / "d.json").exists()


def canonical_sha256(value) -> str:
    import hashlib

    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_targets_target_tokens_hashes_and_imports_are_masked_too(tmp_path):
    from attnscope.methods.run import attribute
    from attnscope.render.json import attribution_json
    from attnscope.store.transfer import import_run

    mail, other = b"alice@example.com", b"bob@example.org"
    text = "Call me at alice@example.com"
    scored = attribution_json(attribute(tiny("gpt2"), text, "grad-x-input", target=" bob@example.org"))
    assert other.decode() in json.dumps(scored)  # the answer itself names the target
    with RunsStore(tmp_path / "a") as store:
        run = store.put(kind="attribution", text=text, model=scored["model"], result=scored, origin="library")
        kept = store.read(run)
        answer = json.loads(kept)
    assert mail not in kept and other not in kept  # the target in the answer and in its provenance record
    assert answer["provenance"]["target"]["ids"] == [] and answer["provenance"]["masked_spans"] == 2
    for path in ("units", "scores", "token_scores"):  # the hashes name what is kept
        assert answer["provenance"]["output_hashes"][path] == canonical_sha256(answer[path])

    seq2seq = tiny("t5")
    wanted = "write to bob@example.org or 13812345678"
    analysis = analysis_json(capture(seq2seq, "Translate this", target=wanted))
    with RunsStore(tmp_path / "b") as store:
        kept = store.read(store.put(kind="analysis", text="Translate this", model=analysis["model"],
                                    result=analysis, origin="library"))  # fmt: skip
    assert other not in kept and PHONE.encode() not in kept  # target tokens spell them only joined

    with RunsStore(tmp_path / "c") as loose:  # a run kept unmasked elsewhere, imported here
        raw = loose.put(kind="attribution", text=text, model=scored["model"], result=scored, origin="library",
                        pii_policy="off")  # fmt: skip
        assert mail in database_bytes(tmp_path / "c")
        out = export_run(loose, raw.id, tmp_path / "raw.zip")
    with RunsStore(tmp_path / "d") as store:
        imported = import_run(store, out)
    assert mail not in database_bytes(tmp_path / "d") and "[EMAIL]" in imported.text
    assert other.decode() not in imported.summary


def test_candidates_that_would_continue_a_value_are_masked(model):
    from attnscope.governance.masking import mask_answer

    trace = capture(model, TEXT, predict="all")
    start = TEXT.find(PHONE)
    inside = next(t.index for t in trace.tokens if t.start is not None and start < t.start < start + len(PHONE))
    last = len(trace.tokens) - 1
    for query, masked in ((inside, True), (last, False)):
        answer = analysis_json(trace, query=query)
        _, kept, _ = mask_answer("analysis", TEXT, answer, "mask")
        shown, stored = answer["prediction"]["top"], kept["prediction"]["top"]
        assert [c["prob"] for c in stored] == [c["prob"] for c in shown]  # the numbers stay
        if masked:  # the model predicting the phone number's next digits would spell them
            assert all(c["token"] == "[PHONE]" and c["id"] == -1 for c in stored)
        else:
            assert stored == shown


def test_a_generated_value_is_masked_in_its_steps_candidates(model):
    """A generation that writes a phone number: each step's chosen token is among its candidates
    (greedy takes the first), so the candidates of a masked step are masked with it. The answer is a
    real one whose generated tokens are rewritten to spell the number's last digits."""
    from attnscope.governance.masking import mask_answer

    prompt = TEXT[: TEXT.find(PHONE) + 7]  # "...1381234" + the model writes "5678"
    answer = generation_json(generate(model, prompt, max_new_tokens=2))
    pieces = ["56", "78"]
    offset = 0
    for step, token, piece in zip(answer["steps"], answer["generated"]["tokens"], pieces, strict=True):
        token.update(text=piece, start=offset, end=offset + len(piece))
        step["token"]["text"] = piece
        step["top"][0].update(token=piece)
        offset += len(piece)
    answer["generated"]["text"] = "".join(pieces)
    answer.pop("pii", None)
    _, kept, count = mask_answer("generation", prompt, answer, "mask")
    assert count >= 1 and PHONE not in json.dumps(kept) and "5678" not in json.dumps(kept)
    for step, original in zip(kept["steps"], answer["steps"], strict=True):
        assert step["token"] == {"id": -1, "text": "[PHONE]"}
        assert all(c["token"] == "[PHONE]" for c in step["top"])
        assert [c["prob"] for c in step["top"]] == [c["prob"] for c in original["top"]]


def counterfactual_server(tmp_path) -> tuple[TestClient, ModelHost]:
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path)
    host.load("tiny:gpt2")
    return TestClient(create_app(host), raise_server_exceptions=False), host


def test_a_counterfactual_that_cuts_a_value_keeps_the_rest_of_it_masked(tmp_path):
    """Deleting the last digits of a phone number leaves its start in the counterfactual: that start
    is still the value (the answer's character map says where it came from), masked in the text,
    the tokens, the changes and the edits, and never stored or exported."""
    client, host = counterfactual_server(tmp_path)
    text = f"Call {PHONE} now"
    prefix = "1381234"  # what the edit leaves of the number
    edits = [{"delete": "5678", "words": False}]
    shown = client.post("/api/counterfactual", json={"text": text, "edits": edits, "method": "grad-x-input"}).json()
    assert shown["counterfactual"]["text"] == f"Call {prefix} now"  # the local page gets what the user typed
    kept = client.get(f"/api/runs/{shown['run_id']}").json()
    exported = client.get(f"/api/runs/{shown['run_id']}/export").content
    host.store.close()
    answer = kept["answer"]
    assert answer["original"]["text"] == answer["counterfactual"]["text"] == "Call [PHONE] now"
    start = shown["counterfactual"]["text"].find(prefix)
    for token, raw in zip(answer["counterfactual"]["tokens"], shown["counterfactual"]["tokens"], strict=True):
        if raw["start"] is not None and raw["start"] < start + len(prefix) and raw["end"] > start:
            assert (token["text"], token["id"]) == ("[PHONE]", -1)
        else:
            assert token == raw
    assert [(c["old"], c["new"]) for c in answer["changes"]] == [("[PHONE]", "")]
    assert [e["old"] for e in answer["edits"]] == ["[PHONE]"]
    stored = b"".join(path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file())
    for data in (stored, database_bytes(tmp_path), json.dumps(kept, ensure_ascii=False).encode()):
        assert prefix.encode() not in data
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        assert archive.namelist() and all(prefix.encode() not in archive.read(name) for name in archive.namelist())


def test_values_are_carried_through_the_character_map_both_ways(model):
    """spans_through: an original value's surviving characters (from the first to the last, new text
    between them included) are the value in the edited text, merged with what is found there; the
    inverse map carries a value an edit completes back into its start in the original."""
    from attnscope.analysis.edits import apply_edits
    from attnscope.governance.masking import mask_answer, spans_through
    from attnscope.governance.privacy import PiiSpan
    from attnscope.render.counterfactual import counterfactual_answer

    text = f"Call {PHONE} now"
    start = text.find(PHONE)
    value = [PiiSpan(start, start + len(PHONE), "PHONE", "[PHONE]")]
    cases = [  # (edit, the edited span the value covers, found by str.find in the edited text)
        ({"delete": "5678", "words": False}, "1381234"),
        ({"replace": "2345", "with": "abcd", "words": False}, "1381abcd678"),
        ({"insert": "-", "at": start + 4}, "1381-2345678"),
        ({"replace": "Call", "with": "Phone"}, PHONE),
    ]
    for edit, covered in cases:
        edited = apply_edits(text, [edit])
        at = edited.text.find(covered)
        assert spans_through(edited.char_map, value, edited.text) == [
            PiiSpan(at, at + len(covered), "PHONE", "[PHONE]")
        ], edit
    # an edit that completes a value: the original holds its start, masked as the value too
    partial = "Call 1381234 now"
    edits = [{"insert": "5678", "at": partial.find(" now")}]
    answer = counterfactual_answer(model, partial, edits, method="none")
    _, kept, count = mask_answer("counterfactual", partial, answer, "mask")
    assert kept["counterfactual"]["text"] == kept["original"]["text"] == "Call [PHONE] now" and count == 2
    assert "1381234" not in json.dumps(kept, ensure_ascii=False)
    with pytest.raises(InputError, match="character map"):
        spans_through([0, 1], value, "abc")


def test_a_counterfactual_ending_inside_a_value_masks_what_would_continue_it():
    """The edited text ends with the start of a number: the model's candidates (and the attribution's
    targets, which explain the top one) would spell its next digits; they show its label."""
    from attnscope.governance.masking import mask_answer
    from attnscope.render.counterfactual import counterfactual_answer

    text = f"Call {PHONE}"
    answer = counterfactual_answer(tiny("gpt2"), text, [{"delete": "5678", "words": False}], method="grad-x-input")
    _, kept, _ = mask_answer("counterfactual", text, answer, "mask")
    for side in ("original", "counterfactual"):
        top = kept[side]["prediction"]["top"]
        assert all(c["token"] == "[PHONE]" and c["id"] == -1 for c in top)
        assert [c["prob"] for c in top] == [c["prob"] for c in answer[side]["prediction"]["top"]]
    targets = kept["attribution"]["targets"] + [r["target"] for r in kept["attribution"]["provenance"]]
    assert all(t["text"] == "[PHONE]" and t["ids"] == [] for t in targets)
    raw = {answer["attribution"]["targets"][0]["text"], answer["original"]["prediction"]["top"][0]["token"]}
    assert not any(repr(token) in json.dumps(kept["notes"]) for token in raw if token.strip())
    assert "1381234" not in json.dumps(kept, ensure_ascii=False)
