"""Provenance: which code, libraries, machine, weights, input and settings produced a result.

A result's record (version :data:`PROVENANCE_VERSION`) has every name of :data:`FIELDS`, ``null``
where a field does not apply, so a reviewer also sees what was *not* used. It is documented by the JSON
Schema ``attnscope/governance/provenance.schema.json``; :mod:`attnscope.governance.provenance` reads
records, completes them with output hashes and says what each field means. Records are made here,
below the capture layer, because the capture, generation and method code makes them.

Facts that do not change while a model is loaded (weights, config, tokenizer) are computed once at
load time (:func:`model_facts`) and kept on ``LoadedModel.provenance``; facts of this process
(versions, source revision, OS, CPU) once per process; determinism settings when each record is made.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from attnscope.version import __version__

PROVENANCE_VERSION = 1

# Every field of a version-1 record, in the order records list them (the schema documents each one).
FIELDS: tuple[str, ...] = (
    # run
    "provenance_version", "record_id", "run_id", "result_kind", "started_at", "finished_at", "captured_at",
    "loaded_at",
    # software
    "attnscope_version", "source_revision", "python_version", "torch_version", "transformers_version",
    "tokenizers_version", "numpy_version",
    # machine
    "os", "cpu", "gpu", "device", "dtype", "deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark",
    "num_threads", "seed",
    # model
    "model_spec", "model_name", "source", "weights_sha256", "weight_files", "config_sha256", "tokenizer_sha256",
    "chat_template_sha256", "adapter_sha256", "trust_remote_code",
    # input
    "text_sha256", "text_chars", "text_tokens", "tokenizer_options", "masking_policy", "masked_spans",
    # method
    "method", "method_options", "target", "baseline", "steps", "completeness_delta", "scorer",
    # capture
    "backend", "stash_policy", "stash_budget", "stash", "top_k", "predict", "layers_captured",
    # generation
    "generation", "stop_reason",
    # outputs
    "output_hashes",
    # privacy and signing
    "dp_mechanism", "dp_epsilon", "dp_delta", "dp_sensitivity", "dp_sensitivity_norm", "dp_noise_scale",
    "dp_rows_released", "dp_composition", "dp_total_epsilon", "dp_library", "signing_key_fingerprint",
)  # fmt: skip

# What ``LoadedModel.provenance`` contributes to every record of that model.
MODEL_FIELDS: tuple[str, ...] = (
    "loaded_at", "device", "dtype", "gpu", "model_spec", "model_name", "source", "weights_sha256", "weight_files",
    "config_sha256", "tokenizer_sha256", "chat_template_sha256", "adapter_sha256", "trust_remote_code",
)  # fmt: skip
# What a result computed from a trace keeps of the trace's record.
CAPTURE_FIELDS: tuple[str, ...] = (
    "captured_at", "backend", "stash_policy", "stash_budget", "stash", "top_k", "predict", "layers_captured",
)  # fmt: skip
GIT_TIMEOUT_S = 2.0


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of ``value`` that provenance hashes are taken over (UTF-8 bytes)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def sha256_of_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def utc_now() -> str:
    """The time now, UTC, ISO 8601 with milliseconds and ``Z``: ``2026-11-26T18:36:39.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- this process -------------------------------------------------------------------------------------
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def library_versions() -> dict[str, str | None]:
    return {
        "attnscope": __version__,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "tokenizers": _version("tokenizers"),
        "numpy": _version("numpy"),
        "platform": f"{sys.platform}-{platform.machine()}",
    }


@functools.cache
def source_revision() -> str | None:
    """The git commit of the source tree this package runs from (``git rev-parse HEAD`` in the
    package's folder, when git tracks the package there; no network), else None. Uncommitted changes
    are not reflected."""
    folder = Path(__file__).resolve().parents[1]
    try:
        tracked = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "--error-unmatch", "version.py"],
            capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
        )  # fmt: skip
        if tracked.returncode != 0:  # an installed copy inside someone else's repository is not a checkout
            return None
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = head.stdout.decode("ascii", "replace").strip()
    return revision if head.returncode == 0 and len(revision) in (40, 64) else None


@functools.cache
def cpu_name() -> str | None:
    """The CPU's model name: ``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.lower().startswith("model name"):
                        return line.split(":", 1)[1].strip() or None
        except OSError:
            pass
    return platform.processor() or None


def _process_facts() -> dict[str, Any]:
    versions = library_versions()
    return {
        "attnscope_version": versions["attnscope"],
        "source_revision": source_revision(),
        "python_version": versions["python"],
        "torch_version": versions["torch"],
        "transformers_version": versions["transformers"],
        "tokenizers_version": versions["tokenizers"],
        "numpy_version": versions["numpy"],
        "os": platform.platform(),
        "cpu": cpu_name(),
    }


def determinism() -> dict[str, Any]:
    """torch's determinism settings as they are now (they may change between results)."""
    import torch

    return {
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "num_threads": int(torch.get_num_threads()),
    }


# ---- the model, at load time ----------------------------------------------------------------------------
def tokenizer_sha256(tokenizer: Any) -> str | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()


def chat_template_sha256(tokenizer: Any) -> str | None:
    """SHA-256 of the tokenizer's chat template (UTF-8; a dict of named templates: its canonical JSON)."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if isinstance(template, str):
        return hashlib.sha256(template.encode("utf-8")).hexdigest()
    return sha256_of_json(template)


# config keys that say where or how a model was loaded, not what it is (recorded in their own fields)
_CONFIG_VOLATILE = ("_name_or_path", "transformers_version", "dtype", "torch_dtype")


def config_sha256(config: Any) -> str:
    """SHA-256 of the config's canonical JSON: ``config.to_dict()`` without ``_name_or_path``,
    ``transformers_version``, ``dtype`` and ``torch_dtype`` (keys sorted, no spaces, UTF-8; values
    that are not JSON as ``str()``)."""
    body = {key: value for key, value in config.to_dict().items() if key not in _CONFIG_VOLATILE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def state_dict_sha256(model: Any) -> str:
    """SHA-256 over a model's parameters in name order (for tiny models built in memory)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weight_files(paths: list[Path]) -> list[dict[str, Any]]:
    """``[{"name", "bytes", "sha256"}]`` of each weight file, in load order (hashes through the
    stat-keyed index of :mod:`attnscope.models.cache`: a verified file is read once per machine)."""
    from attnscope.models.cache import files_sha256

    return [{"name": path.name, "bytes": path.stat().st_size, "sha256": files_sha256([path])} for path in paths]


def model_facts(
    *,
    spec: str,
    name: str,
    source: str,
    weights_sha: str | None,
    files: list[dict[str, Any]] | None,
    model: Any,
    tokenizer: Any,
    dtype: str,
    device: str,
    trust_remote_code: bool,
) -> dict[str, Any]:
    """``LoadedModel.provenance``: the model's facts (``versions`` for older readers)."""
    gpu = None
    if device.startswith("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "model_spec": spec,
        "model_name": name,
        "source": source,
        "weights_sha256": weights_sha,
        "weight_files": files,
        "config_sha256": config_sha256(model.config),
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
        "chat_template_sha256": chat_template_sha256(tokenizer),
        "adapter_sha256": None,  # no adapters are loaded (yet)
        "trust_remote_code": bool(trust_remote_code),
        "dtype": dtype,
        "device": device,
        "gpu": gpu,
        "loaded_at": utc_now(),
        "versions": library_versions(),
    }


# ---- records ----------------------------------------------------------------------------------------------
def tokenizer_options(chat: bool) -> dict[str, Any]:
    """How a text became tokens: plain text with the tokenizer's special tokens, or chat messages
    rendered by the chat template (which writes the special tokens itself); never truncated."""
    return {
        "add_special_tokens": not chat,
        "truncation": False,
        "chat_template": chat,
        "add_generation_prompt": True if chat else None,
    }


def text_fields(text: str, n_tokens: int, *, chat: bool) -> dict[str, Any]:
    """The input fields of a record for ``text`` read as ``n_tokens`` tokens (plain text or chat)."""
    return {
        "text_sha256": text_sha256(text),
        "text_chars": len(text),
        "text_tokens": n_tokens,
        "tokenizer_options": tokenizer_options(chat),
    }


def stash_fields(stash: Mapping[str, Any] | None) -> dict[str, Any]:
    """The capture's stash fields from ``Stash.describe()`` (None: no stash, the ``full`` backend)."""
    if stash is None:
        return {"stash_policy": None, "stash_budget": None, "stash": None}
    return {"stash_policy": stash["policy"], "stash_budget": stash["budget_bytes"], "stash": dict(stash)}


def new_record(model: Mapping[str, Any] | None, *, started_at: str, **fields: Any) -> dict[str, Any]:
    """A complete record: every field of :data:`FIELDS` (None where not given), this process's facts,
    the model facts of ``model`` (a ``LoadedModel.provenance`` or another record), then ``fields``."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"not provenance fields: {', '.join(sorted(unknown))}")
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update(_process_facts())
    record.update(determinism())
    if model is not None:
        record.update({key: model.get(key) for key in MODEL_FIELDS})
    record.update(fields)
    record.update(
        provenance_version=PROVENANCE_VERSION,
        record_id=uuid.uuid4().hex,
        started_at=started_at,
        finished_at=fields.get("finished_at") or utc_now(),
    )
    return record


def derive(record: Mapping[str, Any], *, started_at: str, **fields: Any) -> dict[str, Any]:
    """A new record for a result computed from a trace whose record is ``record``: its model, input and
    capture fields, a new id and times, and ``fields`` (the method's)."""
    kept = {key: record.get(key) for key in ("text_sha256", "text_chars", "text_tokens", "tokenizer_options")}
    kept |= {key: record.get(key) for key in (*CAPTURE_FIELDS, "seed", "generation", "stop_reason")}
    kept |= {key: record.get(key) for key in ("masking_policy", "masked_spans")}
    return new_record(record, started_at=started_at, **(kept | fields))


def capture_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The capture's fields of a trace's record (for a result computed from that trace)."""
    return {key: record.get(key) for key in CAPTURE_FIELDS}
