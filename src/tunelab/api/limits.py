"""Request body limits: a body past its route's limit is refused with 413 `body_too_large`, never read whole.

A declared Content-Length past the limit is answered at once; a body without one (chunked) is counted as it
arrives, and the read that crosses the limit raises, so at most the limit is ever held in memory. Only the methods
that carry a body are limited: no GET route reads one, so a GET is never refused for its body (and its OpenAPI
operation need not list 413).
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunelab.api.errors import respond
from tunelab.domain.adapters import MAX_ARCHIVE_BYTES
from tunelab.domain.datasets import MAX_AUDIO_BYTES

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LIMIT_SCOPE_KEY = "tunelab.max_body_bytes"
# Every JSON body is far smaller (free-form JSON fields take 256 KiB each); the routes below take more.
DEFAULT_LIMIT = 1024 * 1024
# 10,000 metric points with the longest keys and timestamps come to about 4 MB; a dataset item carries up to two
# clips of MAX_AUDIO_BYTES each (each file is also held to that limit on its own: 413 file_too_large).
ROUTE_LIMITS = [
    (re.compile(r"^/api/runs/[^/]+/metrics$"), 16 * 1024 * 1024),
    (re.compile(r"^/api/datasets/[^/]+/items$"), 2 * MAX_AUDIO_BYTES + 1024 * 1024),
    (re.compile(r"^/api/adapters/import$"), MAX_ARCHIVE_BYTES + 1024 * 1024),
]


def limit_for(path: str) -> int:
    return next((limit for pattern, limit in ROUTE_LIMITS if pattern.match(path)), DEFAULT_LIMIT)


def too_large(limit: int) -> tuple[str, dict[str, int]]:
    return f"The request body is larger than this route takes ({limit} bytes)", {"max_bytes": limit}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        scope[LIMIT_SCOPE_KEY] = limit
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            message, details = too_large(limit)
            await respond(Request(scope), 413, "body_too_large", message, details)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # An HTTPException passes through FastAPI's body parsing to the error handler (see errors.py).
                raise HTTPException(413)
            return message

        await self.app(scope, counted, send)
