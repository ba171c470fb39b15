"""A stored run as one file, to move it to another machine: a zip archive with ``run.json`` (the
run's facts, ``format`` and ``version``, and each object's SHA-256 and size) and the objects under
``objects/<name>``. Importing checks everything before storing anything: the format, the version,
every member's hash and size, that the result is JSON of a known kind; a corrupted or foreign file is
refused with a one-line error and leaves the store as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from attnscope.errors import InputError
from attnscope.store.runs import KINDS, RESULT, Run, RunsStore, check_run_id, check_when, sha256_hex

FORMAT = "attnscope-run"
VERSION = 1
MAX_MEMBER_BYTES = 1 << 28  # an object bigger than this is refused (a zip bomb, not a run)
MAX_MANIFEST_BYTES = 1 << 20  # run.json
_FACTS = (
    "id",
    "kind",
    "created",
    "text",
    "text_sha256",
    "model_spec",
    "model_name",
    "model_fingerprint",
    "method",
    "summary",
)


def export_run(store: RunsStore, run_id: str, out: Path) -> Path:
    """Write run ``run_id`` to ``out`` (atomically: a temporary file renamed into place)."""
    run = store.get(run_id)
    objects = {name: store.read(run, name) for name in run.objects}  # hashes checked on the way out
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "run": {key: value for key, value in run.to_dict().items() if key in _FACTS},
        "objects": {name: {"sha256": run.objects[name], "size": len(data)} for name, data in objects.items()},
    }
    if out.is_dir():
        raise InputError(f"--out: {out} is a folder")
    if not out.parent.is_dir():
        raise InputError(f"--out: folder {out.parent} does not exist")
    descriptor, temp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(descriptor, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("run.json", json.dumps(manifest, ensure_ascii=False, indent=1))
            for name, data in objects.items():
                archive.writestr(f"objects/{name}", data)
        os.replace(temp, out)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise InputError(f"cannot write {out}: {error.strerror or error}") from None
    return out


def import_run(store: RunsStore, path: Path) -> Run:
    """Store the run exported to ``path`` under its own id (refused when that id is stored already)."""
    facts, objects = read_export(path)
    result = json.loads(objects[RESULT])
    try:  # masked again by this store's policy; the listing's summary is made anew from the answer
        return store.put(
            kind=facts["kind"],
            text=facts["text"],
            model={"spec": facts["model_spec"], "name": facts["model_name"], "fingerprint": facts["model_fingerprint"]},
            result=result,
            origin="import",
            method=facts["method"],
            run_id=facts["id"],
            created=facts["created"],
            text_sha256=facts["text_sha256"],
        )
    except (KeyError, TypeError, AttributeError, IndexError) as error:  # an answer of the wrong shape
        raise InputError(f"{path}: {RESULT} is not a well-formed {facts['kind']} answer ({error!r})") from None


def read_export(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The run's facts and objects of an exported file, every check passed (see the module docstring)."""
    where = f"{path}"
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"no file {where}") from None
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{where} is not an exported attnscope run (not a zip archive)") from None
    with archive:
        try:
            if archive.getinfo("run.json").file_size > MAX_MANIFEST_BYTES:
                raise InputError(f"{where}: run.json is too large to be a run's facts")
            manifest = json.loads(archive.read("run.json"))
        except KeyError:
            raise InputError(f"{where} is not an exported attnscope run (no run.json)") from None
        except (ValueError, zipfile.BadZipFile, OSError) as error:
            raise InputError(f"{where}: run.json is unreadable ({error})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"{where} is not an exported attnscope run (format is not {FORMAT!r})")
        if manifest.get("version") != VERSION:
            raise InputError(
                f"{where} is an exported run of version {manifest.get('version')!r}; this attnscope reads {VERSION}"
            )
        facts = _facts(manifest.get("run"), where)
        listed = manifest.get("objects")
        if not isinstance(listed, dict) or set(listed) != {RESULT}:
            raise InputError(f"{where}: run.json must list {RESULT} and nothing else")
        objects: dict[str, bytes] = {}
        for name, entry in listed.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str)
                or not isinstance(entry.get("size"), int)
            ):
                raise InputError(f"{where}: run.json's entry for {name!r} has no sha256 and size")
            if "/" in name or name.startswith(".") or entry["size"] > MAX_MEMBER_BYTES:
                raise InputError(f"{where}: object {name!r} is refused (its name or size)")
            try:
                info = archive.getinfo(f"objects/{name}")
                if info.file_size != entry["size"]:
                    raise InputError(
                        f"{where}: object {name} has {info.file_size} bytes, run.json says {entry['size']}"
                    )
                data = archive.read(info)
            except KeyError:
                raise InputError(f"{where}: object {name} is missing") from None
            except (zipfile.BadZipFile, OSError, ValueError) as error:  # a damaged member fails its CRC here
                raise InputError(f"{where}: object {name} is corrupted ({error})") from None
            if sha256_hex(data) != entry["sha256"]:
                raise InputError(f"{where}: object {name} does not match its SHA-256 (corrupted or altered)")
            objects[name] = data
    try:
        result = json.loads(objects[RESULT])
    except ValueError:
        raise InputError(f"{where}: {RESULT} is not JSON") from None
    if not isinstance(result, dict) or result.get("result") != facts["kind"]:
        raise InputError(f"{where}: {RESULT} is not an attnscope {facts['kind']} result")
    return facts, objects


def _facts(run: object, where: str) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise InputError(f"{where}: run.json has no run")
    missing = [key for key in _FACTS if key not in run]
    if missing:
        raise InputError(f"{where}: run.json's run lacks {', '.join(missing)}")
    check_run_id(run["id"])
    check_when(run["created"] if isinstance(run["created"], str) else "", "created")
    if run["kind"] not in KINDS:
        raise InputError(f"{where}: unknown run kind {run['kind']!r}")
    strings = [key for key in _FACTS if key != "method" and not isinstance(run[key], str)]
    if strings or not (run["method"] is None or isinstance(run["method"], str)):
        raise InputError(f"{where}: run.json's run has fields of the wrong type: {', '.join(strings) or 'method'}")
    return {key: run[key] for key in _FACTS}
