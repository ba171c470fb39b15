"""Small pieces of personal-data masking that every kind of answer uses (:mod:`.masking`,
:mod:`.counterfactual_masking`, :mod:`.audit_masking`): candidates that continue a value, token
sequences whose joined text holds a value, spans cut to a window, the provenance records of an answer.
"""

from __future__ import annotations

from typing import Any

from attnscope.governance.privacy import MASKED_TOKEN_ID, MaskPolicy, PiiSpan, find_pii, mask_text


def mask_candidates(candidates: list[dict[str, Any]], label: str) -> None:
    """Candidates' texts and ids replaced by ``label`` in place; their probabilities stay."""
    for candidate in candidates:
        for key in ("token", "text"):
            if key in candidate:
                candidate[key] = label
        if "id" in candidate:
            candidate["id"] = MASKED_TOKEN_ID


def masked_string(text: str, policy: MaskPolicy) -> str:
    """A sentence with whatever personal data it quotes masked (a report's observations quote units)."""
    found = find_pii(text)
    return mask_text(text, found, policy) if found else text


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


def within(spans: list[PiiSpan], start: int, end: int) -> list[PiiSpan]:
    """The spans cut to [start, end), offsets relative to ``start`` (a value across the prompt's end
    is masked on both sides)."""
    out = []
    for span in spans:
        lo, hi = max(span.start, start), min(span.end, end)
        if lo < hi:
            out.append(PiiSpan(lo - start, hi - start, span.kind, span.label))
    return out


def records_in(answer: dict[str, Any], kind: str = "") -> list[dict[str, Any]]:
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
