"""inseq's saved attributions read strictly, without inseq's own loader.

``FeatureAttributionOutput.save(path)`` writes JSON whose objects name their Python class
(``{"__instance_type__": [module, class], "attributes": {...}}``) and whose score tensors are
base64-encoded safetensors. inseq's ``load`` imports and instantiates whatever class a file names;
this reader accepts only inseq's attribution classes and token type, decodes tensors with
safetensors (no pickle), and checks every size and shape before anything is used: a file that is
not inseq's, damaged, too large or inconsistent is refused with a one-line :class:`InputError`.
Files written with ``compress=True`` (gzip) and with ``use_primitives=True`` (plain lists) are read too.

Token pieces and the text: inseq keeps the tokenizer's raw pieces (``Ġcapital``, ``▁capital``,
``<0xE4>``, byte-level ``ä¸Ń``) or, after ``decode_tokens``, decoded strings. :func:`place_tokens`
turns each piece back into its UTF-8 bytes (byte-level BPE, SentencePiece with byte fallback,
WordPiece ``##``, or plain text) and finds it in the text, giving attnscope's character spans (a
character split over byte pieces belongs to its first piece; later pieces get an empty span at
its end). A piece that is not in the text and looks like a special token (``<bos>``,
``<|endoftext|>``, ``[CLS]``) is a special token without a span.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.errors import InputError

MAX_FILE_BYTES = 256 * 1024 * 1024  # on disk, and once decompressed
MAX_VALUES = 64 * 1024 * 1024  # score values in one file
MAX_SEQUENCES = 10_000
_MODULE = "inseq.data.attribution"
SEQUENCE_CLASSES = {
    "FeatureAttributionSequenceOutput",
    "GranularFeatureAttributionSequenceOutput",
    "CoarseFeatureAttributionSequenceOutput",
    "MultiDimensionalFeatureAttributionSequenceOutput",
}
_SPECIAL = re.compile(r"^(<\|[^|]{1,40}\|>|<[/A-Za-z_][^<>\s]{0,30}>|\[[A-Z_]{2,12}\]|</s>|<s>)$")
_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@dataclass
class InseqSequence:
    """One sequence of an inseq attribution (arrays as saved: no aggregation)."""

    cls: str  # inseq's class name (Granular…: gradient scores per embedding dimension)
    source: list[tuple[str, int]]  # (piece, id)
    target: list[tuple[str, int]]
    source_attributions: np.ndarray | None  # (source, steps[, extra dims]) or None (decoder-only)
    target_attributions: np.ndarray | None  # (target, steps[, extra dims])
    step_scores: dict[str, np.ndarray]  # name -> (steps,)
    attr_pos_start: int
    attr_pos_end: int

    @property
    def steps(self) -> int:
        return self.attr_pos_end - self.attr_pos_start


@dataclass
class InseqFile:
    sequences: list[InseqSequence]
    info: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None  # of the file's bytes (None: an object in memory)


# ---- reading ---------------------------------------------------------------------------------------------
def read_inseq(path: str | Path) -> InseqFile:
    """A file written by ``FeatureAttributionOutput.save`` (see the module docstring)."""
    import hashlib

    where = Path(path)
    try:
        size = where.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{where} is {size:,} bytes; an inseq file is read up to {MAX_FILE_BYTES:,}")
        raw = where.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no file {where}") from None
    except IsADirectoryError:
        raise InputError(f"{where} is a folder, not an inseq JSON file") from None
    except OSError as error:
        raise InputError(f"cannot read {where}: {error.strerror or error}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if raw[:2] == b"\x1f\x8b":  # saved with compress=True
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unpacked:
                raw = unpacked.read(MAX_FILE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(f"{where} is a damaged gzip file ({error})") from None
        if len(raw) > MAX_FILE_BYTES:
            raise InputError(f"{where} unpacks to more than {MAX_FILE_BYTES:,} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{where} is not an inseq attribution file (not JSON: {str(error)[:80]})") from None
    parsed = parse_inseq(data, str(where))
    parsed.sha256 = digest
    return parsed


def parse_inseq(data: Any, where: str = "the file") -> InseqFile:
    """The JSON of a saved ``FeatureAttributionOutput`` (already parsed), checked."""
    body = _instance(data, {"FeatureAttributionOutput"}, where, "its top level")
    sequences = body.get("sequence_attributions")
    if not isinstance(sequences, list) or not sequences:
        raise InputError(f"{where} is not an inseq attribution file (no sequence_attributions)")
    if len(sequences) > MAX_SEQUENCES:
        raise InputError(f"{where} holds {len(sequences):,} sequences; at most {MAX_SEQUENCES:,} are read")
    info = body.get("info") or {}
    if not isinstance(info, dict):
        raise InputError(f"{where}: info is not an object")
    budget = [MAX_VALUES]
    read = [_sequence(one, f"{where}: sequence {i}", budget) for i, one in enumerate(sequences)]
    return InseqFile(read, info)


def _instance(value: Any, classes: set[str], where: str, what: str) -> dict[str, Any]:
    """The attributes of an encoded instance of one of ``classes`` (or a plain object: primitives)."""
    if not isinstance(value, dict):
        raise InputError(f"{where} is not an inseq attribution file ({what} is not an object)")
    kind = value.get("__instance_type__")
    if kind is None:
        return value  # use_primitives=True: the attributes themselves
    if not (isinstance(kind, list) and len(kind) == 2 and kind[0] == _MODULE and kind[1] in classes):
        raise InputError(f"{where}: {what} is of class {kind!r}, not one of inseq's attribution classes")
    attributes = value.get("attributes")
    if not isinstance(attributes, dict):
        raise InputError(f"{where}: {what} has no attributes")
    return attributes


def _sequence(value: Any, where: str, budget: list[int]) -> InseqSequence:
    kind = value.get("__instance_type__") if isinstance(value, dict) else None
    body = _instance(value, SEQUENCE_CLASSES, where, "a sequence")
    cls = kind[1] if isinstance(kind, list) else "FeatureAttributionSequenceOutput"
    source, target = _tokens(body.get("source"), where, "source"), _tokens(body.get("target"), where, "target")
    start, end = body.get("attr_pos_start", 0), body.get("attr_pos_end")
    end = len(target) if end is None else end
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(target)):
        raise InputError(f"{where}: attr_pos_start {start!r} and attr_pos_end {end!r} do not fit {len(target)} tokens")
    arrays = {
        name: _array(body.get(name), f"{where}: {name}", budget)
        for name in ("source_attributions", "target_attributions")
    }
    steps = end - start
    for name, rows in (("source_attributions", len(source)), ("target_attributions", len(target))):
        array = arrays[name]
        if array is not None and (array.ndim < 2 or array.shape[0] != rows or array.shape[1] != steps):
            raise InputError(
                f"{where}: {name} has shape {tuple(array.shape)}; expected ({rows}, {steps}, …) "
                f"for {rows} tokens and {steps} attributed steps"
            )
    if arrays["source_attributions"] is None and arrays["target_attributions"] is None:
        raise InputError(f"{where} holds no attribution scores")
    scores = body.get("step_scores") or {}
    if not isinstance(scores, dict):
        raise InputError(f"{where}: step_scores is not an object")
    step_scores = {}
    for name, raw in scores.items():
        array = _array(raw, f"{where}: step score {name!r}", budget)
        if array is None or array.shape != (steps,):
            raise InputError(
                f"{where}: step score {name!r} has shape {None if array is None else array.shape}, not ({steps},)"
            )
        step_scores[str(name)] = array
    return InseqSequence(cls, source, target, arrays["source_attributions"], arrays["target_attributions"],
                         step_scores, start, end)  # fmt: skip


def _tokens(value: Any, where: str, what: str) -> list[tuple[str, int]]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: {what} is not a list of tokens")
    tokens = []
    for index, item in enumerate(value):
        if isinstance(item, dict) and "__instance_type__" in item:
            if item["__instance_type__"] != ["inseq.utils.typing", "TokenWithId"]:
                raise InputError(f"{where}: {what} token {index} is not inseq's TokenWithId")
            item = item.get("attributes")
        if not (isinstance(item, dict) and isinstance(item.get("token"), str) and isinstance(item.get("id"), int)):
            raise InputError(f"{where}: {what} token {index} has no text and id")
        tokens.append((item["token"], int(item["id"])))
    return tokens


def _array(value: Any, where: str, budget: list[int]) -> np.ndarray | None:
    """A score array: base64 safetensors (inseq's save), ``{"__ndarray__": ...}`` or nested lists."""
    if value is None:
        return None
    if isinstance(value, str):
        array = _safetensors(value, where)
    elif isinstance(value, dict) and "__ndarray__" in value:
        array = _ndarray(value, where)
    elif isinstance(value, list):
        try:
            array = np.asarray(value, dtype=np.float64)  # ragged lists fail here
        except (ValueError, TypeError):
            raise InputError(f"{where} is not a rectangular array of numbers") from None
    else:
        raise InputError(f"{where} is not an array")
    budget[0] -= array.size
    if budget[0] < 0:
        raise InputError(f"{where}: the file holds more than {MAX_VALUES:,} scores")
    return np.asarray(array, dtype=np.float64)


def _safetensors(value: str, where: str) -> np.ndarray:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        raw = base64.b64decode(value, validate=True)
        tensors = load(raw)
    except (binascii.Error, ValueError, SafetensorError) as error:
        raise InputError(f"{where} is not a base64 safetensors tensor ({str(error)[:80]})") from None
    if set(tensors) != {"attribution"}:
        raise InputError(f"{where}: the safetensors blob holds {sorted(tensors)}, not 'attribution'")
    return tensors["attribution"].float().numpy()


def _ndarray(value: dict[str, Any], where: str) -> np.ndarray:
    dtype, shape, data = value.get("dtype"), value.get("shape"), value["__ndarray__"]
    if dtype not in ("float16", "float32", "float64") or not isinstance(shape, list):
        raise InputError(f"{where}: an array of dtype {dtype!r} is not a score array")
    try:
        if isinstance(data, str):
            header, _, payload = data.partition(":")
            raw = base64.b64decode(payload, validate=True)
            if header == "b64.gz":
                raw = gzip.decompress(raw)
            elif header != "b64":
                raise ValueError(f"unknown header {header!r}")
            return np.frombuffer(raw, dtype=dtype).reshape(shape)
        return np.asarray(data, dtype=dtype).reshape(shape)
    except (ValueError, TypeError, OSError, EOFError, zlib.error, binascii.Error) as error:
        raise InputError(f"{where} is a damaged array ({str(error)[:80]})") from None


# ---- from inseq's objects ----------------------------------------------------------------------------------
def from_object(output: Any) -> InseqFile:
    """An in-memory ``inseq.FeatureAttributionOutput`` in the same checked form as a file."""

    def plain(value: Any) -> Any:
        if value is None:
            return None
        if hasattr(value, "detach"):
            return value.detach().float().cpu().numpy().tolist()
        return value

    sequences = []
    for one in getattr(output, "sequence_attributions", None) or []:
        sequences.append({
            "__instance_type__": [_MODULE, type(one).__name__],
            "attributes": {
                "source": [{"token": t.token, "id": int(t.id)} for t in one.source],
                "target": [{"token": t.token, "id": int(t.id)} for t in one.target],
                "source_attributions": plain(one.source_attributions),
                "target_attributions": plain(one.target_attributions),
                "step_scores": {k: plain(v) for k, v in (one.step_scores or {}).items()},
                "attr_pos_start": one.attr_pos_start,
                "attr_pos_end": one.attr_pos_end,
            },
        })  # fmt: skip
    info = json.loads(json.dumps(getattr(output, "info", {}) or {}, default=str))
    return parse_inseq({"sequence_attributions": sequences, "info": info}, "the inseq output")


# ---- token pieces -> character spans ----------------------------------------------------------------------
@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes (``Ġ`` = space), reversed."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    codes = printable[:]
    for byte in range(256):
        if byte not in printable:
            codes.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for c, b in zip(chars, codes, strict=True)}


def piece_bytes(piece: str, convention: str) -> bytes:
    """The UTF-8 bytes a token piece stands for under ``convention`` (``bytelevel`` or ``text``)."""
    byte = _BYTE.match(piece)
    if byte:
        return bytes([int(byte.group(1), 16)])
    if convention == "bytelevel":
        table = _byte_decoder()
        return bytes(table[c] for c in piece)
    if piece.startswith("##"):
        piece = piece[2:]
    return piece.replace("▁", " ").replace("Ġ", " ").replace("</w>", "").encode("utf-8")


def looks_special(piece: str) -> bool:
    return bool(_SPECIAL.match(piece))


def place_tokens(pieces: list[str], text: str) -> list[tuple[int, int] | None] | None:
    """Character spans of ``pieces`` in ``text`` (None for a special token), or None when they do not
    spell the text under any convention (see the module docstring)."""
    table = _byte_decoder()
    conventions = ["text"]
    if all(looks_special(p) or _BYTE.match(p) or all(c in table for c in p) for p in pieces):
        conventions.insert(0, "bytelevel")
    for convention in conventions:
        spans = _align([None if looks_special(p) else piece_bytes(p, convention) for p in pieces], pieces, text)
        if spans is not None:
            return spans
    return None


def _align(wanted: list[bytes | None], pieces: list[str], text: str) -> list[tuple[int, int] | None] | None:
    data = text.encode("utf-8")
    starts = np.concatenate([[0], np.cumsum([(b & 0xC0) != 0x80 for b in data])])  # chars starting before byte i
    spans: list[tuple[int, int] | None] = []
    at = 0
    for piece, chunk in zip(pieces, wanted, strict=True):
        if chunk is None:  # special-looking: in the text when written there (a chat marker), else no span
            literal = piece.encode("utf-8")
            if data.startswith(literal, at):
                spans.append((int(starts[at]), int(starts[at + len(literal)])))
                at += len(literal)
            else:
                spans.append(None)
            continue
        found = _match(data, chunk, at)
        if found is None:
            return None
        begin, end = found
        spans.append((int(starts[begin]), int(starts[end])))
        at = end
    return spans


def _match(data: bytes, chunk: bytes, at: int) -> tuple[int, int] | None:
    """Where ``chunk`` continues ``data`` at ``at``: there, after whitespace the pieces leave out, or
    without the leading space a SentencePiece word piece adds."""
    if data.startswith(chunk, at):
        return at, at + len(chunk)
    gap = at
    while gap < len(data) and data[gap : gap + 1].isspace():
        gap += 1
    if gap > at and chunk and data.startswith(chunk, gap):
        return gap, gap + len(chunk)
    if chunk[:1] == b" " and data.startswith(chunk[1:], at):
        return at, at + len(chunk) - 1
    return None


def piece_text(piece: str) -> str:
    """A piece's text for display when it has no place in a text (bytes decoded, broken ones replaced)."""
    if looks_special(piece):
        return piece
    table = _byte_decoder()
    convention = "bytelevel" if all(c in table for c in piece) and not piece.isascii() else "text"
    return piece_bytes(piece, convention).decode("utf-8", "replace")
