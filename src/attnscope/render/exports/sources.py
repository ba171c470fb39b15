"""Where an export's numbers come from: a trace file, a stored run (``attnscope runs``), or a JSON
answer saved from the API, the page or a command's ``--json`` (drawn as it is, like a run's).

A run's ``result.json`` is the JSON answer of its kind: the answer views draw it as it is (it was
masked when it was stored). A view that needs attention the run does not hold re-captures the run's
text on the run's own model — only when that model is installed here and its fingerprint equals the
run's, and only when the stored text is the text that was run (nothing was masked out of it); else a
one-line refusal. Never another model's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.errors import AttnscopeError, InputError

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel
    from attnscope.store.runs import Run


@dataclass
class Source:
    """What ``TRACE_OR_RUN`` names: a trace file's trace, or a run and its answer."""

    name: str  # for the default file name: the trace file's stem or the run id
    trace: Trace | None = None
    answer: dict[str, Any] | None = None
    run: Run | None = None
    model: LoadedModel | None = None


MAX_ANSWER_BYTES = 256 * 1024 * 1024


def read_answer(path: Path) -> dict[str, Any]:
    """A JSON answer saved from the API, the page (Export → Numbers JSON) or a CLI's ``--json``:
    one object, strict JSON (NaN and Infinity refused), at most MAX_ANSWER_BYTES."""
    import json

    if path.stat().st_size > MAX_ANSWER_BYTES:
        raise InputError(f"{path} is over {MAX_ANSWER_BYTES // 2**20} MB: not an answer this command reads")

    def constant(name: str) -> Any:
        raise InputError(f"{path} holds {name}, which is not JSON")

    try:
        answer = json.loads(path.read_bytes().decode("utf-8"), parse_constant=constant)
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    if not isinstance(answer, dict):
        raise InputError(f"{path} holds a JSON {type(answer).__name__}, not an answer (a JSON object)")
    return answer


def is_run_id(value: str) -> bool:
    from attnscope.store.runs import RUN_ID

    return bool(RUN_ID.fullmatch(value))


def open_source(value: str, store_folder: Path | None = None) -> Source:
    """A trace file (a path that exists) or a stored run (16 hex digits); anything else is refused."""
    path = Path(value)
    if path.is_file() and path.suffix.lower() == ".json":
        return Source(path.stem, answer=read_answer(path))
    if path.is_file():
        from attnscope.capture.trace import Trace

        return Source(path.stem, trace=Trace.load(path))
    if path.exists():
        raise InputError(f"{value} is not a trace file")
    if not is_run_id(value):
        raise InputError(f"no trace file {value!r}, and it is not a run id (16 hexadecimal digits)")
    from attnscope.store.runs import RunsStore

    with RunsStore(store_folder) as store:
        run = store.get(value)
        answer = store.result(run)
    return Source(run.id, answer=answer, run=run)


def recapture(
    run: Run, answer: dict[str, Any], *, device: str = "auto", model: LoadedModel | None = None
) -> tuple[LoadedModel, Trace]:
    """The run's text captured again on the run's model (``model`` when given, else loaded by the
    run's spec): refused when the model is missing, is another model, or the stored text was masked."""
    if answer.get("result") == "generation":
        raise InputError(
            f"run {run.id} is a generation: export its timeline or step-attribution view, or save the generation "
            "as a trace file for the attention views"
        )
    record = answer.get("provenance") if isinstance(answer.get("provenance"), dict) else {}
    if (record or {}).get("masked_spans"):
        raise InputError(
            f"run {run.id}'s text was stored with personal data masked: its attention cannot be recomputed"
        )
    if model is None:
        from attnscope.models import load_model

        try:
            model = load_model(run.model_spec, device=device)
        except AttnscopeError as error:
            raise InputError(
                f"run {run.id} needs attention its answer does not hold, and its model {run.model_spec} is not "
                f"available here ({error})"
            ) from None
    if model.fingerprint != run.model_fingerprint:
        raise InputError(
            f"run {run.id} was made with {run.model_spec} (fingerprint {run.model_fingerprint[:12]}); the model here "
            f"is {model.spec} (fingerprint {model.fingerprint[:12]}): not exported (never another model's numbers)"
        )
    from attnscope.capture import capture

    return model, capture(model, run.text)
