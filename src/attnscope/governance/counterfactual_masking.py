"""Personal data out of a counterfactual answer (``POST /api/counterfactual``, ``attnscope
counterfactual``) before it is stored: both texts, their tokens and everything the answer quotes.

A value is masked on both sides even where the edit cut it: the original's spans are carried through
the answer's ``char_map`` onto the edited text (:func:`spans_through`) and back, until nothing more
is added, so ``Call 13812345678 now`` with ``5678`` deleted reads ``Call [PHONE] now`` on both sides.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from attnscope.errors import InputError
from attnscope.governance.masked_values import mask_candidates, masked_string, records_in, within
from attnscope.governance.privacy import MASKED_TOKEN_ID, MaskPolicy, PiiSpan, find_pii, mask_text, mask_tokens


def spans_through(char_map: Sequence[int | None], spans: Iterable[PiiSpan], edited_text: str) -> list[PiiSpan]:
    """The personal data of an edited text: the original's values carried through the edit, merged
    with the values found in the edited text itself — everything to mask in ``edited_text``.

    A value the edit cut (``Call 13812345678`` with ``5678`` deleted) is no longer found in the
    edited text, yet its remaining characters are part of it: each original span becomes the edited
    characters from the first to the last that come from it (new text between them included), with
    the span's kind and label. Spans that overlap a value found in the edited text are merged with
    it into one span (the label of the longer).

    Args:
        char_map: for every character of ``edited_text``, the index of the original character it
            is, or ``None`` for new text (a counterfactual answer's ``char_map``; the inverse map
            carries an edited text's values back into its original the same way).
        spans: the original's values (from :func:`~attnscope.governance.pii.find_pii` on it).
        edited_text: the edited text (``len(char_map)`` characters).

    Returns:
        Non-overlapping spans over ``edited_text``, sorted, ready for
        :func:`~attnscope.governance.privacy.mask_text` and
        :func:`~attnscope.governance.privacy.mask_tokens`.

    Raises:
        InputError: ``char_map`` is not one entry per character of ``edited_text``.
    """
    if len(char_map) != len(edited_text):
        raise InputError(f"the character map has {len(char_map)} entries for a text of {len(edited_text)} characters")
    return _merged([*_carried(char_map, spans), *find_pii(edited_text)])


def _carried(char_map: Sequence[int | None], spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Each span, as the mapped characters from the first to the last that come from it."""
    placed: dict[int, int] = {}  # original index -> mapped index
    for position, source in enumerate(char_map):
        if isinstance(source, int) and not isinstance(source, bool):
            placed[source] = position
    out = []
    for span in spans:
        positions = [placed[at] for at in range(span.start, span.end) if at in placed]
        if positions:
            out.append(PiiSpan(min(positions), max(positions) + 1, span.kind, span.label))
    return out


def _merged(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Overlapping spans joined into one (its kind and label those of the longest), sorted."""
    groups: list[list[PiiSpan]] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if groups and span.start < max(s.end for s in groups[-1]):
            groups[-1].append(span)
        else:
            groups.append([span])
    out = []
    for group in groups:
        longest = max(group, key=lambda s: s.end - s.start)  # the first of the longest on a tie
        out.append(PiiSpan(group[0].start, max(s.end for s in group), longest.kind, longest.label))
    return out


def _both_sides(answer: dict[str, Any], texts: list[str]) -> list[list[PiiSpan]]:
    """The spans to mask in the original and in the edited text: each text's own values and those of
    the other carried through the character map, both ways until nothing more is added (an edit that
    completes a value makes its start in the original part of it too). Without a usable map (an
    answer written without one): each text's own."""
    found = [find_pii(one) for one in texts]
    char_map = answer.get("char_map")
    if not isinstance(char_map, list) or len(char_map) != len(texts[1]):
        return found
    inverse: list[int | None] = [None] * len(texts[0])  # for every original character, its edited index
    for position, source in enumerate(char_map):
        if isinstance(source, int) and not isinstance(source, bool) and 0 <= source < len(texts[0]):
            inverse[source] = position
    while True:
        edited = _merged([*found[1], *_carried(char_map, found[0])])
        original = _merged([*found[0], *_carried(inverse, edited)])
        if _places(original) == _places(found[0]) and _places(edited) == _places(found[1]):
            return [original, edited]
        found = [original, edited]  # the covered characters only grow: this ends


def _places(spans: list[PiiSpan]) -> list[tuple[int, int]]:
    return [(span.start, span.end) for span in spans]


def mask_counterfactual(answer: dict[str, Any], text: str, policy: MaskPolicy) -> tuple[int, str]:
    """Masks a counterfactual answer in place (module docstring); the count and its masked original."""
    sides = [answer.get("original") or {}, answer.get("counterfactual") or {}]
    texts = [str(side.get("text", text)) for side in sides]
    found = _both_sides(answer, texts)
    continued: dict[int, tuple[str, str]] = {}  # side -> (its raw top token, the label it continues)
    for index, (side, one, spans) in enumerate(zip(sides, texts, found, strict=True)):
        if spans:
            side["text"] = mask_text(one, spans, policy)
            side["tokens"] = mask_tokens(side.get("tokens") or [], spans, policy, text=one)
            top = (side.get("prediction") or {}).get("top") or []
            raw = str(top[0].get("token", "")) if top else ""
            label = _analysis_candidates(side, side["tokens"])
            if label is not None:
                continued[index] = (raw, label)
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
            mask_candidates([cross[key]], top[0]["token"])  # the same token: its label
    edits = _masked_edits(answer, found, policy)
    for record in records_in(answer, "counterfactual"):
        options = record.get("method_options")
        if isinstance(options, dict) and isinstance(options.get("edits"), list):
            options["edits"] = copy.deepcopy(edits)
    attribution = answer.get("attribution") or {}
    extra = 0
    for target in attribution.get("targets") or []:
        if isinstance(target, dict) and isinstance(target.get("text"), str) and find_pii(target["text"]):
            extra += 1
            target.update(text=masked_string(target["text"], policy), ids=[])
    notes = [str(note) for note in answer.get("notes") or []]
    for raw, label in _continued_targets(answer, continued):
        if raw.strip():  # "the original's prediction '…' does not re-tokenize …" quotes it
            notes = [note.replace(repr(raw), repr(label)) for note in notes]
    answer["notes"] = [masked_string(note, policy) for note in notes]
    return len(found[0]) + len(found[1]) + extra, sides[0].get("text", text)


def _continued_targets(answer: dict[str, Any], continued: dict[int, tuple[str, str]]) -> list[tuple[str, str]]:
    """The attribution's targets (and its records' targets) that are a side's masked top candidate —
    the next piece of a value — masked with it: target 0 explains the original's prediction, target
    1 the same one (``target_mode`` ``original``) or the counterfactual's own. The (raw, label) pairs
    masked."""
    attribution = answer.get("attribution") or {}
    if not isinstance(attribution, dict) or not continued:
        return []
    records: list[Any] = attribution.get("provenance") or []
    targets: list[Any] = attribution.get("targets") or []
    hidden: list[tuple[str, str]] = []
    for index in (0, 1):
        side = 0 if attribution.get("target_mode") == "original" else index
        if side not in continued:
            continue
        raw, label = continued[side]
        target = targets[index] if isinstance(targets, list) and index < len(targets) else None
        for holder in (target, _record_target(records, index)):
            if isinstance(holder, dict) and isinstance(holder.get("text"), str):
                holder.update(text=label, ids=[])
        hidden.append((raw, label))
    return hidden


def _record_target(records: list[Any], index: int) -> dict[str, Any] | None:
    record = records[index] if isinstance(records, list) and index < len(records) else None
    target = record.get("target") if isinstance(record, dict) else None
    return target if isinstance(target, dict) else None


def _analysis_candidates(side: dict[str, Any], tokens: list[dict[str, Any]]) -> str | None:
    """A side's candidates masked when its query token or the next one is (as for an analysis); the
    label they now show (``None``: not masked)."""
    prediction = side.get("prediction") or {}
    at = prediction.get("position")
    near = [t for t in tokens[at : at + 2] if t.get("id") == MASKED_TOKEN_ID] if isinstance(at, int) else []
    if not near:
        return None
    mask_candidates(prediction.get("top") or [], near[-1]["text"])
    return str(near[-1]["text"])


def _masked_edits(answer: dict[str, Any], found: list[list[PiiSpan]], policy: MaskPolicy) -> list[dict[str, Any]]:
    """The changes' ``old`` (by its place in the original) and ``new`` (by its place in the edited
    text) masked in place, and the edits' strings as their changes were; the masked edits."""
    edits = [edit for edit in answer.get("edits") or [] if isinstance(edit, dict)]
    hidden: dict[tuple[int, str], str] = {}  # (edit, field) -> its masked string
    for change in answer.get("changes") or []:
        for key, at, spans in (("old", change["start"], found[0]), ("new", change["edited_start"], found[1])):
            value = str(change.get(key, ""))
            inside = within(spans, at, at + len(value))
            touching = [s for s in spans if s.start <= at <= s.end] if not value else []
            if inside:
                change[key] = mask_text(value, inside, policy)
            else:
                change[key] = masked_string(value, policy)
            if inside or change[key] != value:
                hidden[(change["edit"], key)] = change[key]
            if touching and key == "old":  # an insertion into a value: its anchor word is part of it
                hidden[(change["edit"], "at")] = touching[0].label
    for index, edit in enumerate(edits):
        for key in ("old", "new"):
            if isinstance(edit.get(key), str):
                edit[key] = hidden.get((index, key), masked_string(edit[key], policy))
        if isinstance(edit.get("at"), str):
            side = edit["at"].partition(":")[0]
            label = hidden.get((index, "at"))
            edit["at"] = f"{side}:{label}" if label else masked_string(edit["at"], policy)
    return edits
