"""The trace file: arrays in safetensors, metadata as JSON in the safetensors header.

Format ``attnscope.trace`` version 2. A SHA-256 over every array (name, dtype, shape, bytes) and
over the metadata itself (canonical JSON without the checksum field) is stored in the metadata and
checked on load, so truncation, bit rot and edited metadata are reported, not loaded. Version 1
files (arrays-only checksum) still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.capture.predictions import Predictions
from attnscope.capture.reads import AttentionSource
from attnscope.capture.sources import FullSource, QKSource
from attnscope.capture.tokens import Part, Token
from attnscope.errors import InputError, TraceFormatError
from attnscope.models import temporaries
from attnscope.models.info import ModelInfo

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace

FORMAT = "attnscope.trace"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_META_KEY = "attnscope"


def _checksum(arrays: dict[str, np.ndarray], meta: dict[str, Any] | None) -> str:
    """SHA-256 over the arrays and (version 2) the metadata without its checksum field."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())
    if meta is not None:
        body = {key: value for key, value in meta.items() if key != "checksum"}
        digest.update(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()


def save_trace(trace: Trace, path: Path) -> Path:
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {"token_ids": np.asarray(trace.token_ids, dtype=np.int64)}
    if trace.predictions is not None:
        trace.predictions.ensure()  # a loaded trace has no model: every position's predictions go in the file
        arrays["pred/top_ids"] = trace.predictions.top_ids
        arrays["pred/top_probs"] = trace.predictions.top_probs
        arrays["pred/next_prob"] = trace.predictions.next_prob
    arrays.update(trace.source.arrays())
    arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "text": trace.text,
        "tokens": [t.to_dict() for t in trace.tokens],
        "target_text": trace.target_text,
        "target_tokens": None if trace.target_tokens is None else [t.to_dict() for t in trace.target_tokens],
        "parts": [p.to_dict() for p in trace.parts],
        "model": trace.model.to_dict(),
        "backend": trace.backend,
        "source": trace.source.meta(),
        "strings": None if trace.predictions is None else {str(k): v for k, v in trace.predictions.strings.items()},
        "provenance": trace.provenance,
    }
    generation = trace.generation_meta()
    if generation is not None:
        meta["generation"] = generation
    meta["checksum"] = _checksum(arrays, meta)
    check_destination(path)
    _sweep_abandoned(path)
    try:
        fd, tmp = temporaries.make_file(path.parent, path.name)  # ".<name>.<pid>-<hex>.tmp", mode 0644
    except OSError as error:
        raise InputError(f"cannot write a trace to {path}: {error.strerror or error}") from None
    mode = os.fstat(fd).st_mode & 0o777  # 0644 under the user's umask
    os.close(fd)
    try:
        save_file(arrays, tmp, metadata={_META_KEY: json.dumps(meta, ensure_ascii=False)})
        os.chmod(tmp, mode)  # safetensors writes a private file in its place
        os.replace(tmp, path)
    except OSError as error:
        raise InputError(f"cannot write a trace to {path}: {error.strerror or error}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _sweep_abandoned(path: Path) -> None:
    """Delete temporaries of earlier saves of this same file whose writing process is gone (killed)."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            pid = temporaries.writer_pid(entry.name) if entry.name.startswith(prefix) else None
            if pid is not None and not temporaries.pid_alive(pid):
                temporaries.remove(entry)


def check_destination(path: Path) -> None:
    """A clear refusal for a folder, a path under a regular file, or a folder that cannot be made."""
    if path.is_dir():
        raise InputError(
            f"cannot write a trace to {path}: it is a folder; name a file such as {path / 'trace.safetensors'}"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write a trace to {path}: {parent} is a file, not a folder")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot write a trace to {path}: {error.strerror or error}") from None


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise TraceFormatError(f"{path}: no such trace file")
    try:
        with safe_open(str(path), framework="np") as handle:
            header = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise TraceFormatError(f"{path} is not a readable trace file (truncated or not safetensors): {error}") from None
    if _META_KEY not in header:
        raise TraceFormatError(f"{path} is a safetensors file but not an attnscope trace")
    try:
        meta = json.loads(header[_META_KEY])
    except ValueError as error:
        raise TraceFormatError(f"{path}: corrupt trace metadata: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TraceFormatError(f"{path} is not an attnscope trace")
    if meta.get("version") not in READABLE_VERSIONS:
        raise TraceFormatError(
            f"{path}: trace format version {meta.get('version')} is not supported "
            f"(this attnscope reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    if meta.get("checksum") != _checksum(arrays, meta if meta["version"] >= 2 else None):
        raise TraceFormatError(f"{path}: checksum mismatch, the file is corrupt")
    return meta, arrays


def read_trace(path: Path) -> dict[str, Any]:
    """The keyword arguments of :class:`~attnscope.capture.trace.Trace` stored in ``path``."""
    meta, arrays = _read(path)
    try:
        source_meta = meta["source"]
        source: AttentionSource
        if source_meta["name"] == "qk":
            source = QKSource.from_arrays(arrays, source_meta)
        elif source_meta["name"] == "full":
            source = FullSource.from_arrays(arrays, source_meta)
        else:
            raise TraceFormatError(f"{path}: unknown attention source {source_meta['name']!r}")
        predictions = None
        if "pred/top_ids" in arrays:
            predictions = Predictions(
                top_ids=arrays["pred/top_ids"],
                top_probs=arrays["pred/top_probs"],
                next_prob=arrays["pred/next_prob"],
                strings={int(k): v for k, v in (meta.get("strings") or {}).items()},
            )
        target = meta.get("target_tokens")
        return {
            "text": meta["text"],
            "tokens": [Token.from_dict(t) for t in meta["tokens"]],
            "model": ModelInfo.from_dict(meta["model"]),
            "source": source,
            "backend": meta["backend"],
            "predictions": predictions,
            "provenance": meta["provenance"],
            "parts": [Part(**p) for p in meta.get("parts", [])],
            "target_tokens": None if target is None else [Token.from_dict(t) for t in target],
            "target_text": meta.get("target_text"),
            **({"generation": _read_generation(meta["generation"])} if "generation" in meta else {}),
        }
    except (KeyError, TypeError, ValueError) as error:
        raise TraceFormatError(f"{path}: incomplete trace metadata ({error})") from None


def _read_generation(data: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~attnscope.capture.trace.GenerationTrace` fields of a generation's metadata (steps as dicts)."""
    return {
        "prompt_length": int(data["prompt_length"]),
        "prompt_chars": int(data["prompt_chars"]),
        "steps": [dict(step) for step in data["steps"]],
        "stop_reason": str(data["stop_reason"]),
        "settings": dict(data["settings"]),
        "windows": [None if w is None else int(w) for w in data.get("windows", [])],
        "beam_tree": [[dict(node) for node in level] for level in data.get("beam_tree", [])],  # older files: none
    }
