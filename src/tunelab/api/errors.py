"""One place that turns errors into the JSON envelope (API) or an error page (browsers)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab.domain.common import JSON_VALUE_ERRORS
from tunelab.errors import TuneLabError

log = logging.getLogger("tunelab")

# Renders an error for a browser: (request, status, code, message) -> an HTML response.
ErrorPage = Callable[[Request, int, str, str], Response]

_HTTP_CODES = {
    404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden", 413: "body_too_large",
}  # fmt: skip


def envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", "")


def respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    if page is not None and _wants_html(request):
        response = page(request, status, code, message)
    else:
        response = JSONResponse(envelope(status, code, message, details), status_code=status)
    response.headers.update(headers or {})
    return response


def validation_code(errors: list[dict[str, Any]]) -> str:
    """A body that is not JSON is invalid_json; free-form JSON past its limits is invalid_json_value."""
    types = {error.get("type") for error in errors}
    if "json_invalid" in types:
        return "invalid_json"
    return "invalid_json_value" if types & JSON_VALUE_ERRORS else "validation_error"


def install(app: FastAPI, error_page: ErrorPage | None = None) -> None:
    app.state.error_page = error_page

    @app.exception_handler(TuneLabError)
    async def domain_error(request: Request, exc: TuneLabError) -> Response:
        return respond(request, exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(first['loc'][1:]) or 'request'}: {first['msg']}"
        return respond(request, 422, validation_code(errors), message, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = "No such page or resource" if exc.status_code == 404 else str(exc.detail)
        details: dict[str, Any] = {}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            from tunelab.api.routing import allowed_methods

            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        if exc.status_code == 413:
            from tunelab.api.limits import LIMIT_SCOPE_KEY, limit_for, too_large

            message, details = too_large(request.scope.get(LIMIT_SCOPE_KEY, limit_for(request.url.path)))
        return respond(request, exc.status_code, code, message, details, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        from tunelab.api.security import SECURITY_HEADERS

        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Starlette answers this one outside every middleware, so it sets the security headers itself.
        headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
        return respond(request, 500, "internal_error", "Something went wrong on the server; the log has details",
                       headers=headers)  # fmt: skip
