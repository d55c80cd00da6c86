"""The JSON operations script: one request on stdin, one answer on stdout.

Request: {"op": "create_experiment", ...fields}. Answer: the same JSON as the HTTP API, exit 0;
or {"error": {"code", "message", "details"}}, exit 1. It goes through a running server when one owns
the database, and opens the file itself when none does, saying which (on stderr, through `notify`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from tunelab.client import open_experiments, opening_note
from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter
from tunelab.errors import BadRequest, TuneLabError, Unprocessable
from tunelab.services.tracker import ExperimentTracker

log = logging.getLogger("tunelab.ops")
# Where notes for the user go (stderr for `tunelab ops`): stdout holds the answer and nothing else.
Notify = Callable[[str], None]

OPS = (
    "create_experiment", "get_experiment", "list_experiments", "update_status", "store_results",
    "find_by_input_artifacts",
)  # fmt: skip


@contextmanager
def open_tracker(request: dict[str, Any], settings: Settings, notify: Notify) -> Iterator[ExperimentTracker]:
    """The tracker for `request`: only create_experiment creates a database that does not exist yet."""
    with open_experiments(settings, create=request.get("op") == "create_experiment") as (tracker, opened):
        note = opening_note(tracker, opened)
        if note:
            notify(note)
        yield tracker


def _field(request: dict[str, Any], name: str) -> Any:
    if name not in request:
        raise Unprocessable(f"Operation {request['op']!r} needs the field {name!r}", code="missing_field",
                            details={"field": name})  # fmt: skip
    return request[name]


def _invalid(name: str, expected: str) -> Unprocessable:
    return Unprocessable(f"{name} must be {expected}", code="validation_error",
                         details={"field": name, "expected": expected})  # fmt: skip


def _text(request: dict[str, Any], name: str) -> str:
    value = _field(request, name)
    if not isinstance(value, str) or not value:
        raise _invalid(name, "a non-empty string")
    return value


def _optional_text(request: dict[str, Any], name: str) -> str | None:
    value = request.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(name, "a string or null")
    return value


def _filter(request: dict[str, Any]) -> ExperimentFilter:
    value = request.get("filter")
    if value is None:
        return ExperimentFilter()
    if not isinstance(value, dict):
        raise _invalid("filter", "an object")
    return ExperimentFilter.model_validate(value)


def _results(request: dict[str, Any]) -> dict[str, str]:
    results = _field(request, "results")
    if not isinstance(results, dict) or not all(isinstance(v, str) for v in results.values()):
        raise _invalid("results", "an object of output name to artifact id")
    return results


def _artifact_ids(request: dict[str, Any]) -> list[str]:
    ids = _field(request, "artifact_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _invalid("artifact_ids", "a list of artifact id strings")
    return ids


def dispatch(tracker: ExperimentTracker, request: dict[str, Any]) -> Any:
    """Carry out one request and return JSON-ready data."""
    op = request.get("op")
    handlers: dict[str, Callable[[], Any]] = {
        "create_experiment": lambda: tracker.create_experiment(ExperimentCreate(**_definition(request))),
        "get_experiment": lambda: tracker.get_experiment(_text(request, "experiment_id")),
        "list_experiments": lambda: tracker.list_experiments(_filter(request)),
        "update_status": lambda: _success(
            tracker.update_status(
                _text(request, "experiment_id"), _text(request, "status"), _optional_text(request, "error")
            )
        ),
        "store_results": lambda: _success(tracker.store_results(_text(request, "experiment_id"), _results(request))),
        "find_by_input_artifacts": lambda: tracker.find_by_input_artifacts(_artifact_ids(request)),
    }
    if not isinstance(op, str) or op not in handlers:
        raise BadRequest(f"Unknown op {op!r}", code="unknown_op", details={"ops": list(OPS)})
    return _jsonable(handlers[op]())


def _definition(request: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in request.items() if k != "op"}
    if "experiment_id" in fields:
        fields["id"] = fields.pop("experiment_id")
    return fields


def _success(experiment: BaseModel) -> dict[str, Any]:
    return {"success": True, "experiment": experiment}


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


_SURROGATE = " (a \\uD800-\\uDFFF escape must be half of a surrogate pair)"
# Plainer words for the parser's errors that do not explain themselves.
_HINTS = {"recursion limit": " (nested more than 200 levels deep)", "surrogate": _SURROGATE,
          "end of hex escape": _SURROGATE}  # fmt: skip


def parse_request(raw: bytes | str) -> Any:
    """The JSON value `raw` holds, or invalid_json saying what is wrong and where."""
    if not raw.strip():
        raise BadRequest("The request is empty: send one JSON object on stdin", code="invalid_json")
    if isinstance(raw, bytes):
        _require_utf8(raw)
    # pydantic-core's parser, unlike the json module, refuses NaN and lone surrogates and stops at a fixed depth
    # (200) instead of overflowing Python's stack; its errors say where.
    try:
        return from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        where = re.search(r"at line (\d+) column (\d+)$", str(exc))
        details = {"line": int(where[1]), "column": int(where[2])} if where else {}
        hint = next((hint for words, hint in _HINTS.items() if words in str(exc)), "")
        raise BadRequest(f"The request is not valid JSON: {exc}{hint}", code="invalid_json", details=details) from None


def _require_utf8(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The request is not valid JSON: it is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x})",
            code="invalid_json", details={"byte": exc.start},
        ) from None  # fmt: skip


def run(raw: bytes | str, settings: Settings, notify: Notify = log.info) -> tuple[dict[str, Any] | list[Any], int]:
    """(answer, exit code) for one raw request; whatever happens, the answer is JSON."""
    try:
        request = parse_request(raw)
        if not isinstance(request, dict):
            raise BadRequest("The request must be a JSON object with an 'op' field", code="invalid_request")
        with open_tracker(request, settings, notify) as tracker:
            return dispatch(tracker, request), 0
    except ValidationError as exc:
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        details = {"errors": [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]}
        return Unprocessable(message, code="validation_error", details=details).to_dict(), 1
    except TuneLabError as exc:
        return exc.to_dict(), 1
    except Exception as exc:  # the contract is one JSON answer on stdout, never a traceback
        log.exception("ops: unexpected error")
        message = f"Unexpected error: {type(exc).__name__}: {exc}"
        return TuneLabError(message, code="internal_error", details={"type": type(exc).__name__}).to_dict(), 1
