"""``load_model(spec)``: every spec form (alias, hub id, folder, .gguf, tiny:) to a ``LoadedModel``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from attnscope.errors import ChecksumError, InputError, ModelLoadError, ModelNotFoundError
from attnscope.models import cache, home, temporaries
from attnscope.models.catalog import CatalogEntry, get_entry, resolve_default
from attnscope.models.devices import resolve_device, resolve_dtype
from attnscope.models.info import read_architecture
from attnscope.models.loaded import LoadedModel
from attnscope.models.provenance import model_facts, state_dict_sha256, utc_now, weight_files
from attnscope.models.tiny import build_tiny
from attnscope.models.verify import inspect

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def classify(config: Any) -> str:
    """``causal``, ``masked`` or ``seq2seq`` from a config's flags and declared architectures."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures = list(getattr(config, "architectures", None) or [])
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "causal"
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return "masked"
    if architectures:
        return "masked"  # a bare encoder (BertModel, ...): attention but no next-token head
    return "causal" if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else "masked"


def _model_class(kind: str, config: Any) -> Any:
    import transformers as tf

    if kind == "causal":
        return tf.AutoModelForCausalLM
    if kind == "seq2seq":
        return tf.AutoModelForSeq2SeqLM
    architectures = list(getattr(config, "architectures", None) or [])
    return tf.AutoModelForMaskedLM if any(a.endswith("ForMaskedLM") for a in architectures) else tf.AutoModel


def _from_pretrained(cls: Any, source: str, torch_dtype: Any, trust_remote_code: bool, **kwargs: Any) -> Any:
    last_error: Exception | None = None
    for implementation in ("sdpa", "eager"):
        try:
            return cls.from_pretrained(
                source,
                dtype=torch_dtype,
                attn_implementation=implementation,
                trust_remote_code=trust_remote_code,
                **kwargs,
            )
        except ValueError as error:  # architecture without SDPA support: retry with eager
            last_error = error
            if "sdpa" not in str(error).lower() and "attn_implementation" not in str(error):
                break
    raise ModelLoadError(f"could not load model from {source}: {last_error}") from last_error


def _load_errors() -> tuple[type[BaseException], ...]:
    """What a failed load raises: I/O, bad configs (wrong types too), and corrupt safetensors headers."""
    from safetensors import SafetensorError

    errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError)
    with contextlib.suppress(ImportError):  # huggingface_hub's strict config dataclasses (not a ValueError)
        from huggingface_hub.errors import StrictDataclassError

        errors = (*errors, StrictDataclassError)
    return errors


def _load_hf(source: str, torch_dtype: Any, trust_remote_code: bool) -> tuple[Any, Any, str]:
    """(model, tokenizer, kind) from a folder or hub id holding safetensors weights."""
    import transformers as tf

    try:
        config = tf.AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        kind = classify(config)
        model = _from_pretrained(
            _model_class(kind, config), source, torch_dtype, trust_remote_code, use_safetensors=True
        )
        tokenizer = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ModelLoadError:
        raise
    except _load_errors() as error:
        raise ModelLoadError(f"could not load {source!r}: {error}") from error
    return model, tokenizer, kind


def _safetensors_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


@contextlib.contextmanager
def _gguf_file(paths: list[Path]) -> Iterator[Path]:
    """One GGUF file: the file itself, or the parts joined in a PID-named temporary folder in the cache
    (deleted afterwards; if this process is killed, by the next run's sweep)."""
    if len(paths) == 1:
        yield paths[0]
        return
    folder = temporaries.make_dir(cache.joins_dir(), "join")
    try:
        joined = folder / "model.gguf"
        cache.concatenate(paths, joined)
        yield joined
    finally:
        temporaries.remove(folder)


def _load_gguf(paths: list[Path], sha256: str, dtype_name: str, progress: Progress) -> tuple[Any, Any]:
    """Load GGUF weights through the one-time safetensors conversion cache keyed by their SHA-256."""
    import torch
    import transformers as tf

    torch_dtype = getattr(torch, dtype_name)
    folder = cache.conversion_dir(sha256, dtype_name)
    marker = cache.read_conversion(folder, sha256)
    if marker is not None and cache.verify_conversion(folder, marker):
        progress(f"loading converted weights from {folder}")
        try:
            model = _from_pretrained(tf.AutoModelForCausalLM, str(folder), torch_dtype, False, use_safetensors=True)
            tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
        except _load_errors() as error:
            raise ModelLoadError(f"could not load the converted weights in {folder}: {error}") from error
        return model, tokenizer
    if folder.exists():
        temporaries.discard(folder)  # stale or tampered conversion: redo it
    progress("converting GGUF weights to safetensors (once; later loads take seconds)")
    with _gguf_file(paths) as gguf_path:
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch_dtype, attn_implementation="sdpa"
            )
        except _load_errors() as error:
            raise ModelLoadError(f"could not read GGUF file {paths[0]}: {error}") from error
    model.hf_quantizer = None  # type: ignore[assignment]  # de-quantised: plain weights from here on
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with contextlib.suppress(OSError):  # a read-only cache only costs converting again next time
        _save_conversion(model, tokenizer, folder, sha256, dtype_name)
    return model, tokenizer


def _save_conversion(model: Any, tokenizer: Any, folder: Path, sha256: str, dtype_name: str) -> None:
    """Write the conversion into a PID-named temporary beside ``folder`` and rename it into place.

    The weights are hashed in the temporary without touching the hash index (their paths are about
    to change) and recorded under their final paths after the rename.
    """
    tmp = temporaries.make_dir(folder.parent, folder.name)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {p.name: cache.files_sha256([p], use_cache=False) for p in _safetensors_files(tmp)}
        marker_text = _json({"source_sha256": sha256, "dtype": dtype_name, "files": files, "created": utc_now()})
        (tmp / cache.CONVERSION_MARKER).write_text(marker_text, encoding="utf-8")
        os.rename(tmp, folder)  # fails if another process finished first: theirs is as good
    finally:
        temporaries.remove(tmp)
    for name, value in files.items():
        cache.remember_sha256([folder / name], value)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True)


def _verified(entry: CatalogEntry, progress: Progress) -> list[Path]:
    """The located files of a catalog model after checking their sizes and SHA-256.

    Raises ModelNotFoundError (not installed) or ChecksumError (damaged: missing, short or different
    files), each naming the ``attnscope models install`` command that installs or repairs it.
    """
    progress(f"verifying sizes and SHA-256 of {entry.alias}")
    found = inspect(entry)
    if found.state == "not installed":
        raise ModelNotFoundError(f"model {entry.alias!r} is not installed; install it with: {entry.install_hint()}")
    if found.state == "damaged":
        raise ChecksumError(
            f"model {entry.alias!r} is damaged: {found.problem} (in {found.root}); "
            f"repair it with: {entry.install_hint()}"
        )
    return list(found.paths)


def load_model(
    spec: str | None = None,
    *,
    device: str = "auto",
    dtype: str | None = None,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
) -> LoadedModel:
    """Load a model for capture.

    Args:
        spec: a catalog alias (``attnscope models``), a hub id, a local folder of safetensors
            weights, a ``.gguf`` file, or ``tiny:<family>``. None picks the default catalog model
            (``qwen2.5-coder-0.5b``, or an installed fallback); a blank string is an error.
        device: ``auto`` (a CUDA GPU, else MPS, else the CPU), ``cpu``, ``cuda[:N]`` or ``mps``.
        dtype: ``auto``/None (float32 on the CPU; bfloat16 on a GPU that supports it, else
            float16), ``float32``, ``bfloat16`` or ``float16``.
        trust_remote_code: passed to transformers; off unless asked for.
        progress: called with short status lines (the CLI prints them to stderr).

    Raises:
        ModelNotFoundError: the spec names nothing loadable (or is blank).
        ChecksumError: a catalog model's files differ from the expected SHA-256.
        ModelLoadError: the files exist but do not load.
    """
    import torch

    say = progress or _quiet
    if spec is None:
        home.sweep_abandoned()  # first: puts back a default model that a killed reinstall set aside
        spec, _note = resolve_default()
    spec = str(spec).strip()
    if not spec:
        raise ModelNotFoundError("the model spec is blank: name a model (see `attnscope models`), or pass None")
    try:
        device_name = resolve_device(device)
        dtype_name = resolve_dtype(dtype, device_name)
    except InputError as error:
        raise ModelLoadError(str(error)) from None
    torch_dtype = getattr(torch, dtype_name)
    weights_sha: str | None
    files: list[Path] | None = None  # the weight files, hashed one by one for the provenance
    remote_code = False  # whether the model's own code ran (folders and hub ids, when asked for)
    entry = get_entry(spec)
    path = Path(spec).expanduser()

    if spec.startswith("tiny:"):
        model, tokenizer, kind = build_tiny(spec.removeprefix("tiny:"), attn_implementation="sdpa")
        weights_sha = state_dict_sha256(model)
        name = f"tiny random {spec.removeprefix('tiny:')} (seed 0)"
        source = "random init from config"
    elif entry is not None:
        home.sweep_abandoned()
        paths = _verified(entry, say)
        weights_sha, files = entry.sha256, entry.weight_files(paths)
        name, source, kind = entry.title, f"catalog:{entry.alias}", entry.kind
        if entry.weight_format == "folder":
            model, tokenizer, kind = _load_hf(str(paths[0]), torch_dtype, False)
        else:
            model, tokenizer = _load_gguf(paths, entry.sha256, dtype_name, say)
    elif path.is_file() and path.suffix == ".gguf":
        home.sweep_abandoned()
        say(f"hashing {path}")
        weights_sha, files = cache.files_sha256([path]), [path]
        model, tokenizer = _load_gguf([path], weights_sha, dtype_name, say)
        name, source, kind = path.stem, str(path.resolve()), "causal"
    elif path.is_dir():
        files = _safetensors_files(path)
        if not files:
            raise ModelLoadError(f"{path} holds no .safetensors weights (pickle checkpoints are not loaded)")
        weights_sha = cache.files_sha256(files)
        model, tokenizer, kind = _load_hf(str(path), torch_dtype, trust_remote_code)
        name, source, remote_code = path.resolve().name, str(path.resolve()), trust_remote_code
    elif path.exists():
        raise ModelNotFoundError(f"{path} is neither a .gguf file nor a model folder")
    elif "/" in spec and not spec.startswith((".", "/", "~")):
        say(f"loading {spec} from the Hugging Face hub")
        try:
            model, tokenizer, kind = _load_hf(spec, torch_dtype, trust_remote_code)
        except ModelLoadError as error:
            raise ModelNotFoundError(f"could not load hub model {spec!r} (no network access?): {error}") from None
        weights_sha, name, source, remote_code = None, spec, f"hub:{spec}", trust_remote_code
    else:
        raise ModelNotFoundError(
            f"unknown model {spec!r}: not a catalog alias (see `attnscope models`), not an existing path, "
            "and not a hub id of the form owner/name"
        )

    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{spec}: attnscope needs a fast tokenizer (character offsets); got {type(tokenizer)}")
    model = model.to(device=device_name, dtype=torch_dtype)
    model.eval()
    arch = read_architecture(model.config, kind)
    provenance = model_facts(
        spec=spec,
        name=name,
        source=source,
        weights_sha=weights_sha,
        files=None if files is None else weight_files(files),
        model=model,
        tokenizer=tokenizer,
        dtype=dtype_name,
        device=device_name,
        trust_remote_code=remote_code,
    )
    return LoadedModel(
        spec=spec,
        name=name,
        kind=kind,
        model=model,
        tokenizer=tokenizer,
        arch=arch,
        provenance=provenance,
        device=device_name,
        dtype=dtype_name,
        has_lm_head=model.get_output_embeddings() is not None,
    )
