"""``Trace``: the result of one capture — tokens, predictions and lazily computed attention — and
``GenerationTrace``, a trace over prompt + generated tokens with the generation's steps.

Step ``s`` of a generation produced the token at position ``p = prompt_length + s``; what it attended
to is the row of query ``p - 1`` (the position whose prediction it was) over keys ``0 … p - 1``, and
its candidates are the predictions after ``p - 1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.capture.predictions import Candidate, Predictions
from attnscope.capture.reads import AttentionSource
from attnscope.capture.selection import (
    HeadSelector,
    RowSelector,
    Selection,
    default_stack,
    parse_head,
    parse_layers,
    resolve_heads,
    resolve_layers,
    resolve_rows,
    select,
)
from attnscope.capture.tokens import Part, Token
from attnscope.errors import InputError, OutOfRangeError
from attnscope.models.info import ModelInfo


@dataclass
class Trace:
    """One forward pass over a text, ready to be looked at.

    Attention is never materialised for the whole model: :meth:`attention` asks the source for the
    (layer, heads, rows) requested. Stacks: ``decoder`` for causal LMs, ``encoder`` for encoders;
    encoder-decoders have ``encoder``, ``decoder`` and ``cross`` (decoder queries, encoder keys).
    """

    text: str
    tokens: list[Token]  # the input (encoder input for seq2seq)
    model: ModelInfo
    source: AttentionSource
    backend: str  # "full" | "qk"
    predictions: Predictions | None
    provenance: dict[str, Any]
    parts: list[Part] = field(default_factory=list)
    target_tokens: list[Token] | None = None  # seq2seq: the decoder input (start token + target)
    target_text: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):  # hand-made traces may describe their model as a plain dict
            self.model = ModelInfo.from_dict(self.model)

    # --- structure -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def default_stack(self) -> str:
        return default_stack(self.kind)

    def stacks(self) -> list[str]:
        return self.source.stacks()

    def stack_name(self, stack: str | None = None) -> str:
        """``stack`` checked against this trace's stacks (None: the model's default stack)."""
        name = stack or self.default_stack
        if name not in self.source.stacks():
            raise OutOfRangeError(f"no attention stack {name!r} in this trace; stacks: {self.source.stacks()}")
        return name

    def num_layers(self, stack: str | None = None) -> int:
        name = self.stack_name(stack)
        declared = self.model.stacks[name].layers if name in self.model.stacks else None
        return int(declared) if declared else max(self.source.layers(name)) + 1

    def captured_layers(self, stack: str | None = None) -> list[int]:
        return self.source.layers(self.stack_name(stack))

    def num_heads(self, stack: str | None = None) -> int:
        return self.source.num_heads(self.stack_name(stack))

    def query_tokens(self, stack: str | None = None) -> list[Token]:
        name = self.stack_name(stack)
        return self.tokens if name == "encoder" or self.target_tokens is None else self.target_tokens

    def key_tokens(self, stack: str | None = None) -> list[Token]:
        name = self.stack_name(stack)
        return self.tokens if name in ("encoder", "cross") or self.target_tokens is None else self.target_tokens

    @property
    def token_ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    # --- attention (selections resolved by attnscope.capture.selection) -----------------------
    def resolve_layer(self, layer: int, stack: str | None = None) -> int:
        """One layer index (negative from the end); a range, a list or ``"all"`` is refused here."""
        name = self.stack_name(stack)
        if isinstance(layer, str | list | tuple):
            spec = parse_layers(layer)
            if not isinstance(spec, int):
                raise InputError(f"one layer is needed here, not {layer!r} (ranges and lists are for averaging)")
            layer = spec
        return resolve_layers(self.num_layers(name), self.captured_layers(name), layer, name)[0]

    def resolve_heads(self, head: HeadSelector, stack: str | None = None) -> list[int]:
        return resolve_heads(self.num_heads(stack), head)

    def resolve_rows(self, rows: RowSelector, stack: str | None = None) -> np.ndarray:
        return resolve_rows(self.source.shape(self.stack_name(stack))[0], rows)

    def select(
        self, *, layer: object = -1, head: object = "mean", query: object = -1, stack: str | None = None
    ) -> Selection:
        """A resolved view (stack, layers, heads, query) with its label; see :mod:`.selection`."""
        return select(self, layer=layer, head=head, query=query, stack=stack)

    def attention(
        self, layer: int, head: HeadSelector = None, rows: RowSelector = None, *, stack: str | None = None
    ) -> np.ndarray:
        """Attention weights (raw softmax probabilities).

        Args:
            layer: layer index; negative counts from the end.
            head: an index, ``"mean"`` or ``"max"`` over heads, a list of indexes, or None (or
                ``"all"``) for every head; text forms such as ``"1,3"`` are accepted.
            rows: query positions (int, slice or list; negative allowed); None for all.
            stack: ``decoder``/``encoder``/``cross``; default: the model's main stack.

        Returns:
            ``(query, key)`` for one head, mean or max; ``(heads, query, key)`` for None or a list.
        """
        name = self.stack_name(stack)
        index = self.resolve_layer(layer, name)
        head = parse_head(head)
        heads = self.resolve_heads(head, name)
        query_rows = self.resolve_rows(rows, name)
        if head == "mean" or head == "max":  # combined on the source's device, chunk by chunk
            return self.source.rows(name, index, heads, query_rows, reduce="mean" if head == "mean" else "max")
        weights = self.source.rows(name, index, heads, query_rows)  # (heads, rows, key)
        return weights[0] if isinstance(head, int | np.integer) else weights

    def head_statistics(
        self, layer: int, query_rows: np.ndarray, *, step: int, threshold: float, stack: str | None = None
    ) -> dict[str, Any]:
        """Per-head sums of row statistics of one layer over ``query_rows``, computed on the
        source's device in chunks of ``step`` rows (see :mod:`.head_stats`)."""
        from attnscope.capture.head_stats import layer_statistics

        name = self.stack_name(stack)
        heads = list(range(self.num_heads(name)))
        return layer_statistics(self.source, name, self.resolve_layer(layer, name), heads, query_rows, step, threshold)

    # --- predictions -----------------------------------------------------------------------
    def top_predictions(self, position: int = -1, k: int | None = None) -> list[Candidate]:
        if self.predictions is None:
            raise OutOfRangeError(f"this {self.kind} model has no next-token head; there are no predictions")
        return self.predictions.top(position, k)

    # --- display (the one upward import: render/notebook, lazily, as pandas' DataFrame.plot) -----
    def show(self, **options: Any) -> Any:
        """The page's views of this trace, offline: displayed in a notebook, else opened in the
        browser from a standalone file (:func:`attnscope.render.notebook.show`; ``language``, ...)."""
        from attnscope.render.notebook import show

        return show(self, **options)

    def _repr_html_(self) -> str:
        """Jupyter and VS Code display a trace as the page (:func:`attnscope.render.notebook.notebook_html`)."""
        from attnscope.render.notebook import notebook_html

        return notebook_html(self)

    # --- persistence -----------------------------------------------------------------------
    def generation_meta(self) -> dict[str, Any] | None:
        """What a trace file keeps of a generation (None: this trace is not one)."""
        return None

    def save(self, path: str | Path) -> Path:
        """Write this trace to one ``.safetensors`` file (arrays) with JSON metadata in its header."""
        from attnscope.capture.trace_file import save_trace

        return save_trace(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`save` (a :class:`GenerationTrace` when it holds a
        generation); raises ``TraceFormatError`` for anything else."""
        from attnscope.capture.trace_file import read_trace

        data = read_trace(Path(path))
        generation = data.pop("generation", None)
        if generation is None:
            return cls(**data)
        steps = [Step.from_dict(step) for step in generation.pop("steps")]
        tree = [[BeamNode.from_dict(node) for node in level] for level in generation.pop("beam_tree", [])]
        # a generation loads as one, whichever class is asked
        return GenerationTrace(**data, **generation, steps=steps, beam_tree=tree)


STOP_REASONS = ("eos", "stop", "length")


@dataclass(frozen=True)
class Step:
    step: int
    position: int  # index of the generated token in the trace's tokens
    token_id: int
    prob: float  # raw softmax probability of the token in the model's distribution
    logprob_cum: float  # sum of the log-probabilities of steps 0 … step
    sampled_prob: float | None = None  # its probability after the sampling processors (sampling only)
    beam: int | None = None  # beam search: the beam whose continuation the token was
    parent: int | None = None  # beam search: that beam's beam at the step before

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**data)


@dataclass(frozen=True)
class BeamNode:
    """One beam of beam search after one step (see :mod:`attnscope.capture.beams`)."""

    step: int
    rank: int  # its row among the running beams kept after this step (0: HF's first); finished: after them
    token_id: int
    parent: int | None  # the rank at step - 1 of the beam it continued (None at step 0)
    logprob: float  # log_softmax of the raw logits given the parent's prefix (no processor, no length penalty)
    logprob_cum: float  # sum of ``logprob`` along the branch from step 0
    best: bool = False  # on the path of the returned sequence
    finished: bool = False  # its token ended the hypothesis (EOS or a stop string)
    text: str = ""  # the token's text (decoded alone, special tokens kept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeamNode:
        return cls(**data)


@dataclass
class GenerationTrace(Trace):
    """A :class:`Trace` of prompt + generated tokens, plus the generation's steps.

    Causal LMs: ``tokens`` and ``text`` are prompt + answer. Encoder-decoders: ``tokens`` and ``text``
    are the encoder's input (the prompt), ``target_tokens`` the decoder's start token + the answer and
    ``target_text`` the answer. Step positions index :attr:`predicted_tokens` either way.
    """

    prompt_length: int = 0  # position of the first generated token (causal: the prompt's token count)
    prompt_chars: int = 0  # characters of the prompt (causal: text[:prompt_chars])
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = "length"  # eos | stop (a stop string) | length (max_new_tokens)
    settings: dict[str, Any] = field(default_factory=dict)  # max_new_tokens, do_sample, ... as used
    windows: list[int | None] = field(default_factory=list)  # per layer: its sliding window, None if full
    beam_tree: list[list[BeamNode]] = field(default_factory=list)  # beam search: per step, its beams

    def cache_state(self, step: int) -> dict[str, Any]:
        """The KV cache when ``step`` was produced: its length, and per sliding-window layer the
        positions that had left the window (query ``p - 1`` sees keys ``p - W … p - 1``)."""
        position = self.step(step).position
        left = {layer: position - window for layer, window in enumerate(self.windows) if window and position > window}
        return {"length": position, "evicted_before": left}

    @property
    def seq2seq(self) -> bool:
        return self.target_tokens is not None

    @property
    def predicted_tokens(self) -> list[Token]:
        """The sequence the steps extend: prompt + answer, or the decoder's start token + answer."""
        return self.target_tokens if self.target_tokens is not None else self.tokens

    @property
    def prompt_text(self) -> str:
        return self.text if self.seq2seq else self.text[: self.prompt_chars]

    @property
    def generated_text(self) -> str:
        return (self.target_text or "") if self.seq2seq else self.text[self.prompt_chars :]

    @property
    def prompt_tokens(self) -> list[Token]:
        return self.tokens if self.seq2seq else self.tokens[: self.prompt_length]

    @property
    def generated_tokens(self) -> list[Token]:
        """The generated tokens, spans counted in :attr:`generated_text` (index: position in
        :attr:`predicted_tokens`)."""
        if self.target_tokens is not None:
            return self.target_tokens[self.prompt_length :]
        shift = self.prompt_chars
        return [
            Token(
                t.index,
                t.id,
                t.text,
                None if t.start is None else t.start - shift,
                None if t.end is None else t.end - shift,
                t.special,
            )
            for t in self.tokens[self.prompt_length :]
        ]

    def generation_meta(self) -> dict[str, Any] | None:
        meta: dict[str, Any] = {
            "prompt_length": self.prompt_length,
            "prompt_chars": self.prompt_chars,
            "steps": [step.to_dict() for step in self.steps],
            "stop_reason": self.stop_reason,
            "settings": self.settings,
            "windows": self.windows,
        }
        if self.beam_tree:  # absent: no tree (greedy, sampling, files written before trees)
            meta["beam_tree"] = [[node.to_dict() for node in level] for level in self.beam_tree]
        return meta

    def step(self, step: int) -> Step:
        if not -len(self.steps) <= step < len(self.steps):
            raise OutOfRangeError(f"step {step} out of range for {len(self.steps)} steps")
        return self.steps[step]

    def step_candidates(self, step: int, k: int | None = None) -> list[Candidate]:
        """The top-k the model gave at ``step`` (raw probabilities, before any sampling processor)."""
        return self.top_predictions(self.step(step).position - 1, k)

    def step_attention(self, step: int, layer: int = -1, head: Any = "mean", stack: str | None = None) -> np.ndarray:
        """What step ``step`` attended to: the row of its query ``p - 1`` — over keys 0 … p - 1 in
        the decoder (p,), or over the encoder's tokens for ``stack="cross"`` (encoder-decoders' default)."""
        name = self.stack_name(stack)
        if name == "encoder":
            raise InputError("the steps are decoder positions: choose the decoder or the cross stack")
        position = self.step(step).position
        row = np.asarray(self.attention(layer, head, rows=[position - 1], stack=name)[0])
        return row if name == "cross" else row[:position]
