"""PEFT adapters (LoRA and the other ``peft`` tuners) applied over a loaded model.

``with_adapter(base, folder)`` gives a new :class:`LoadedModel`: a copy of ``base``'s weights with the
adapter in ``folder`` (``adapter_config.json`` + ``adapter_model.safetensors``, as
``PeftModel.save_pretrained`` writes it) loaded by ``peft.PeftModel.from_pretrained`` and **merged**
into the copy (``merge_and_unload``). Merging is what keeps every attnscope path exact and unchanged:
the result is a plain ``transformers`` model again, so capture can switch its attention
implementation, stash queries and keys, and the gradient methods can differentiate it, as for any
other model; a LoRA merge computes ``W + (α/r)·B·A`` once, which is what the un-merged ``PeftModel``
adds at every forward (equal up to float rounding; the tests compare both). ``base`` is never
changed: the copy is merged, so a model and the same model with its adapter can be held side by side.

Only safetensors adapter weights are read: a folder with only a pickle ``adapter_model.bin`` is
refused. The result's provenance records ``adapter_sha256`` (:func:`adapter_sha256`: the SHA-256 of
``adapter_config.json``'s bytes followed by ``adapter_model.safetensors``'s, because the config's
``r``, ``lora_alpha`` and ``target_modules`` change the merged weights as much as the weights do) and
lists the weights file among ``weight_files``; its fingerprint and spec differ from the base's, and
two adapters differing in config or weights differ in fingerprint, so a trace or cached answer of
one is never shown for the other.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from attnscope.errors import InputError, ModelLoadError, ModelNotFoundError
from attnscope.models.info import read_architecture
from attnscope.models.loaded import LoadedModel

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def adapter_files(folder: str | Path) -> tuple[Path, Path]:
    """(config, weights) of the adapter in ``folder``, checked: both present, weights in safetensors."""
    path = Path(folder).expanduser()
    if not str(folder).strip():
        raise InputError("the adapter path is blank: name a folder with adapter_config.json")
    if not path.is_dir():
        raise ModelNotFoundError(f"adapter folder {str(path)!r} does not exist (or is not a folder)")
    config, weights = path / ADAPTER_CONFIG, path / ADAPTER_WEIGHTS
    if not config.is_file():
        raise ModelNotFoundError(f"{path} holds no {ADAPTER_CONFIG}: not a PEFT adapter folder")
    if not weights.is_file():
        pickled = (
            " (only a pickle adapter_model.bin, which is not loaded)" if (path / "adapter_model.bin").exists() else ""
        )
        raise ModelLoadError(f"{path} holds no {ADAPTER_WEIGHTS}{pickled}; save the adapter with safetensors")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{config} is not valid JSON: {error}") from None
    return config, weights


def adapter_sha256(folder: str | Path) -> str:
    """SHA-256 of the adapter in ``folder``: its config's bytes, then its weights' (checked as
    :func:`adapter_files`). Cheap to recompute: the hash index remembers it per (path, size, mtime)."""
    from attnscope.models.cache import files_sha256

    return files_sha256(list(adapter_files(folder)))


def with_adapter(base: LoadedModel, folder: str | Path) -> LoadedModel:
    """``base`` with the PEFT adapter in ``folder`` merged into a copy of its weights (module docstring)."""
    from peft import PeftModel

    from attnscope.models.provenance import config_sha256, weight_files

    config_path, weights_path = adapter_files(folder)
    root = config_path.parent.resolve()
    adapter_sha = adapter_sha256(root)
    with base.lock:
        model = copy.deepcopy(base.model)
    try:
        wrapped = PeftModel.from_pretrained(model, str(root), is_trainable=False)
        merged: Any = wrapped.merge_and_unload()
    except Exception as error:  # peft raises ValueError/KeyError/RuntimeError for a mismatched adapter
        message = " ".join(str(error).split())[:300]
        raise ModelLoadError(f"adapter {root} does not apply to {base.spec}: {message}") from None
    merged.eval()
    files = list(base.provenance.get("weight_files") or []) + weight_files([weights_path])
    provenance = {
        **base.provenance,
        "model_spec": f"{base.spec}+adapter:{root}",
        "model_name": f"{base.name} + adapter {root.name}",
        "adapter_sha256": adapter_sha,
        "weight_files": files,
        "config_sha256": config_sha256(merged.config),
    }
    return LoadedModel(
        spec=provenance["model_spec"],
        name=provenance["model_name"],
        kind=base.kind,
        model=merged,
        tokenizer=base.tokenizer,
        arch=read_architecture(merged.config, base.kind),
        provenance=provenance,
        device=base.device,
        dtype=base.dtype,
        has_lm_head=merged.get_output_embeddings() is not None,
    )
