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
- ``counterfactual``: both sides' ``text`` and ``tokens``, each by the values found in either text
  and carried through the answer's ``char_map`` (:func:`spans_through`: an edit that deletes or
  replaces part of a value leaves the rest of it masked, as the value it was), the tokens of
  ``attention.matched``, ``attribution.matched`` and ``difference.tokens`` (as their partners were
  masked), the changes' ``old`` and ``new`` (by their places in each text) and the edits' strings,
  the attribution's targets (and those of its records) where they would continue a value, the notes,
  and the records of both texts (theirs and the attribution's), each hashing its own masked text.

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
from attnscope.governance.counterfactual_masking import mask_counterfactual, spans_through
from attnscope.governance.masked_values import (
    mask_candidates,
    mask_sequence,
    masked_string,
    records_in,
    within,
)
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

__all__ = ["CHOICES", "OFF", "check_policy", "mask_answer", "mask_sequence", "spans_through"]

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
        count, text = mask_counterfactual(answer, text, chosen)
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
            answer["observations"] = [masked_string(o, chosen) for o in answer.get("observations", [])]
        extra = _values_in(answer, chosen)
        count = len(spans) + extra
        text = mask_text(text, spans, chosen) if spans else text
    records = records_in(answer, kind)
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
            mask_candidates(prediction.get("top") or [], near[-1]["text"])


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
        generated["text"] = mask_text(generated["text"], within(spans, offset, len(whole)), policy)
        prompt["text"] = mask_text(prompt["text"], within(spans, 0, offset), policy)
        for step, token in zip(answer.get("steps", []), generated["tokens"], strict=False):
            if token.get("id") == MASKED_TOKEN_ID:
                step["token"] = {"id": MASKED_TOKEN_ID, "text": token["text"]}
                mask_candidates(step.get("top") or [], token["text"])
    extra = _values_in(answer, policy)
    return len(spans) + extra, prompt["text"]


def _shift(value: int | None, offset: int) -> int | None:
    return None if value is None else value + offset


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
