"""The provenance record (version 1): its schema, its output hashes, and where to find it in a file.

Records are made where results are made (:mod:`attnscope.models.provenance`: capture, generation,
methods); the JSON builders complete them with :func:`seal`, which adds the SHA-256 of each result
array of the answer (:data:`HASHED`). The JSON Schema shipped beside this module
(``provenance.schema.json``, draft 2020-12) documents every field; the README's table is made from it
(:func:`fields_markdown`).

Output hashes: for each path of :data:`HASHED` of the answer's ``result`` kind, the value at that path
in the answer, written as canonical JSON —
``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
encoded as UTF-8 — and hashed with SHA-256 (hex). A path is keys joined by dots; ``name[]`` maps the
rest of the path over the list ``name`` (the hashed value is the list of the results); ``*`` stands
for every key of an object, each hashed under its own name. A path the answer has no value at
hashes to ``null``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import uuid
from collections.abc import Mapping
from importlib import resources
from typing import Any

from attnscope.contracts import plain
from attnscope.models.provenance import FIELDS, PROVENANCE_VERSION, canonical_json

__all__ = [
    "FIELDS",
    "HASHED",
    "PROVENANCE_VERSION",
    "SCHEMA_FILE",
    "fields_markdown",
    "groups",
    "output_hashes",
    "records_in",
    "schema",
    "seal",
    "sealed_id",
    "value_sha256",
    "with_masking",
    "with_run_id",
    "with_signing_key",
]

SCHEMA_FILE = "provenance.schema.json"
MISSING = object()

# the result arrays of each kind of answer whose hashes a sealed record carries (see the module docstring)
HASHED: dict[str, tuple[str, ...]] = {
    "analysis": ("tokens", "attention.weights", "prediction.top"),
    "attribution": ("units", "scores", "token_scores"),
    "generation": ("generated.tokens", "steps[].token.id", "steps[].top", "steps[].attention.weights"),
    "heads": ("metrics.*", "labels"),
    "parts": ("mass", "mean_over_heads"),
    "agreement": ("units", "methods.*.scores", "methods.*.token_scores", "agreement"),
    "comparison": ("prompts", "difference"),
    "report": ("prediction", "methods.*.scores", "methods.*.token_scores", "heads.metrics.*", "agreement"),
    "rules": ("results", "summary"),
    "bias": ("pairs[].gap", "pairs[].heads.difference", "summary"),
    "audit": ("rules.results", "snapshot.weights", "evidence", "attribution", "counterfactuals", "bias"),
    "counterfactual": (
        "original.prediction",
        "counterfactual.prediction",
        "attention",
        "difference",
        "heads",
        "attribution",
    ),
}


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a version-1 record (shipped in the package)."""
    text = resources.files("attnscope.governance").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def groups() -> list[tuple[str, list[str]]]:
    """The fields by group (run, software, machine, ...), in record order."""
    found: dict[str, list[str]] = {}
    for name, spec in schema()["properties"].items():
        found.setdefault(spec["x-group"], []).append(name)
    return list(found.items())


def value_sha256(value: Any) -> str:
    """SHA-256 (hex) of ``value``'s canonical JSON (numpy values as plain JSON values first)."""
    return hashlib.sha256(canonical_json(plain(value))).hexdigest()


def _walk(value: Any, parts: list[str], name: str, found: dict[str, Any]) -> None:
    if not parts:
        found[name] = value
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(value, Mapping):
            for key in sorted(value):
                _walk(value[key], rest, name.replace("*", str(key), 1), found)
        return
    listed = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(value, Mapping) or key not in value:
        found.setdefault(name, MISSING)
        return
    if not listed:
        _walk(value[key], rest, name, found)
        return
    items = value[key] if isinstance(value[key], list) else []
    mapped = []
    for item in items:
        inner: dict[str, Any] = {}
        _walk(item, rest, name, inner)
        mapped.append(None if inner.get(name, MISSING) is MISSING else inner[name])
    found[name] = mapped


def output_hashes(answer: Mapping[str, Any]) -> dict[str, str | None]:
    """``{path: sha256 hex or None}`` of the answer's result arrays (:data:`HASHED` of its kind)."""
    found: dict[str, Any] = {}
    for path in HASHED.get(str(answer.get("result")), ()):
        _walk(answer, path.split("."), path, found)
    return {path: None if value is MISSING else value_sha256(value) for path, value in found.items()}


def seal(answer: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``answer`` with its record (or each record of a list) completed: ``result_kind``, ``output_hashes``,
    ``fields`` and a ``record_id`` of its own (:func:`sealed_id`: one trace may answer many requests).
    Records older than version 1 are left as they are."""
    record = answer.get("provenance")
    if not isinstance(record, dict | list):
        return answer
    hashes = output_hashes(answer)

    def sealed(one: Any) -> Any:
        if not isinstance(one, dict) or one.get("provenance_version") is None:
            return one
        added = {**fields, "result_kind": answer.get("result"), "output_hashes": hashes}
        return {**one, **added, "record_id": sealed_id(one.get("record_id"), added)}

    answer["provenance"] = [sealed(one) for one in record] if isinstance(record, list) else sealed(record)
    return answer


def sealed_id(record_id: Any, added: Mapping[str, Any]) -> str:
    """The id of a sealed record: a UUID (version 5, hex) of the unsealed record's id and what sealing
    added, so the same answer built twice from one trace has one id and different answers have different
    ones."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{record_id}:{value_sha256(dict(added))}").hex


def with_run_id(record: Mapping[str, Any], run_id: str | None) -> dict[str, Any]:
    """``record`` as kept by a runs store under ``run_id``."""
    return {**record, "run_id": run_id}


def with_masking(record: Mapping[str, Any], policy: str | None, count: int | None) -> dict[str, Any]:
    """``record`` after personal data was masked by ``policy`` (``mask``, ``hash``, …) in ``count`` spans."""
    return {**record, "masking_policy": policy, "masked_spans": count}


def with_signing_key(record: Mapping[str, Any], keyid: str | None) -> dict[str, Any]:
    """``record`` as signed by the key whose fingerprint (SHA-256 hex of the public key's DER) is ``keyid``."""
    return {**record, "signing_key_fingerprint": keyid}


def records_in(data: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(what ``data`` is, the records in it) for a JSON result (``provenance``: one record, or one per
    prompt of a comparison), a stored run's answer (``answer``), a report's ``R.json``, or a DSSE
    envelope of a signed report (its statement's predicate; the signature is not checked here, and
    the envelope's keyid fills ``signing_key_fingerprint``); None when it holds none of these."""
    if not isinstance(data, dict):
        return None
    if "payloadType" in data and "payload" in data:
        try:
            statement = json.loads(base64.b64decode(str(data["payload"]), validate=True))
        except (binascii.Error, ValueError):
            return None
        predicate = statement.get("predicate") if isinstance(statement, dict) else None
        if not isinstance(predicate, dict):
            return None
        keyids = [s.get("keyid") for s in data.get("signatures") or [] if isinstance(s, dict) and s.get("keyid")]
        return "signed envelope (signature not checked: attnscope verify)", [
            with_signing_key(predicate, str(keyids[0])) if keyids else predicate
        ]
    if isinstance(data.get("answer"), dict) and "provenance" not in data:  # attnscope runs show
        found = records_in(data["answer"])
        run_id = data.get("run", {}).get("id") if isinstance(data.get("run"), dict) else None
        if found is None or not run_id:
            return found
        return f"stored run {run_id}: {found[0]}", [with_run_id(one, str(run_id)) for one in found[1]]
    record = data.get("provenance")
    if isinstance(record, dict):
        records = [record]
    elif isinstance(record, list) and record and all(isinstance(one, dict) for one in record):
        records = list(record)
    else:
        return None
    run_id = data.get("run_id")  # an answer printed with --store names the run that keeps it
    if isinstance(run_id, str):
        records = [one if one.get("run_id") else with_run_id(one, run_id) for one in records]
    kind = f"{data.get('result') or 'JSON'} result"
    return (kind if len(records) == 1 else f"{kind} ({len(records)} records)"), records


def fields_markdown() -> str:
    """The README's table of the fields: name, group, type and description, from the schema."""
    lines = ["| field | group | type | meaning |", "|---|---|---|---|"]
    for name, spec in schema()["properties"].items():
        kinds = spec.get("type") or [one.get("type") or json.dumps(one.get("const")) for one in spec.get("oneOf", [])]
        shown = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
        description = str(spec["description"]).replace("|", "\\|")
        lines.append(f"| `{name}` | {spec['x-group']} | {shown} | {description} |")
    return "\n".join(lines)
