"""What the OpenAPI document says about errors: the envelope, and which statuses each route can answer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from tunelab.domain.common import MAX_INT

_DESCRIPTIONS = {
    400: "The request cannot be carried out as asked (e.g. `invalid_host`, `dataset_required`)",
    403: "Refused: a write from another web site (`forbidden_origin`)",
    404: "No such resource (`*_not_found`)",
    405: "The path does not take this method (`method_not_allowed`); the `Allow` header lists those it takes",
    409: "Conflicts with the resource's state (a name taken, an invalid status transition, a run that has ended)",
    413: "The request body is larger than the route takes (`body_too_large`)",
    422: "Invalid input (`validation_error`, `invalid_json`, `invalid_json_value` or a more specific code)",
    503: "The database is held by another process (`store_locked`)",
}


class ErrorBody(BaseModel):
    code: str = Field(description="Stable and machine-readable, e.g. experiment_not_found.")
    message: str = Field(description="For people.")
    details: dict[str, Any] = Field(description="Facts about the error, depending on the code.")


class ErrorEnvelope(BaseModel):
    """Every error answer of the API."""

    error: ErrorBody


_ALLOW = {"Allow": {"description": "The methods the path takes, e.g. `GET`.", "schema": {"type": "string"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these error statuses, each with the envelope as its body."""
    return {
        status: {
            "model": ErrorEnvelope,
            "description": _DESCRIPTIONS[status],
            **({"headers": _ALLOW} if status == 405 else {}),
        }
        for status in statuses
    }


# Every route can meet these: the Host check (400) and request validation (422).
COMMON = (400, 422)
# Every POST, PATCH and DELETE: also the cross-site check (403) and the body limit (413), which apply to the
# methods that may carry a body (api/security.py, api/limits.py). No route answers 503: the server opens the
# database before it serves, and only then can `store_locked` happen (the CLI and the ops script meet it).
WRITES = (400, 403, 413, 422)
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def links(parameter: str, targets: dict[str, tuple[str, str]], **more: str) -> dict[str, Any]:
    """A created resource's OpenAPI links, by name: its `id` fills `parameter` of each (method, path), and each
    of `more` (path parameter -> a field of the answer) fills another, so clients and schemathesis' stateful phase
    can follow a create with what it enables."""
    return {
        "links": {
            name: {
                "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower(),
                "parameters": {
                    parameter: "$response.body#/id",
                    **{name: f"$response.body#/{field}" for name, field in more.items()},
                },
            }
            for name, (method, path) in targets.items()
        }
    }


def exact_bounds(node: Any) -> None:
    """Put back integer bounds that FastAPI's OpenAPI models hold as floats: a float cannot hold 2**63 - 1, and
    9.223372036854776e18 would promise a BIGINT one past its largest value."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = MAX_INT if value == float(MAX_INT) else int(value)
            else:
                exact_bounds(value)
    elif isinstance(node, list):
        for item in node:
            exact_bounds(item)


def install(app: FastAPI) -> None:
    """The app's /openapi.json with exact integer bounds."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            exact_bounds(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
