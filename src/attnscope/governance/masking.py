"""Personal data out of a JSON answer before it leaves the process (a stored run, its export):
every text the answer carries, and every token whose characters overlap a detected value, masked
by one policy (:mod:`attnscope.governance.privacy`).

What is masked, per kind of answer:

- ``analysis``: ``text``, ``tokens`` (by their character spans in ``text``), ``target_tokens``
  (tokens whose text contains a detected value).
- ``attribution``: its ``units`` (by their spans in the run's text) and ``target.text``.
- ``report``: its ``text``, ``units`` and ``target.text`` as for an attribution, each method's
  attribution answer (``methods``) the same way, and every observation sentence (they quote units).
- ``generation``: ``prompt.text`` + ``generated.text`` read as one text (a value the model
  completes across the two is found whole), their ``tokens``, each step's ``token.text`` (the
  generated token of that step), ``beam_tree`` token texts and ``target_tokens`` (tokens whose text
  contains a detected value).
- ``counterfactual``: both sides' ``text`` and ``tokens`` (each by its own text's values), the
  tokens of ``attention.matched``, ``attribution.matched`` and ``difference.tokens`` (as their
  partners were masked), the changes' ``old`` and ``new`` (by their places in each text) and the
  edits' strings, the attribution's targets, the notes, and the records of both texts (theirs and
  the attribution's), each hashing its own masked text.

Next-token candidates (``prediction.top``, a step's ``top``) are masked where they would continue a
value: an analysis's candidates when the query token or the token after it is masked (the model
predicting the next digits of a phone number would spell them), a generation step's candidates when
the step's own token is masked (greedy decoding's first candidate is the token it chose). Their
probabilities stay; each text becomes the label of the value it continues.

The record of what was done goes into the answer's ``provenance``: ``masking_policy`` and
``masked_spans``; its ``text_sha256`` becomes the hash of the masked text when anything was
masked (the hash of a text with a phone number in it would let anyone holding the rest of the text
confirm a guessed number).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, cast

from attnscope.errors import InputError
from attnscope.governance.privacy import (
    MASKED_TOKEN_ID,
    POLICIES,
    MaskPolicy,
    PiiSpan,
    find_pii,
    mask_text,
    mask_tokens,
)
from attnscope.governance.provenance import seal

OFF = "off"  # no masking (the user chose to keep personal data)
CHOICES = (*POLICIES, OFF)


def check_policy(policy: str) -> str:
    if policy not in CHOICES:
        raise InputError(f"unknown personal-data policy {policy!r}; policies: {', '.join(CHOICES)}")
    return policy


def mask_answer(kind: str, text: str, answer: dict[str, Any], policy: str) -> tuple[str, dict[str, Any], int]:
    """The run's text and ``answer`` with personal data masked by ``policy`` (``drop`` raises
    :class:`~attnscope.governance.privacy.PiiFoundError` when there is any), and how many values
    were masked. ``answer`` is not changed."""
    check_policy(policy)
    answer = copy.deepcopy(answer)
    chosen = cast(MaskPolicy, policy)
    if policy == OFF:
        count = 0
    elif kind == "generation":
        count, text = _generation(answer, chosen)
    elif kind == "counterfactual":
        count, text = _counterfactual(answer, text, chosen)
    else:
        spans = _found(answer, text)
        if kind == "analysis":
            _analysis(answer, text, spans, chosen)
        elif kind in ("attribution", "report"):
            _attribution(answer, text, spans, chosen)
        if kind == "report":  # its text, and each method's attribution answer
            if spans:
                answer["text"] = mask_text(text, spans, chosen)
            for method in (answer.get("methods") or {}).values():
                if isinstance(method, dict):
                    _attribution(method, text, spans, chosen)
            answer["observations"] = [_masked_string(o, chosen) for o in answer.get("observations", [])]
        extra = _values_in(answer, chosen)
        count = len(spans) + extra
        text = mask_text(text, spans, chosen) if spans else text
    records = _records(answer, kind)
    if policy != OFF:
        count += sum(_target_of(record, chosen) for record in records)
    for record in records:
        record["masking_policy"] = policy
        record["masked_spans"] = count
        if count:
            record["text_sha256"] = _sha256(_text_of(record, answer, kind, text))
    if count:  # the output hashes name what is kept now (a hash of the raw tokens would confirm a guess)
        for method in (answer.get("methods") or {}).values() if kind == "report" else ():
            if isinstance(method, dict):
                seal(method)
    if count or kind == "counterfactual":  # its attribution's records are inside what its hashes cover
        seal(answer)
    return text, answer, count


def _found(answer: dict[str, Any], text: str) -> list[PiiSpan]:
    """The personal data in ``text``: the spans the answer already carries (``pii``, found in the
    same text when it was made), else found now."""
    carried = answer.get("pii")
    same = answer.get("text", text) == text  # a generation's spans are over prompt + answer: no "text"
    if isinstance(carried, list) and same and all(isinstance(span, dict) for span in carried):
        return [PiiSpan(s["start"], s["end"], s["kind"], s["label"]) for s in carried]
    return find_pii(text)


def _records(answer: dict[str, Any], kind: str = "") -> list[dict[str, Any]]:
    """Every provenance record in ``answer``: its own (one, or one per prompt), a report's methods'
    and a counterfactual's attribution's (one per text)."""
    found: list[Any] = []
    holders = [answer, *((answer.get("methods") or {}).values())]
    if kind == "counterfactual":
        holders.append(answer.get("attribution"))
    for holder in holders:
        record = holder.get("provenance") if isinstance(holder, dict) else None
        found += record if isinstance(record, list) else [record]
    return [record for record in found if isinstance(record, dict)]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _text_of(record: dict[str, Any], answer: dict[str, Any], kind: str, text: str) -> str:
    """The (masked) text a record describes: a counterfactual's records describe one side each
    (theirs name it in ``method_options.text``; the attribution's come in order, original first)."""
    if kind != "counterfactual":
        return text
    side = (record.get("method_options") or {}).get("text")
    if side is None:
        attribution = (answer.get("attribution") or {}).get("provenance") or []
        side = "counterfactual" if any(record is one for one in attribution[1:2]) else "original"
    return str((answer.get(side) or {}).get("text", text))


def _target_of(record: dict[str, Any], policy: MaskPolicy) -> int:
    """Masks a record's ``target`` (an attribution's target text and ids); the count of values."""
    target = record.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("text"), str):
        return 0
    found = find_pii(target["text"])
    if found:
        record["target"] = {**target, "text": mask_text(target["text"], found, policy), "ids": []}
    return len(found)


def _analysis(answer: dict[str, Any], text: str, spans: list[PiiSpan], policy: MaskPolicy) -> None:
    if spans:
        answer["text"] = mask_text(text, spans, policy)
        answer["tokens"] = tokens = mask_tokens(answer.get("tokens", []), spans, policy, text=text)
        prediction = answer.get("prediction") or {}
        at = prediction.get("position")
        near = [t for t in tokens[at : at + 2] if t.get("id") == MASKED_TOKEN_ID] if isinstance(at, int) else []
        if near:  # the query token or the next one is part of a value: its candidates continue it
            _mask_candidates(prediction.get("top") or [], near[-1]["text"])


def _mask_candidates(candidates: list[dict[str, Any]], label: str) -> None:
    """Candidates' texts and ids replaced by ``label`` in place; their probabilities stay."""
    for candidate in candidates:
        for key in ("token", "text"):
            if key in candidate:
                candidate[key] = label
        if "id" in candidate:
            candidate["id"] = MASKED_TOKEN_ID


def _attribution(answer: dict[str, Any], text: str, spans: list[PiiSpan], policy: MaskPolicy) -> None:
    if spans and answer.get("units"):
        answer["units"] = mask_tokens(answer["units"], spans, policy, text=text)
        for unit in answer["units"]:
            unit.pop("id", None)  # units have no ids: mask_tokens marks masked ones with one
    target = answer.get("target") or {}
    if isinstance(target.get("text"), str):
        found = find_pii(target["text"])
        if found:
            target["text"] = mask_text(target["text"], found, policy)
            target["ids"] = []


def _generation(answer: dict[str, Any], policy: MaskPolicy) -> tuple[int, str]:
    """Masks a generation answer in place; the count and its masked prompt text."""
    prompt, generated = answer["prompt"], answer["generated"]
    whole = prompt["text"] + generated["text"]
    spans = _found(answer, whole)
    if spans:
        offset = len(prompt["text"])
        prompt["tokens"] = mask_tokens(prompt["tokens"], spans, policy, text=whole)
        shifted = [
            {**t, "start": _shift(t.get("start"), offset), "end": _shift(t.get("end"), offset)}
            for t in generated["tokens"]
        ]
        masked = mask_tokens(shifted, spans, policy, text=whole)
        generated["tokens"] = [
            {**m, "start": t.get("start"), "end": t.get("end")}
            for m, t in zip(masked, generated["tokens"], strict=True)
        ]
        generated["text"] = mask_text(generated["text"], _within(spans, offset, len(whole)), policy)
        prompt["text"] = mask_text(prompt["text"], _within(spans, 0, offset), policy)
        for step, token in zip(answer.get("steps", []), generated["tokens"], strict=False):
            if token.get("id") == MASKED_TOKEN_ID:
                step["token"] = {"id": MASKED_TOKEN_ID, "text": token["text"]}
                _mask_candidates(step.get("top") or [], token["text"])
    extra = _values_in(answer, policy)
    return len(spans) + extra, prompt["text"]


def _counterfactual(answer: dict[str, Any], text: str, policy: MaskPolicy) -> tuple[int, str]:
    """Masks a counterfactual answer in place (module docstring); the count and its masked original."""
    sides = [answer.get("original") or {}, answer.get("counterfactual") or {}]
    texts = [str(side.get("text", text)) for side in sides]
    found = [find_pii(one) for one in texts]
    for side, one, spans in zip(sides, texts, found, strict=True):
        if spans:
            side["text"] = mask_text(one, spans, policy)
            side["tokens"] = mask_tokens(side.get("tokens") or [], spans, policy, text=one)
            _analysis_candidates(side, side["tokens"])
    masked = [
        {t["index"]: t["text"] for t in side.get("tokens") or [] if t.get("id") == MASKED_TOKEN_ID} for side in sides
    ]
    labels: dict[int, str] = {}  # original token index -> the label of it or of its partner
    pairs = [tuple(pair) for pair in (answer.get("alignment") or {}).get("pairs") or []]
    for i, j in pairs:
        if i in masked[0] or j in masked[1]:
            labels[i] = masked[0].get(i) or masked[1][j]
    for block in (answer.get("attention"), answer.get("attribution")):
        for entry in (block or {}).get("matched") or []:
            if entry.get("original") in labels:
                entry["token"] = labels[entry["original"]]
    difference = answer.get("difference") or {}
    if isinstance(difference.get("tokens"), list) and len(difference["tokens"]) == len(pairs):
        difference["tokens"] = [labels.get(i, token) for (i, _), token in zip(pairs, difference["tokens"], strict=True)]
    cross = answer.get("prediction") or {}
    for side, key in zip(sides, ("original_top_in_counterfactual", "counterfactual_top_in_original"), strict=True):
        top = (side.get("prediction") or {}).get("top") or []
        if top and top[0].get("id") == MASKED_TOKEN_ID and isinstance(cross.get(key), dict):
            _mask_candidates([cross[key]], top[0]["token"])  # the same token: its label
    edits = _masked_edits(answer, found, policy)
    for record in _records(answer, "counterfactual"):
        options = record.get("method_options")
        if isinstance(options, dict) and isinstance(options.get("edits"), list):
            options["edits"] = copy.deepcopy(edits)
    attribution = answer.get("attribution") or {}
    extra = 0
    for target in attribution.get("targets") or []:
        if isinstance(target, dict) and isinstance(target.get("text"), str) and find_pii(target["text"]):
            extra += 1
            target.update(text=_masked_string(target["text"], policy), ids=[])
    answer["notes"] = [_masked_string(note, policy) for note in answer.get("notes") or []]
    return len(found[0]) + len(found[1]) + extra, sides[0].get("text", text)


def _analysis_candidates(side: dict[str, Any], tokens: list[dict[str, Any]]) -> None:
    """A side's candidates masked when its query token or the next one is (as for an analysis)."""
    prediction = side.get("prediction") or {}
    at = prediction.get("position")
    near = [t for t in tokens[at : at + 2] if t.get("id") == MASKED_TOKEN_ID] if isinstance(at, int) else []
    if near:
        _mask_candidates(prediction.get("top") or [], near[-1]["text"])


def _masked_edits(answer: dict[str, Any], found: list[list[PiiSpan]], policy: MaskPolicy) -> list[dict[str, Any]]:
    """The changes' ``old`` (by its place in the original) and ``new`` (by its place in the edited
    text) masked in place, and the edits' strings as their changes were; the masked edits."""
    edits = [edit for edit in answer.get("edits") or [] if isinstance(edit, dict)]
    hidden: dict[tuple[int, str], str] = {}  # (edit, field) -> its masked string
    for change in answer.get("changes") or []:
        for key, at, spans in (("old", change["start"], found[0]), ("new", change["edited_start"], found[1])):
            value = str(change.get(key, ""))
            inside = _within(spans, at, at + len(value))
            touching = [s for s in spans if s.start <= at <= s.end] if not value else []
            if inside:
                change[key] = mask_text(value, inside, policy)
            else:
                change[key] = _masked_string(value, policy)
            if inside or change[key] != value:
                hidden[(change["edit"], key)] = change[key]
            if touching and key == "old":  # an insertion into a value: its anchor word is part of it
                hidden[(change["edit"], "at")] = touching[0].label
    for index, edit in enumerate(edits):
        for key in ("old", "new"):
            if isinstance(edit.get(key), str):
                edit[key] = hidden.get((index, key), _masked_string(edit[key], policy))
        if isinstance(edit.get("at"), str):
            side = edit["at"].partition(":")[0]
            label = hidden.get((index, "at"))
            edit["at"] = f"{side}:{label}" if label else _masked_string(edit["at"], policy)
    return edits


def _masked_string(text: str, policy: MaskPolicy) -> str:
    """A sentence with whatever personal data it quotes masked (a report's observations quote units)."""
    found = find_pii(text)
    return mask_text(text, found, policy) if found else text


def _shift(value: int | None, offset: int) -> int | None:
    return None if value is None else value + offset


def _within(spans: list[PiiSpan], start: int, end: int) -> list[PiiSpan]:
    """The spans cut to [start, end), offsets relative to ``start`` (a value across the prompt's end
    is masked on both sides)."""
    out = []
    for span in spans:
        lo, hi = max(span.start, start), min(span.end, end)
        if lo < hi:
            out.append(PiiSpan(lo - start, hi - start, span.kind, span.label))
    return out


def _values_in(answer: dict[str, Any], policy: MaskPolicy) -> int:
    """Token sequences that no character span places in a text — an encoder-decoder's
    ``target_tokens``, each path of a beam tree — masked by the text their tokens spell joined: a
    value split over several tokens is found whole. The count of values."""
    sequences = [answer.get("target_tokens") or []]
    tree = answer.get("beam_tree") or []
    for step, level in enumerate(tree):  # each beam's path, from its node back through its parents
        for node in level:
            path, at, rank = [node["token"]], step, node.get("parent")
            while at > 0 and rank is not None:
                at -= 1
                parent = next((n for n in tree[at] if n["rank"] == rank), None)
                if parent is None:
                    break
                path.insert(0, parent["token"])
                rank = parent.get("parent")
            sequences.append(path)
    return sum(mask_sequence(tokens, policy) for tokens in sequences)


def mask_sequence(tokens: list[dict[str, Any]], policy: MaskPolicy) -> int:
    """Masks, in place, the tokens over a value found in their joined texts; the count of values."""
    pieces: list[str] = [t["text"] if isinstance(t.get("text"), str) else "" for t in tokens]
    joined = "".join(pieces)
    found = find_pii(joined)
    if not found:
        return 0
    starts = [0]
    for piece in pieces:
        starts.append(starts[-1] + len(piece))
    for token, start, end in zip(tokens, starts, starts[1:], strict=False):
        hits = [span for span in found if span.start < max(end, start + 1) and span.end > start]
        if hits:
            token["text"] = "".join(span.label for span in hits)
            token["id"] = MASKED_TOKEN_ID
    return len(found)
