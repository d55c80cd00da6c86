"""Domain errors: each carries its HTTP status and a stable code.

TuneLabError
 ├── NotFound (404)                 code *_not_found
 ├── Conflict (409)                 name taken, invalid status transition, …
 ├── BadRequest (400)               a request that cannot be carried out as asked
 ├── PayloadTooLarge (413)          a request body past the route's limit
 ├── Unprocessable (422)            input that fails validation
 ├── BadServerResponse (502)        a TuneLab server answered with something that is not its JSON API
 ├── StoreBusy (503)                the database is held by another process
 └── ServerUnavailable (503)        the server that holds the database does not answer
"""

from __future__ import annotations

from typing import Any


class TuneLabError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class NotFound(TuneLabError):
    status = 404
    code = "not_found"


class Conflict(TuneLabError):
    status = 409
    code = "conflict"


class BadRequest(TuneLabError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(TuneLabError):
    status = 413
    code = "body_too_large"


class Unprocessable(TuneLabError):
    status = 422
    code = "validation_error"


class BadServerResponse(TuneLabError):
    status = 502
    code = "bad_server_response"


class StoreBusy(TuneLabError):
    status = 503
    code = "store_locked"


class ServerUnavailable(TuneLabError):
    status = 503
    code = "server_unavailable"
