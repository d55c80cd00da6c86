"""The JSON operations script: one request on stdin, one answer on stdout.

Request: {"op": "create_experiment", ...fields}. Answer: the same JSON as the HTTP API, exit 0;
or {"error": {"code", "message", "details"}}, exit 1. It goes through a running server when one owns
the database, and opens the file itself when none does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from tunelab.client import HttpTracker, running_server
from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter
from tunelab.errors import BadRequest, TuneLabError, Unprocessable
from tunelab.services.experiments import ExperimentService
from tunelab.services.tracker import ExperimentTracker
from tunelab.store import Database

OPS = (
    "create_experiment", "get_experiment", "list_experiments", "update_status", "store_results",
    "find_by_input_artifacts",
)  # fmt: skip


@contextmanager
def open_tracker(settings: Settings) -> Iterator[ExperimentTracker]:
    url = running_server(settings)
    if url:
        yield HttpTracker(url)
        return
    settings.ensure_dirs()
    db = Database(settings.db_path)
    try:
        yield ExperimentService(db)
    finally:
        db.close()


def _field(request: dict[str, Any], name: str) -> Any:
    if name not in request:
        raise Unprocessable(f"Operation {request['op']!r} needs the field {name!r}", code="missing_field",
                            details={"field": name})  # fmt: skip
    return request[name]


def _results(request: dict[str, Any]) -> dict[str, str]:
    results = _field(request, "results")
    if not isinstance(results, dict):
        raise Unprocessable("results must be an object of output name to artifact id", code="validation_error")
    return results


def dispatch(tracker: ExperimentTracker, request: dict[str, Any]) -> Any:
    """Carry out one request and return JSON-ready data."""
    op = request.get("op")
    handlers: dict[str, Callable[[], Any]] = {
        "create_experiment": lambda: tracker.create_experiment(ExperimentCreate(**_definition(request))),
        "get_experiment": lambda: tracker.get_experiment(_field(request, "experiment_id")),
        "list_experiments": lambda: tracker.list_experiments(ExperimentFilter(**(request.get("filter") or {}))),
        "update_status": lambda: _success(
            tracker.update_status(_field(request, "experiment_id"), _field(request, "status"), request.get("error"))
        ),
        "store_results": lambda: _success(tracker.store_results(_field(request, "experiment_id"), _results(request))),
        "find_by_input_artifacts": lambda: tracker.find_by_input_artifacts(list(_field(request, "artifact_ids"))),
    }
    if op not in handlers:
        raise BadRequest(f"Unknown op {op!r}", code="unknown_op", details={"ops": list(OPS)})
    return _jsonable(handlers[str(op)]())


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


def run(raw: str, settings: Settings) -> tuple[dict[str, Any] | list[Any], int]:
    """(answer, exit code) for one raw request."""
    try:
        request = json.loads(raw)
        if not isinstance(request, dict):
            raise BadRequest("The request must be a JSON object with an 'op' field", code="invalid_request")
        with open_tracker(settings) as tracker:
            return dispatch(tracker, request), 0
    except json.JSONDecodeError as exc:
        return BadRequest(f"The request is not valid JSON: {exc}", code="invalid_json").to_dict(), 1
    except ValidationError as exc:
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        details = {"errors": [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]}
        return Unprocessable(message, code="validation_error", details=details).to_dict(), 1
    except TuneLabError as exc:
        return exc.to_dict(), 1
