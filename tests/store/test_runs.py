"""The runs store on real SQLite files and real object files: storing, searching, content addressing,
deleting, the schema and its refusals, export and import between two stores ("machines").

Expected values are the results put in (compared after a JSON round trip), hashes recomputed here
with hashlib, and the SQLite file read with the sqlite3 module directly.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from attnscope.capture import capture
from attnscope.errors import InputError, NotFoundError
from attnscope.render.json import analysis_json
from attnscope.store.database import SCHEMA_VERSION
from attnscope.store.runs import RESULT, RunsStore, check_when
from attnscope.store.transfer import export_run, import_run
from tests.conftest import CHINESE, ENGLISH, tiny


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    model = tiny("qwen2")
    return {text: analysis_json(capture(model, text)) for text in (ENGLISH, CHINESE)}


def put(store: RunsStore, result: dict, text: str, **extra):
    return store.put(kind="analysis", text=text, model=result["model"], result=result, origin="library", **extra)


def test_a_run_is_stored_found_and_read_back_exactly(tmp_path, results):
    with RunsStore(tmp_path) as store:
        english = put(store, results[ENGLISH], ENGLISH, summary="last layer")
        chinese = put(store, results[CHINESE], CHINESE)
        expected = json.loads(json.dumps(results[ENGLISH]))  # no personal data: only the record of the check
        expected["provenance"].update(masking_policy="mask", masked_spans=0, run_id=english.id)
        assert store.result(store.get(english.id)) == expected
        kept = json.loads(json.dumps(results[CHINESE]))
        kept["provenance"].update(masking_policy="mask", masked_spans=0)  # the bytes: no run id
        data = json.dumps(kept, ensure_ascii=False, allow_nan=False).encode()
        assert chinese.objects[RESULT] == hashlib.sha256(data).hexdigest()
        assert (tmp_path / "objects" / chinese.objects[RESULT][:2] / chinese.objects[RESULT]).read_bytes() == data
        assert chinese.text_sha256 == hashlib.sha256(CHINESE.encode()).hexdigest() and chinese.chars == 11
        runs, total = store.list()
        assert total == 2 and [r.id for r in runs] == [chinese.id, english.id]  # newest first
        assert [r.id for r in store.list(text="首都")[0]] == [chinese.id]
        assert [r.id for r in store.list(text="CAPITAL")[0]] == [english.id]  # any case
        assert store.list(model="qwen2")[1] == 2 and store.list(model="gpt2")[1] == 0
        assert store.list(kind="generation")[1] == 0
        assert store.list(since=check_when("2000-01-01", "since"))[1] == 2
        assert store.list(until=check_when("2000-01-01", "until"))[1] == 0
        assert store.list(limit=1, offset=1)[0][0].id == english.id
        assert store.integrity() == "ok"
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:  # what is on disk, read directly
        assert db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (2,)


def test_objects_are_content_addressed_and_deleted_with_their_last_run(tmp_path, results):
    with RunsStore(tmp_path) as store:
        first = put(store, results[ENGLISH], ENGLISH)
        second = put(store, results[ENGLISH], ENGLISH)
        assert first.objects == second.objects  # the same answer is one file
        path = tmp_path / "objects" / first.objects[RESULT][:2] / first.objects[RESULT]
        store.delete(first.id)
        assert path.exists() and store.result(store.get(second.id))  # still used by the second run
        store.delete(second.id)
        assert not path.exists() and store.list()[1] == 0
        with pytest.raises(NotFoundError, match="no stored run"):
            store.delete(second.id)
        with pytest.raises(NotFoundError, match="no stored run"):
            store.get(first.id)
        with pytest.raises(InputError, match="16 hexadecimal"):
            store.get("../../etc/passwd")


def test_a_changed_object_file_is_refused_never_shown(tmp_path, results):
    with RunsStore(tmp_path) as store:
        run = put(store, results[ENGLISH], ENGLISH)
        path = tmp_path / "objects" / run.objects[RESULT][:2] / run.objects[RESULT]
        path.write_bytes(path.read_bytes().replace(b"France", b"Fr4nce"))
        with pytest.raises(InputError, match="changed on disk"):
            store.result(store.get(run.id))
        path.unlink()
        with pytest.raises(InputError, match="missing"):
            store.result(store.get(run.id))


def test_the_database_file_is_checked_when_opened(tmp_path):
    (tmp_path / "a").mkdir()
    with sqlite3.connect(tmp_path / "a" / "runs.sqlite3") as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(InputError, match="something else"):
        RunsStore(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "runs.sqlite3").write_bytes(b"not a database at all, just bytes" * 100)
    with pytest.raises(InputError, match="not a usable attnscope runs database"):
        RunsStore(tmp_path / "b")
    RunsStore(tmp_path / "c").close()
    with sqlite3.connect(tmp_path / "c" / "runs.sqlite3") as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(InputError, match="newer attnscope"):
        RunsStore(tmp_path / "c")
    RunsStore(tmp_path / "d").close()
    RunsStore(tmp_path / "d").close()  # reopening migrates nothing twice
    with sqlite3.connect(tmp_path / "d" / "runs.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)


def test_an_exported_run_imports_on_another_machine_with_its_hashes_checked(tmp_path, results):
    with RunsStore(tmp_path / "here") as here:
        run = put(here, results[CHINESE], CHINESE, summary="一")
        out = export_run(here, run.id, tmp_path / "run.zip")
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("run.json"))
        data = archive.read(f"objects/{RESULT}")
    assert manifest["format"] == "attnscope-run" and manifest["run"]["id"] == run.id
    assert manifest["objects"][RESULT]["sha256"] == hashlib.sha256(data).hexdigest()
    with RunsStore(tmp_path / "there") as there:
        imported = import_run(there, out)
        assert (imported.id, imported.created, imported.text) == (run.id, run.created, CHINESE)
        assert imported.origin == "import"
        kept = there.result(there.get(run.id))
        assert {**kept, "provenance": None} == {**json.loads(json.dumps(results[CHINESE])), "provenance": None}
        with pytest.raises(InputError, match="already stored"):
            import_run(there, out)
        assert there.list()[1] == 1


def _rewrite(source: Path, target: Path, change) -> Path:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def _manifest(change):
    def edit(members):
        manifest = json.loads(members["run.json"])
        change(manifest)
        members["run.json"] = json.dumps(manifest).encode()

    return edit


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.__setitem__(f"objects/{RESULT}", m[f"objects/{RESULT}"].replace(b"France", b"Frence")), "SHA-256"),
        (lambda m: m.pop(f"objects/{RESULT}"), "missing"),
        (lambda m: m.pop("run.json"), "no run.json"),
        (lambda m: m.__setitem__("run.json", b"{not json"), "unreadable"),
        (_manifest(lambda m: m.__setitem__("format", "something-else")), "format"),
        (_manifest(lambda m: m.__setitem__("version", 99)), "version 99"),
        (_manifest(lambda m: m["run"].__setitem__("id", "../x")), "16 hexadecimal"),
        (_manifest(lambda m: m["run"].__setitem__("kind", "virus")), "unknown run kind"),
        (_manifest(lambda m: m["run"].pop("text")), "lacks text"),
        (_manifest(lambda m: m["run"].__setitem__("text", 5)), "wrong type"),
        (_manifest(lambda m: m["objects"].__setitem__("../evil", {"sha256": "0" * 64, "size": 1})), "nothing else"),
        (_manifest(lambda m: m["run"].__setitem__("created", "yesterday")), "created"),
        (_manifest(lambda m: m["run"].__setitem__("id", "0123456789abcdef\n")), "16 hexadecimal"),
    ],
)
def test_a_corrupted_or_foreign_export_is_refused_and_nothing_is_imported(tmp_path, results, change, message):
    with RunsStore(tmp_path / "here") as here:
        out = export_run(here, put(here, results[ENGLISH], ENGLISH).id, tmp_path / "run.zip")
    bad = _rewrite(out, tmp_path / "bad.zip", change)
    with RunsStore(tmp_path / "there") as there:
        with pytest.raises(InputError, match=message):
            import_run(there, bad)
        assert there.list()[1] == 0 and not list((tmp_path / "there" / "objects").glob("*/*"))


def test_files_that_are_not_exports_are_refused(tmp_path):
    (tmp_path / "text.zip").write_text("hello")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "another program's archive")
    with RunsStore(tmp_path / "store") as store:
        for name, message in (("text.zip", "not a zip"), ("other.zip", "no run.json"), ("absent.zip", "no file")):
            with pytest.raises(InputError, match=message):
                import_run(store, tmp_path / name)
