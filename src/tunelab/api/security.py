"""Guards against other web sites: the Host must be one we serve, and unsafe requests must come from our origin.

A page on another site can make the user's browser send requests to this server (cross-site request forgery),
and a hostile DNS name can point at 127.0.0.1 (DNS rebinding). Browsers always send `Origin` on cross-site
POST, PUT, PATCH and DELETE requests; the CLI, the ops script and curl send none, so they pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tunelab.api.errors import respond
from tunelab.config import Settings

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# `testserver` is the Host header of Starlette's TestClient.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "testserver")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_hosts(settings: Settings) -> list[str]:
    """Host names the server answers to: loopback, the address it listens on, and any configured ones."""
    own = f"[{settings.host}]" if ":" in settings.host else settings.host
    return sorted({*LOCAL_HOSTS, own, *settings.allowed_hosts})


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's Origin header names the site at `host` (the Host header), default ports included."""
    parsed = urlsplit(origin)
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname:
        return False  # "null" (sandboxed frames, file://) and anything that is not a web origin
    served = urlsplit(f"//{host}")
    try:
        origin_port, served_port = parsed.port, served.port
    except ValueError:
        return False
    default = _DEFAULT_PORTS[parsed.scheme]
    return (parsed.hostname, origin_port or default) == (served.hostname, served_port or default)


class SameOriginMiddleware:
    """403 `forbidden_origin` for an unsafe request whose Origin is another site than the one it was sent to."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not same_origin(origin, headers.get("host", "")):
                response = respond(
                    Request(scope, receive), 403, "forbidden_origin",
                    f"{scope['method']} requests from another site ({origin}) are refused",
                    {"origin": origin},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(host: str) -> str | None:
    """The name in a Host header, lowercased, without port or IPv6 brackets; None when it is not a host."""
    try:
        parsed = urlsplit(f"//{host}")
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return parsed.hostname or None


class TrustedHostMiddleware:
    """400 `invalid_host`, in the usual error envelope (or page), for a Host header naming a host we do not serve."""

    def __init__(self, app: ASGIApp, allowed: list[str]):
        self.app = app
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            if host_name(host) not in self.allowed:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = respond(
                    Request(scope, receive), 400, "invalid_host",
                    f"this server does not answer to the host name {host!r}; add it to TUNELAB_ALLOWED_HOSTS "
                    "if it is yours",
                    {"host": host},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(SameOriginMiddleware)
    # Added last, so it runs first: a request for a host we do not serve goes no further.
    app.add_middleware(TrustedHostMiddleware, allowed=allowed_hosts(settings))
