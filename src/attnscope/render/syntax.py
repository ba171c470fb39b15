"""The ``syntax`` JSON contract and its terminal table (Clark et al. 2019's heads per relation).

:func:`syntax_answer` parses the text (:mod:`attnscope.analysis.parsers`), captures it and scores
every head (:mod:`attnscope.analysis.syntax`): what ``attnscope syntax --json`` prints, what
``POST /api/syntax`` answers and what the web app's Syntax view draws. Word indexes are 0-based;
``head`` is ``None`` at a root; ``accuracy[direction][relation]`` is (layers, heads).
A parse without dependencies (jieba's Chinese) answers its words and parts of speech with
``relations: []`` and an ``install`` hint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.parsers import CHINESE_INSTALL, INSTALL, Parse, ParserName, parse_text
from attnscope.analysis.syntax import DIRECTIONS, OFFSETS, SyntaxScores, dependency_scores, token_words
from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.governance.provenance import seal
from attnscope.render.text import pad, quoted

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

METHOD = (
    "Clark et al. 2019: word attention = token attention summed over the key word's tokens and averaged over "
    "the query word's; special tokens and self-attention are not candidates; a head predicts for each word the "
    "most-attended other word; accuracy = share of a relation's dependents whose prediction is their head "
    f"(dependent_to_head), or whose most-attending word is (head_to_dependent); baseline = best fixed offset "
    f"in {', '.join(f'{o:+d}' for o in OFFSETS)}"
)


def syntax_answer(
    model: LoadedModel,
    text: str,
    *,
    parser: ParserName = "auto",
    conllu: str | None = None,
    backend: str = "auto",
    progress: Callable[..., None] | None = None,
    trace: Trace | None = None,
    parse: Parse | None = None,
) -> dict[str, Any]:
    """The ``syntax`` JSON of ``text``: parsed first (a missing parser or a CoNLL-U that does not
    match the text is refused before the model runs), then captured (or ``trace``) and scored.
    ``parse``: the text's parse when the caller already has it (``parser``/``conllu`` are then unused),
    so spaCy does not run twice."""
    if parse is None:
        parse = parse_text(text, parser, conllu=conllu)
    if trace is None:
        from attnscope.capture.engine import capture

        trace = capture(model, text, backend=backend, predict="none", progress=progress)  # type: ignore[arg-type]
    return syntax_json(trace, parse, progress=progress)


def syntax_json(trace: Trace, parse: Parse, *, progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """The answer for a captured ``trace`` of the parsed text (see the module docstring)."""
    stack = "encoder" if "encoder" in trace.stacks() else trace.default_stack
    tokens = trace.query_tokens(stack)
    scores = dependency_scores(trace, parse, stack=stack, progress=progress) if parse.dependencies else None
    owner = scores.owner if scores is not None else token_words(tokens, parse.words)
    words = []
    for word in parse.words:
        words.append({**word.to_dict(), "tokens": [int(k) for k in np.flatnonzero(owner == word.index)]})
    answer: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "result": "syntax",
        "model": trace.model.to_dict(),
        "text": trace.text,
        "stack": stack,
        "parser": {k: v for k, v in parse.to_dict().items() if k not in ("words", "notes")},
        "words": words,
        "tokens": [{**t.to_dict(), "word": int(w) if w >= 0 else None} for t, w in zip(tokens, owner, strict=True)],
        "layers": trace.num_layers(stack),
        "heads": trace.num_heads(stack),
        "method": METHOD,
        "install": None if parse.dependencies else (CHINESE_INSTALL if parse.language == "zh" else INSTALL),
        "relations": _relations(scores) if scores else [],
        "overall": _row(scores, "all") if scores else None,
        "accuracy": {d: {r: plain(a) for r, a in scores.accuracy[d].items()} for d in DIRECTIONS} if scores else None,
        "notes": scores.notes if scores else list(parse.notes),
        "provenance": trace.provenance,
    }
    return seal(answer)


def _best(table: np.ndarray) -> tuple[int, int, float]:
    """(layer, head, accuracy) of the highest accuracy; ties: the lowest layer, then head."""
    filled = np.where(np.isnan(table), -1.0, table)
    layer, head = np.unravel_index(int(filled.argmax()), filled.shape)
    return int(layer), int(head), float(table[layer, head])


def _row(scores: SyntaxScores, relation: str) -> dict[str, Any]:
    offset, baseline = scores.baseline[relation]
    row: dict[str, Any] = {
        "relation": relation,
        "count": scores.counts[relation],
        "baseline": {"offset": offset, "accuracy": baseline},
    }
    for direction in DIRECTIONS:
        layer, head, accuracy = _best(scores.accuracy[direction][relation])
        row[direction] = {"layer": layer, "head": head, "accuracy": accuracy}
    return row


def _relations(scores: SyntaxScores) -> list[dict[str, Any]]:
    return [_row(scores, relation) for relation in scores.relations]


def syntax_text(body: dict[str, Any]) -> str:
    """The terminal form: the parse (word, POS, relation → head) and the best head per relation."""
    parser = body["parser"]
    words = body["words"]
    source = parser["parser"] + (f" ({parser['model']})" if parser["model"] else "")
    lines = [f"model   {body['model']['spec']} — {body['model']['name']}", f"text    {quoted(body['text'])}",
             f"parser  {source}", "", "words:"]  # fmt: skip
    for word in words:
        head = words[word["head"]]["text"] if word["head"] is not None else "—"
        relation = f"{word['relation']} → {head}" if word["relation"] else ""
        lines.append(f"  {word['index']:>3}  {pad(quoted(word['text']), 16)} {word['pos']:<6} {relation}".rstrip())
    if not body["relations"]:
        lines += ["", *body["notes"]]
        return "\n".join(lines)
    lines += ["", "best head per relation (accuracy = share of dependents; baseline = best fixed offset):",
              f"  {'relation':<12} {'count':>5}   {'dep→head':<16} {'head→dep':<16} baseline"]  # fmt: skip
    for row in [*body["relations"], body["overall"]]:
        cells = []
        for direction in DIRECTIONS:
            best = row[direction]
            cells.append(f"L{best['layer']} H{best['head']} {best['accuracy']:.3f}".ljust(16))
        baseline = row["baseline"]
        lines.append(
            f"  {row['relation']:<12} {row['count']:>5}   {cells[0]} {cells[1]} "
            f"{baseline['offset']:+d} {baseline['accuracy']:.3f}"
        )
    lines += ["", *(f"note: {note}" for note in body["notes"])]
    return "\n".join(lines)
