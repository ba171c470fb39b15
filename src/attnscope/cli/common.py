"""What the CLI's commands share: the input and model options, reading text, loading, progress, output."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from attnscope.capture.reads import BACKENDS, STASH_POLICIES
from attnscope.errors import InputError
from attnscope.models.devices import DTYPE_CHOICES, DTYPES

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

EXAMPLE_ZH = "我爱中国，他的首都在于"


def add_text(command: argparse.ArgumentParser) -> None:
    """TEXT, or ``--file PATH``: every command that reads one text (:func:`read_text` takes both)."""
    command.add_argument(
        "text",
        metavar="TEXT",
        nargs="?",
        default=None,
        help="the input text; '-' reads UTF-8 from standard input (a final line break dropped); or give --file",
    )
    command.add_argument(
        "--file",
        dest="text_file",
        metavar="PATH",
        default=None,
        help="read the text from a file instead of TEXT: .txt or .md (UTF-8, kept as written), .pdf (its text "
        "layer; no OCR) or .docx (paragraphs and tables); at most 8 MB, 1000 PDF pages, 1,000,000 characters",
    )


DEVICE_HELP = "auto (a CUDA GPU, else MPS, else the CPU), cpu, cuda, cuda:N or mps"
DTYPE_HELP = "auto (float32 on the CPU; bfloat16 on a GPU that has it, else float16), float32, bfloat16, float16"


def add_device_options(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--device and --dtype."""
    group.add_argument("--device", default="auto", help=DEVICE_HELP)
    group.add_argument("--dtype", default="auto", type=_dtype, metavar="|".join(DTYPE_CHOICES), help=DTYPE_HELP)


def _dtype(value: str) -> str:
    """``--dtype``: auto or a dtype name (aliases bf16, fp16, half, fp32 accepted), canonical."""
    if value.strip().lower() == "auto":
        return "auto"
    name = DTYPES.get(value.strip().lower().removeprefix("torch."))
    if name is None:
        raise argparse.ArgumentTypeError(f"unknown dtype {value!r}; use {', '.join(DTYPE_CHOICES)}")
    return name


def add_model_options(
    command: argparse.ArgumentParser, *, backend: bool = True, stash: bool = False, repeat_model: bool = False
) -> None:
    """--model, --device, --dtype, --trust-remote-code (--backend; --stash and --stash-budget where the
    command keeps a long capture): every command that loads a model. ``repeat_model``: --model may be
    given more than once (``args.model`` is then a list, or None)."""
    group = command.add_argument_group("model")
    spec_help = "catalog alias, hub id, folder, .gguf or tiny:<family>"
    if repeat_model:
        group.add_argument("--model", "-m", action="append", default=None, help=spec_help + " (repeatable)")
    else:
        group.add_argument("--model", "-m", default=None, help=spec_help)
    add_device_options(group)
    group.add_argument(
        "--trust-remote-code", action="store_true", help="let transformers run code shipped with a hub model"
    )
    if backend:
        group.add_argument("--backend", choices=BACKENDS, default="auto", help="attention capture (default auto)")
    if stash:
        group.add_argument(
            "--stash",
            choices=STASH_POLICIES,
            default="auto",
            help="where captured queries/keys are kept: on the model's device, offloaded to host memory, or "
            "auto (on the device up to --stash-budget, offloaded beyond it; default)",
        )
        group.add_argument(
            "--stash-budget",
            type=_size,
            default=None,
            metavar="SIZE",
            help="device memory the stash may use with --stash auto, e.g. 2GB or 512MiB "
            "(default: half of the device's free memory; attnscope doctor shows it)",
        )


def capture_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``capture`` that the model options set: backend, stash, stash_budget."""
    return {"backend": args.backend, "stash": args.stash, "stash_budget": args.stash_budget}


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def _size(value: str) -> int:
    """A byte count: ``1500000``, ``2GB``, ``512MiB``, ``1.5 GiB`` (decimal or binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size {value!r}; write bytes or e.g. 2GB, 512MiB")
    count = float(match.group(1)) * _UNITS[unit]
    if count < 1 or count > 2**62:
        raise argparse.ArgumentTypeError(f"size {value!r} out of range (1 byte to 4 EiB)")
    return int(count)


def add_output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print one JSON object (the HTTP API's answer)")
    command.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


def add_store_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--store", action="store_true", help="keep the answer as a run in the runs store (attnscope runs list)"
    )
    add_pii_option(command)


def add_pii_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--pii-policy",
        choices=("mask", "hash", "drop", "off"),
        default="mask",
        help="personal data (ID, phone and card numbers, e-mail and IP addresses, passports) in a stored run: "
        "mask it with its kind's label (default), hash it (salted), drop the run, or off (keep it)",
    )


def store_run(
    args: argparse.Namespace, kind: str, text: str, body: dict[str, Any], method: str | None = None
) -> dict[str, Any]:
    """``body`` kept as a run of ``kind`` with ``--store`` (its id added as ``run_id``, and said on stderr)."""
    if not getattr(args, "store", False):
        return body
    from attnscope.governance.privacy import PiiFoundError
    from attnscope.store.runs import RunsStore

    with RunsStore() as store:
        try:
            run = store.put(
                kind=kind, text=text, model=body.get("model") or {}, result=body, origin="cli", method=method,
                pii_policy=args.pii_policy,
            )  # fmt: skip
        except PiiFoundError as error:
            say(args)(f"not stored (--pii-policy drop): {error}")
            return body
    say(args)(f"stored as run {run.id} in {store.folder}")
    return {**body, "run_id": run.id}


def read_text(value: str | None, file: str | None = None) -> str:
    """The text a command reads: TEXT itself, standard input for ``-``, or the text of ``--file``'s
    document (:func:`attnscope.documents.document_text`, the same as the page's upload)."""
    from attnscope.capture.tokens import check_text

    if (value is None) == (file is None):
        raise InputError("give the text as TEXT or as --file PATH" + (", not both" if file is not None else ""))
    if file is not None:
        return check_text(read_document(file), allow_blank=False)
    assert value is not None
    if value == "-":  # one final line break, as `echo` and editors add, is not part of the text
        data = sys.stdin.buffer.read()
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
        return check_text(data, allow_blank=False)
    return check_text(value, allow_blank=False)


def read_document(path: str) -> str:
    """The text of the document at ``path`` (a .txt, .md, .pdf or .docx file), read within its size limit."""
    from attnscope.documents import MAX_DOCUMENT_BYTES, document_text

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)  # one byte more says "too large" without reading it all
    except OSError as error:
        raise InputError(f"cannot read --file {path}: {error.strerror or error}") from None
    return document_text(data, os.path.basename(path)).text


def say(args: argparse.Namespace) -> Any:
    """A function printing status lines on stderr unless ``--quiet``."""
    quiet = getattr(args, "quiet", False)

    def line(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return line


class ProgressBar:
    """``progress(done, total, stage)`` drawn as one line on an interactive stderr."""

    width = 30

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int, stage: str = "") -> None:
        filled = round(self.width * done / max(total, 1))
        label = stage or "working"
        print(f"\r{label} [{'█' * filled}{'·' * (self.width - filled)}] {done}/{total}\033[K", end="", file=sys.stderr)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)
            self.shown = False


def progress_bar(args: argparse.Namespace) -> ProgressBar | None:
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return None
    return ProgressBar()


def quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def model_spec(requested: str | None) -> str:
    """The spec to load: the one given, or the default catalog model (or an installed fallback, with a
    note on stderr). Blank specs are refused, not silently replaced."""
    from attnscope.models.catalog import resolve_default

    if requested is not None:
        if not requested.strip():
            raise InputError("--model is empty; name a model (attnscope models lists them)")
        return requested.strip()
    spec, note = resolve_default()
    if note:
        print(note, file=sys.stderr)
    return spec


def check_device(device: str) -> str:
    """``--device`` checked before a model loads: auto, cpu, cuda, cuda:N (a GPU this machine has) or mps."""
    from attnscope.models.devices import resolve_device

    name = device.strip().lower()
    try:
        resolve_device(name)
    except InputError as error:
        raise InputError(f"--{error}") from None  # "--device cuda: CUDA is not available on this machine"
    return name


def load(args: argparse.Namespace) -> LoadedModel:
    """The model the command's options name, loaded with status lines on stderr."""
    spec = model_spec(args.model)
    device = check_device(args.device)
    quiet_libraries()
    from attnscope.models import load_model

    line = say(args)
    line(f"loading {spec} …")
    return load_model(
        spec,
        device=device,
        dtype=args.dtype,
        trust_remote_code=getattr(args, "trust_remote_code", False),
        progress=line,
    )


def emit(data: dict[str, Any]) -> None:
    print(json.dumps(data, ensure_ascii=False))


def output(args: argparse.Namespace, body: dict[str, Any], as_text: Callable[[dict[str, Any]], str]) -> int:
    """Print ``body`` as the JSON contract with ``--json``, else as its text table; the exit status."""
    if args.json:
        emit(body)
    else:
        print(as_text(body))
    return 0


def run_job(args: argparse.Namespace, job: Any) -> Any:
    """``job(progress)`` with a progress bar on an interactive terminal."""
    bar = progress_bar(args)
    try:
        return job(bar)
    finally:
        if bar is not None:
            bar.close()
