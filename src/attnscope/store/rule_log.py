"""The rule log: every evaluation of a rule file, one row per rule result, in the runs database
(``rule_log``, migration 2). A row names the rule file by its SHA-256, the run it was evaluated on
(or none, when the analysis was not stored), the rule, its severity, whether it passed (``NULL``:
it could not be evaluated) and the generation step, with the whole result as JSON.

Token texts in a result (``where.tokens``) leave the process here: they are masked as the run's
stored answer masks them (a token the answer shows as ``[PHONE]`` is logged as ``[PHONE]``); a
result logged without a run has the personal data found in each of its texts masked. Every other
text a result quotes (the rule's name — in its column too —, its note, description and selectors, a
counterfactual's edits) is masked too (:func:`mask_strings`). Deleting a run deletes its rows
(``ON DELETE CASCADE``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from attnscope.errors import InputError
from attnscope.governance.masking import mask_sequence
from attnscope.governance.privacy import mask_strings
from attnscope.store.runs import RunsStore, check_run_id, utc_now

SEVERITIES = ("info", "warning", "critical")


def log_rules(
    store: RunsStore, rules_sha256: str, results: Iterable[Mapping[str, Any]], *, run_id: str | None = None
) -> int:
    """Add ``results`` (the rule engine's, one per rule and step) to the log in one transaction;
    the number of rows added."""
    if not (isinstance(rules_sha256, str) and len(rules_sha256) == 64):
        raise InputError("the rule log needs the rule file's SHA-256 (64 hex digits)")
    shown = _shown_tokens(store, run_id)
    rows = []
    created = utc_now()
    for result in results:
        if result.get("severity") not in SEVERITIES or not isinstance(result.get("rule"), str):
            raise InputError(f"not a rule result: {dict(result)!r:.120}")
        kept = _masked(dict(result), shown)
        passed = kept.get("passed")
        where = kept.get("where") or {}
        rows.append((
            run_id, created, rules_sha256, kept["rule"], kept["severity"],
            None if passed is None else int(bool(passed)), where.get("step"),
            json.dumps(kept, ensure_ascii=False, allow_nan=False, default=_plain),
        ))  # fmt: skip
    with store._transaction() as db:  # the store's own lock and transaction
        db.executemany(
            "INSERT INTO rule_log (run_id, created, rules_sha256, rule, severity, passed, step, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def rule_log(store: RunsStore, *, run_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Logged results, newest first (of one run when ``run_id`` is given), each with its row's facts
    (``logged``: when, ``rules_sha256``, ``run_id``)."""
    if run_id is not None:
        check_run_id(run_id)
    clause, values = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
    with store._lock:
        rows = store._connection.execute(
            f"SELECT run_id, created, rules_sha256, result FROM rule_log {clause} ORDER BY id DESC LIMIT ?",
            [*values, max(1, min(int(limit), 100_000))],
        ).fetchall()
    return [
        {**json.loads(result), "logged": created, "rules_sha256": sha, "run_id": run}
        for run, created, sha, result in rows
    ]


def _shown_tokens(store: RunsStore, run_id: str | None) -> dict[int, str] | None:
    """{token index: text as the run's stored answer shows it}, or None without a run."""
    if run_id is None:
        return None
    answer = store.result(store.get(run_id))
    tokens = answer.get("tokens")
    if tokens is None and isinstance(answer.get("prompt"), dict):  # a generation: prompt + answer tokens
        tokens = answer["prompt"].get("tokens", []) + (answer.get("generated") or {}).get("tokens", [])
    return {int(t["index"]): str(t.get("text", "")) for t in tokens or [] if isinstance(t, dict) and "index" in t}


def _masked(result: dict[str, Any], shown: dict[int, str] | None) -> dict[str, Any]:
    """The result with its token texts as the run shows them (or with personal data masked) and any
    other text it quotes (a counterfactual's span, a note) masked."""
    where = dict(result.get("where") or {})
    tokens = [dict(token) for token in where.get("tokens") or [] if isinstance(token, Mapping)]
    if shown is not None:
        for token in tokens:
            index = token.get("index")
            token["text"] = shown.get(index, "") if isinstance(index, int) else ""
    else:  # a value split over several tokens is found in their texts joined
        mask_sequence(tokens, "mask")
    if tokens:
        where["tokens"] = tokens
        result["where"] = where
    # the texts the result quotes: the rule's name (a name may be "phone-13812345678"), a note, the
    # rule's own words and selectors (a literal may be a phone number), a counterfactual's span and
    # each of its edits
    for key in ("rule", "note", "description", "from", "to", "counterfactual"):
        if result.get(key) is not None:
            result[key] = mask_strings(result[key])
    return result


def _plain(value: Any) -> Any:
    """numpy numbers (a rule's value) as Python ones."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
