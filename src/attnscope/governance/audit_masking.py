"""Personal data out of an audit (``attnscope audit``) before its files are written, by the same
policies as every other answer (:mod:`attnscope.governance.masking`).

Masked: the audited ``text`` and its ``tokens`` (by their character spans), the tokens each rule
result quotes (``where.tokens``, as the masked tokens read), the generated answer, the attribution's
units, each counterfactual's texts, edits, changes and candidates, and the text of every next-token
candidate that continues a value (as for an analysis). The numbers stay. The provenance record says
``masking_policy`` and ``masked_spans``, and its ``text_sha256`` becomes the masked text's when
anything was masked; the answer is sealed again (its hashes name what is kept).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, cast

from attnscope.governance.masking import OFF, check_policy
from attnscope.governance.pii import find_pii
from attnscope.governance.privacy import MASKED_TOKEN_ID, MaskPolicy, PiiFoundError, mask_text, mask_tokens
from attnscope.governance.provenance import seal


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
        shown = {t["index"]: t["text"] for t in answer["tokens"]}
        for result in answer["rules"]["results"]:
            for token in (result.get("where") or {}).get("tokens") or []:
                token["text"] = shown.get(token.get("index"), "")
            if isinstance(result.get("counterfactual"), dict):
                result["counterfactual"] = _strings(result["counterfactual"], chosen)
        scored = answer.get("attribution") or {}
        if scored.get("units"):
            scored["units"] = [{k: v for k, v in unit.items() if k != "id"}
                               for unit in mask_tokens(scored["units"], spans, chosen, text=text)]  # fmt: skip
    generation = answer["rules"].get("generation")
    if generation:
        count += _mask_field(generation, "answer", chosen)
        for step in generation.get("steps") or []:
            index = step.get("position")
            if answer["tokens"][index].get("id") == MASKED_TOKEN_ID:
                step["token"] = {"id": MASKED_TOKEN_ID, "text": answer["tokens"][index]["text"]}
    answer["counterfactuals"] = [_strings(item, chosen) for item in answer.get("counterfactuals") or []]
    last = answer["tokens"][-1] if answer["tokens"] else {}
    if last.get("id") == MASKED_TOKEN_ID:  # the text ends inside a value: the candidates would continue it
        for item in answer["counterfactuals"]:
            for key in ("top_original", "top_counterfactual"):
                item[key] = [{**c, "token": last["text"], "id": MASKED_TOKEN_ID} for c in item.get(key) or []]
    masked_text = answer["text"]
    record = answer.get("provenance")
    if isinstance(record, dict):
        record["masking_policy"] = policy
        record["masked_spans"] = count
        if count:
            record["text_sha256"] = hashlib.sha256(masked_text.encode("utf-8", "surrogatepass")).hexdigest()
    return masked_text, seal(answer), count


def _mask_field(holder: dict[str, Any], key: str, policy: MaskPolicy) -> int:
    value = holder.get(key)
    if not isinstance(value, str):
        return 0
    found = find_pii(value)
    if found:
        holder[key] = mask_text(value, found, policy)
    return len(found)


def _strings(value: Any, policy: MaskPolicy) -> Any:
    """Every string inside ``value`` with the personal data it holds masked (a counterfactual's
    texts, edits and candidates quote the audited text)."""
    if isinstance(value, str):
        found = find_pii(value)
        return mask_text(value, found, policy) if found else value
    if isinstance(value, list):
        return [_strings(item, policy) for item in value]
    if isinstance(value, dict):
        return {key: _strings(item, policy) for key, item in value.items()}
    return value
