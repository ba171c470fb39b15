"""A trace's attention as the inputs of bertviz and CircuitsVis, and the files they render.

- :func:`to_bertviz`: what ``bertviz.head_view(attention, tokens)`` / ``model_view`` take — one
  ``(1, heads, query, key)`` float32 tensor per layer and the token strings. The layers are read
  from the trace lazily, one layer when bertviz asks for it (:class:`LayerAttention`), so a
  ``qk`` trace never holds the whole model's maps at once outside the one bertviz builds.
  :func:`bertviz_kwargs` gives every keyword bertviz needs, encoder-decoders' included.
- :func:`to_circuitsvis`: what ``circuitsvis.attention.attention_heads(attention, tokens)`` and
  ``attention_patterns(tokens, attention)`` take — one layer, ``(heads, query, key)``.

Token strings: attnscope's display text of each token (the characters of the original text it
covers, a leading space included; a special token's own string such as ``<bos>``), which is what
bertviz's ``prettify_tokens`` makes of raw ``Ġ``/``▁`` pieces. A byte piece that continues a
character split over several tokens covers no character of its own; it is written
:data:`CONTINUATION` so that no label is blank. Values are raw softmax probabilities.

The writers (:func:`bertviz_html`, :func:`circuitsvis_html`, :func:`save_tensors`) make files that
leave the process: personal data in the token strings is masked by ``pii_policy`` first (as
stored runs are). bertviz's HTML loads require.js, d3 and jQuery from cdnjs.cloudflare.com, so it
needs a network to display; CircuitsVis' HTML inlines its bundle and works offline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError, TooLongError
from attnscope.home import write_atomic

if TYPE_CHECKING:
    from attnscope.capture.tokens import Token
    from attnscope.capture.trace import Trace

CONTINUATION = "…"  # the label of a byte piece that continues the character before it
MAX_BERTVIZ_VALUES = 64 * 1024 * 1024  # float32 values of the whole tuple (256 MiB)
MAX_HTML_VALUES = 4 * 1024 * 1024  # values written as JSON text into one HTML file (≈ 40 MB)
MAX_CIRCUITSVIS_VALUES = 4 * 1024 * 1024


def token_labels(tokens: Sequence[Token] | Sequence[dict[str, Any]]) -> list[str]:
    """The label of each token (see the module docstring)."""
    labels = []
    for token in tokens:
        text = token["text"] if isinstance(token, dict) else token.text
        labels.append(text if text else CONTINUATION)
    return labels


def _masked_labels(trace: Trace, tokens: Sequence[Token], pii_policy: str) -> list[str]:
    """Labels of ``tokens`` (spans into ``trace.text``) with personal data masked by ``pii_policy``."""
    from attnscope.governance.masking import check_policy
    from attnscope.governance.privacy import find_pii, mask_tokens

    check_policy(pii_policy)
    dicts = [t.to_dict() for t in tokens]
    if pii_policy != "off":
        found = find_pii(trace.text)
        if found:  # "drop" raises PiiFoundError: nothing is written
            dicts = mask_tokens(dicts, found, pii_policy, text=trace.text)  # type: ignore[arg-type]
    return token_labels(dicts)


class LayerAttention(Sequence[Any]):
    """A tuple-like sequence of one ``(1, heads, query, key)`` float32 torch tensor per layer of a
    stack, each read from the trace when it is indexed (not kept: bertviz reads each layer once)."""

    def __init__(self, trace: Trace, stack: str, heads: list[int] | None) -> None:
        self.trace, self.stack, self.heads = trace, stack, heads
        self._count = trace.num_layers(stack)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        import torch

        layer = int(index)
        if not -self._count <= layer < self._count:
            raise IndexError(f"layer {layer} out of range for {self._count} layers")
        heads = self.heads if self.heads is not None else "all"
        weights = self.trace.attention(layer % self._count, heads, None, stack=self.stack)  # (heads, query, key)
        return torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32))[None]  # (1, heads, query, key)


def _selection(trace: Trace, stack: str, layers: Any, heads: Any) -> tuple[list[int], list[int]]:
    count = trace.num_layers(stack)
    chosen = list(range(count)) if layers is None else [trace.resolve_layer(layer, stack) for layer in layers]
    if not chosen:
        raise InputError("no layers chosen")
    captured = set(trace.captured_layers(stack))
    missing = [layer for layer in chosen if layer not in captured]
    if missing:
        raise InputError(f"layers {missing} were not captured in this trace (captured: {sorted(captured)})")
    head_list = trace.resolve_heads("all" if heads is None else heads, stack)
    return chosen, head_list


def _check_size(trace: Trace, stacks: Sequence[str], layers: int, heads: int, limit: int, what: str) -> None:
    values = 0
    for stack in stacks:
        rows, keys = len(trace.query_tokens(stack)), len(trace.key_tokens(stack))
        values += layers * heads * rows * keys
    if values > limit:
        raise TooLongError(
            f"{what} would hold {values:,} attention values ({layers} layers × {heads} heads × tokens²); "
            f"the limit is {limit:,}: choose fewer layers or heads (--layers, --heads) or a shorter text"
        )


def to_bertviz(
    trace: Trace, layers: Sequence[int] | None = None, heads: Any = None, *, stack: str | None = None
) -> tuple[LayerAttention, list[str]]:
    """``(attention, tokens)`` for ``bertviz.head_view(attention, tokens, include_layers=layers)``.

    Args:
        trace: a trace (``full`` or ``qk``).
        layers: the layers bertviz will read (None: all); checked now, read when indexed.
        heads: a head selector (an index, a list, ``"1,3"``; None: all heads).
        stack: ``decoder``/``encoder`` (default: the model's main stack); an encoder-decoder's
            three stacks at once come from :func:`bertviz_kwargs`.

    Returns:
        A sequence of ``(1, heads, query, key)`` float32 tensors, one per layer of the stack
        (index = layer), and the token labels of the stack's queries (= its keys).
    """
    name = trace.stack_name(stack)
    if name == "cross":
        raise InputError("the cross stack has two token lists: use bertviz_kwargs(trace) for encoder-decoders")
    chosen, head_list = _selection(trace, name, layers, heads)
    _check_size(trace, [name], len(chosen), len(head_list), MAX_BERTVIZ_VALUES, "the bertviz tensors")
    return LayerAttention(trace, name, head_list), token_labels(trace.query_tokens(name))


def bertviz_kwargs(
    trace: Trace,
    layers: Sequence[int] | None = None,
    heads: Any = None,
    *,
    labels: dict[str, list[str]] | None = None,
    limit: int = MAX_BERTVIZ_VALUES,
) -> dict[str, Any]:
    """The keyword arguments of ``bertviz.head_view`` / ``model_view`` for ``trace``: ``attention``
    and ``tokens`` for one self-attention stack; ``encoder_attention``, ``decoder_attention``,
    ``cross_attention``, ``encoder_tokens`` and ``decoder_tokens`` for an encoder-decoder; and
    ``include_layers``. ``labels`` replaces the token labels (``{"encoder": [...], "decoder": [...]}``)."""
    stacks = trace.stacks()
    seq2seq = "cross" in stacks
    main = trace.default_stack if not seq2seq else "encoder"
    chosen, head_list = _selection(trace, main, layers, heads)
    used = [s for s in ("encoder", "decoder", "cross") if s in stacks] if seq2seq else [main]
    _check_size(trace, used, len(chosen), len(head_list), limit, "bertviz's input")
    given = labels or {}
    if not seq2seq:
        tokens = given.get(main) or token_labels(trace.query_tokens(main))
        return {"attention": LayerAttention(trace, main, head_list), "tokens": tokens, "include_layers": chosen}
    for stack in used[1:]:
        _selection(trace, stack, chosen, heads)  # the same layers and heads exist there too
    return {
        **{f"{s}_attention": LayerAttention(trace, s, head_list) for s in used},
        "encoder_tokens": given.get("encoder") or token_labels(trace.query_tokens("encoder")),
        "decoder_tokens": given.get("decoder") or token_labels(trace.query_tokens("decoder")),
        "include_layers": chosen,
    }


def to_circuitsvis(
    trace: Trace, layer: int, *, heads: Any = None, stack: str | None = None
) -> tuple[list[str], np.ndarray]:
    """``(tokens, attention)`` for ``circuitsvis.attention.attention_patterns(tokens, attention)``
    (and ``attention_heads(attention, tokens)``): one layer's ``(heads, query, key)`` float32 weights
    of a self-attention stack and the labels of its tokens."""
    name = trace.stack_name(stack)
    if name == "cross":
        raise InputError("CircuitsVis draws self-attention (one token list): choose the encoder or decoder stack")
    index = trace.resolve_layer(layer, name)
    head_list = trace.resolve_heads("all" if heads is None else heads, name)
    _check_size(trace, [name], 1, len(head_list), MAX_CIRCUITSVIS_VALUES, "CircuitsVis' input")
    weights = np.asarray(trace.attention(index, head_list, None, stack=name), dtype=np.float32)  # (heads, q, k)
    return token_labels(trace.query_tokens(name)), weights


# ---- files ----------------------------------------------------------------------------------------------
def _labels_for_files(trace: Trace, pii_policy: str) -> dict[str, list[str]]:
    """Masked token labels of each self-attention stack (the cross stack's are the other two's)."""
    return {s: _masked_labels(trace, trace.query_tokens(s), pii_policy) for s in trace.stacks() if s != "cross"}


def bertviz_html(
    trace: Trace,
    *,
    view: str = "head",
    layers: Sequence[int] | None = None,
    heads: Any = None,
    pii_policy: str = "mask",
    max_values: int = MAX_HTML_VALUES,
) -> str:
    """The HTML bertviz itself renders (``head_view`` or ``model_view``, ``html_action="return"``)
    from this trace, with a provenance comment; it loads its scripts from a CDN (module docstring).
    More than ``max_values`` attention values (written as JSON text: ~10 bytes each) are refused."""
    try:
        from bertviz import head_view, model_view
    except ImportError:
        raise InputError("bertviz is not installed: pip install 'attnscope[interop]'") from None
    if view not in ("head", "model"):
        raise InputError(f"bertviz view must be head or model, not {view!r}")
    labels = _labels_for_files(trace, pii_policy)
    kwargs = bertviz_kwargs(trace, layers, heads, labels=labels, limit=max_values)
    kwargs.update(prettify_tokens=False, html_action="return")  # labels are display text already
    draw = model_view if view == "model" else head_view  # model_view shows every head the tensors hold
    html = draw(**kwargs).data
    return _provenance_comment(trace, f"bertviz {view}_view") + html


def circuitsvis_html(trace: Trace, layer: int, *, heads: Any = None, pii_policy: str = "mask") -> str:
    """CircuitsVis' ``attention_heads`` of one layer as a standalone, offline HTML page (its bundle
    inline: about 1.3 MB), with a provenance comment."""
    try:
        from circuitsvis.attention import attention_heads
    except ImportError:
        raise InputError("circuitsvis is not installed: pip install 'attnscope[interop]'") from None
    name = trace.default_stack if "cross" not in trace.stacks() else "encoder"
    _, weights = to_circuitsvis(trace, layer, heads=heads, stack=name)
    index = trace.resolve_layer(layer, name)
    head_list = trace.resolve_heads("all" if heads is None else heads, name)
    tokens = _masked_labels(trace, trace.query_tokens(name), pii_policy)
    rendered = attention_heads(
        weights,
        tokens,
        attention_head_names=[f"L{index}H{h}" for h in head_list],
        mask_upper_tri=name == "decoder",
    )
    body = rendered.local_src  # the inline bundle (the CDN variant would need a network)
    title = f"attnscope · layer {index} · {trace.model.name}"
    return (
        f"<!doctype html>\n{_provenance_comment(trace, 'CircuitsVis attention_heads')}"
        f'<html><head><meta charset="utf-8"><title>{_escape(title)}</title></head><body>\n{body}\n</body></html>\n'
    )


def save_tensors(
    trace: Trace, out: Path, *, layers: Sequence[int] | None = None, heads: Any = None, pii_policy: str = "mask"
) -> Path:
    """bertviz's input as one ``.safetensors`` file: ``<stack>.layer<N>`` tensors ``(1, heads,
    query, key)`` float32; the metadata holds the token labels (JSON), the layers, the heads and
    the provenance record. ``attnscope.render.interop.load_tensors`` (or safetensors' own
    ``safe_open``) reads it back."""
    from safetensors.numpy import save

    labels = _labels_for_files(trace, pii_policy)
    kwargs = bertviz_kwargs(trace, layers, heads, labels=labels)
    tensors: dict[str, np.ndarray] = {}
    for key, value in kwargs.items():
        if isinstance(value, LayerAttention):
            stack = key.removesuffix("_attention")
            stack = "self" if stack == "attention" else stack
            for layer in kwargs["include_layers"]:
                tensors[f"{stack}.layer{layer}"] = value[layer].numpy()
    metadata = {
        "format": "attnscope-bertviz",
        "tokens": json.dumps({k: v for k, v in kwargs.items() if k.endswith("tokens")}, ensure_ascii=False),
        "layers": json.dumps(kwargs["include_layers"]),
        "heads": json.dumps(trace.resolve_heads("all" if heads is None else heads, trace.stacks()[0])),
        "provenance": json.dumps(trace.provenance, ensure_ascii=False, default=str),
    }
    write_atomic(out, save(tensors, metadata=metadata))
    return out


def load_tensors(path: Path) -> dict[str, Any]:
    """A file of :func:`save_tensors` as bertviz's keyword arguments (torch tensors)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != "attnscope-bertviz":
            raise InputError(f"{path} is not a bertviz tensors file written by attnscope")
        layers = json.loads(metadata["layers"])
        result: dict[str, Any] = json.loads(metadata["tokens"])
        names = list(handle.keys())  # a safetensors handle, not a dict
        stacks = sorted({key.split(".")[0] for key in names})
        for stack in stacks:
            loaded = {int(k.split(".layer")[1]): handle.get_tensor(k) for k in names if k.startswith(stack + ".")}
            width = max(loaded) + 1
            shape = next(iter(loaded.values())).shape
            filled = tuple(loaded.get(i, torch.zeros(shape)) for i in range(width))  # bertviz indexes by layer
            result["attention" if stack == "self" else f"{stack}_attention"] = filled
    result["include_layers"] = layers
    return result


def _provenance_comment(trace: Trace, what: str) -> str:
    record = {key: trace.provenance.get(key) for key in ("record_id", "model_spec", "model_name", "attnscope_version",
                                                         "transformers_version", "text_sha256", "backend")}  # fmt: skip
    record["model_fingerprint"] = trace.model.fingerprint
    data = json.dumps(record, default=str).replace("--", "-\\u002d")  # ASCII JSON; no "--" inside a comment
    return f"<!-- {what} from attnscope; provenance: {data} -->\n"


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def write_text(out: Path, text: str) -> Path:
    """``text`` (UTF-8) to ``out`` atomically."""
    write_atomic(out, text.encode("utf-8"))
    return out
