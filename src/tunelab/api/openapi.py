"""What the OpenAPI document says about errors: the envelope, and which statuses each route can answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

_DESCRIPTIONS = {
    400: "The request cannot be carried out as asked (e.g. `invalid_host`, `dataset_required`)",
    403: "Refused: a write from another web site (`forbidden_origin`)",
    404: "No such resource (`*_not_found`)",
    405: "The route does not take this method; the `Allow` header lists those it takes",
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


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these error statuses, each with the envelope as its body."""
    return {status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]} for status in statuses}


# Every route can meet these: the Host check (400) and request validation (422).
COMMON = (400, 422)
# Every route that takes a body: the body limit (413) and the cross-site check on writes (403).
WRITES = (400, 403, 413, 422)
