"""Personal data out of an audit (``attnscope audit``) before its files are written, by the same
policies as every other answer (:mod:`attnscope.governance.masking`).

Masked: the audited ``text`` and its ``tokens`` (by their character spans); every rule result's
tokens (``where.tokens``, as the masked tokens read) and every text a result quotes — the rule's
name, description, selectors, note and counterfactual hint (a rule file may hold a value too); the
rule names the evidence and the suggestions repeat; the generated answer; the attribution's units
and its target when that continues a value; each counterfactual's texts, edits and changes — its
edited text by the audited text's values carried through its ``char_map``
(:func:`attnscope.governance.counterfactual_masking.spans_through`), so an edit that cuts a value
leaves no raw part of it — and the candidates that would continue a value. The numbers stay. The
provenance record says ``masking_policy`` and ``masked_spans``, and its ``text_sha256`` becomes the
masked text's when anything was masked; the answer is sealed again (its hashes name what is kept).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, cast

from attnscope.governance.counterfactual_masking import spans_through
from attnscope.governance.masked_values import mask_candidates
from attnscope.governance.masking import OFF, check_policy
from attnscope.governance.pii import find_pii
from attnscope.governance.privacy import (
    MASKED_TOKEN_ID,
    MaskPolicy,
    PiiFoundError,
    mask_strings,
    mask_text,
    mask_tokens,
)
from attnscope.governance.provenance import seal

QUOTED = ("rule", "description", "from", "to", "note", "counterfactual")  # what a rule result quotes


def mask_audit(text: str, answer: dict[str, Any], policy: str) -> tuple[str, dict[str, Any], int]:
    """The audit's text and ``answer`` masked by ``policy``, and how many values were masked
    (``drop`` raises :class:`PiiFoundError` when there are any). ``answer`` is not changed."""
    check_policy(policy)
    answer = copy.deepcopy(answer)
    if policy == OFF:
        return text, answer, 0
    chosen = cast(MaskPolicy, policy)
    spans = find_pii(text)
    if spans and policy == "drop":
        raise PiiFoundError(f"the text holds {len(spans)} personal-data value(s)")
    count = len(spans)
    if spans:
        answer["text"] = mask_text(text, spans, chosen)
        answer["tokens"] = mask_tokens(answer["tokens"], spans, chosen, text=text)
        scored = answer.get("attribution") or {}
        if scored.get("units"):
            scored["units"] = [{k: v for k, v in unit.items() if k != "id"}
                               for unit in mask_tokens(scored["units"], spans, chosen, text=text)]  # fmt: skip
    shown = {t["index"]: t["text"] for t in answer["tokens"]}
    for result in answer["rules"]["results"]:
        for key in QUOTED:
            if key in result:
                result[key] = mask_strings(result[key], chosen)
        for token in (result.get("where") or {}).get("tokens") or []:
            token["text"] = shown.get(token.get("index"), "")
    answer["rules"]["rules_file"] = mask_strings(answer["rules"]["rules_file"], chosen)
    for item in [*(answer.get("evidence") or []), *(answer.get("suggestions") or [])]:
        item["rule"] = mask_strings(item["rule"], chosen)
    generation = answer["rules"].get("generation")
    if generation:
        found = find_pii(generation.get("answer") or "")
        count += len(found)
        generation["answer"] = mask_text(generation.get("answer") or "", found, chosen)
        for step in generation.get("steps") or []:
            index = step.get("position")
            if answer["tokens"][index].get("id") == MASKED_TOKEN_ID:
                step["token"] = {"id": MASKED_TOKEN_ID, "text": answer["tokens"][index]["text"]}
    last = answer["tokens"][-1] if answer["tokens"] else {}
    # the text ends inside a value: a prediction continues it (its label stands for the candidates)
    continued = last["text"] if last.get("id") == MASKED_TOKEN_ID else None
    answer["counterfactuals"] = [_counterfactual(item, spans, chosen, continued)
                                 for item in answer.get("counterfactuals") or []]  # fmt: skip
    target = (answer.get("attribution") or {}).get("target")
    if continued is not None and isinstance(target, dict) and isinstance(target.get("text"), str):
        target.update(text=continued, ids=[])
    masked_text = answer["text"]
    record = answer.get("provenance")
    if isinstance(record, dict):
        record["masking_policy"] = policy
        record["masked_spans"] = count
        if count:
            record["text_sha256"] = hashlib.sha256(masked_text.encode("utf-8", "surrogatepass")).hexdigest()
    return masked_text, seal(answer), count


def _counterfactual(item: dict[str, Any], spans: list[Any], policy: MaskPolicy, continued: str | None) -> Any:
    """One counterfactual of the audit: its edited text masked by the audited text's values carried
    through its character map (and its own), every other string it quotes by what it holds."""
    edited = item.get("counterfactual_text")
    char_map = item.pop("char_map", None)
    masked = mask_strings({k: v for k, v in item.items() if k != "counterfactual_text"}, policy)
    if isinstance(edited, str):
        if isinstance(char_map, list) and len(char_map) == len(edited):
            masked["counterfactual_text"] = mask_text(edited, spans_through(char_map, spans, edited), policy)
        else:
            masked["counterfactual_text"] = mask_strings(edited, policy)
    for change in masked.get("changes") or []:  # a change's old text is a piece of the audited text
        start, end = change.get("start"), change.get("end")
        if isinstance(start, int) and isinstance(end, int) and any(s.start < end and s.end > start for s in spans):
            label = next(s.label for s in spans if s.start < end and s.end > start)
            change["old"] = label
            change["new"] = mask_strings(change.get("new", ""), policy)
    if continued is not None:
        for key in ("top_original", "top_counterfactual"):
            mask_candidates(masked.get(key) or [], continued)
    return masked
