"""``attnscope provenance RUN|FILE``: the provenance record of a stored run or a result file, as a table."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path
from typing import Any

from attnscope.cli import common
from attnscope.contracts import SCHEMA_VERSION
from attnscope.errors import InputError

MAX_TRACE_HEADER = 100 * 1024 * 1024  # bytes of a safetensors header read before refusing the file
TRACE_META_KEY = "attnscope"  # where capture.trace_file keeps a trace's metadata in the safetensors header


def add(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "provenance",
        help="print the provenance record of a stored run or a result file",
        description="Print the provenance record (which code, machine, weights, input and settings made a result, "
        "and the SHA-256 of its outputs) of RUN, a stored run's id (attnscope runs list), or FILE: a JSON result "
        "(--json of analyze, attribute, generate, ...), a report's R.json, a signed report's R.intoto.json (its "
        "predicate; attnscope verify checks the signature) or a saved trace file (its metadata only). The fields "
        "are documented by attnscope/governance/provenance.schema.json.",
    )
    command.add_argument("source", metavar="RUN|FILE", help="a stored run's id or a file")
    command.add_argument("--json", action="store_true", help="print the records as one JSON object")
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    what, records = read_records(args.source)
    if args.json:
        common.emit({"schema_version": SCHEMA_VERSION, "result": "provenance", "source": what, "records": records})
        return 0
    print(f"provenance of {args.source}: {what}")
    for index, record in enumerate(records):
        if len(records) > 1:
            print(f"\nrecord {index + 1} of {len(records)}")
        print(table(record))
    return 0


def read_records(source: str) -> tuple[str, list[dict[str, Any]]]:
    """(what ``source`` is, its records): a file when one is there, else a stored run's id."""
    from attnscope.governance.provenance import records_in, with_run_id
    from attnscope.store.runs import RUN_ID, RunsStore

    path = Path(source).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder: name a result file, a report's R.json or R.intoto.json, or a trace")
    if path.is_file():
        if _is_safetensors(path):
            return "trace file (its metadata; Trace.load checks the file's checksum)", [_trace_record(path)]
        found = records_in(_json_file(path))
        if found is None:
            raise InputError(
                f"{path} holds no attnscope provenance record "
                "(not a JSON result, a report's R.json or R.intoto.json, a stored run or a trace file)"
            )
        return found
    if not RUN_ID.match(source):
        raise InputError(f"{source}: no such file, and not a stored run's id (16 hex digits: attnscope runs list)")
    with RunsStore() as store:
        stored = store.get(source)  # NotFoundError: no stored run <id>
        answer = store.result(stored)
    found = records_in(answer)
    if found is None:
        raise InputError(f"stored run {source} has no provenance record")
    return f"stored run {source} ({stored.kind}, {stored.created})", [with_run_id(one, source) for one in found[1]]


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{path} is neither JSON nor a trace file") from None


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file: an 8-byte header length, then ``{``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    return len(head) == 9 and head[8:9] == b"{" and 0 < struct.unpack("<Q", head[:8])[0] <= MAX_TRACE_HEADER


def _trace_record(path: Path) -> dict[str, Any]:
    """A trace file's metadata, read from its safetensors header alone (no array is read, so the
    file's checksum is not checked: ``Trace.load`` does that)."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length).decode("utf-8"))
        meta = json.loads(header["__metadata__"][TRACE_META_KEY])
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        raise InputError(f"{path} is a safetensors file but not an attnscope trace") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("provenance"), dict):
        raise InputError(f"{path} is a safetensors file but not an attnscope trace")
    return dict(meta["provenance"])


def table(record: dict[str, Any]) -> str:
    """The record as two columns, field and value, under its groups (the schema's)."""
    from attnscope.governance.provenance import FIELDS, groups

    rows: list[tuple[str, str | None]] = []  # (indented name, value); a group's or an object's title: None
    others = [name for name in record if name not in FIELDS]  # an older record's, or a newer version's
    for group, names in [*groups(), ("other", others)]:
        present = [name for name in names if name in record]
        if present:
            rows.append((group, None))
            for name in present:
                rows.extend(_rows(name, record[name], "  "))
    width = max(len(name) for name, value in rows if value is not None) + 2
    return "\n".join(name if value is None else f"{name:<{width}}{value}" for name, value in rows)


def _rows(name: str, value: Any, indent: str) -> list[tuple[str, str | None]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, str | None]] = [(f"{indent}{name}", None)]
        for key, inner in value.items():
            rows.extend(_rows(str(key), inner, indent + "  "))
        return rows
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        rows = [(f"{indent}{name}", None)]
        for index, item in enumerate(value):
            rows.append((f"{indent}  [{index}]", "  ".join(_scalar(inner) for inner in item.values())))
        return rows
    return [(f"{indent}{name}", _scalar(value))]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
