"""Guards against other web sites: the Host must be one we serve, unsafe requests must come from our origin, and
no other site may frame our pages.

A page on another site can make the user's browser send requests to this server (cross-site request forgery),
and a hostile DNS name can point at 127.0.0.1 (DNS rebinding). Browsers always send `Origin` on cross-site
POST, PUT, PATCH and DELETE requests; the CLI, the ops script and curl send none, so they pass. A page framed by
another site could be clicked through without the user seeing it (clickjacking), so every answer forbids framing.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunelab.api.errors import respond
from tunelab.api.limits import UNSAFE_METHODS, BodyLimitMiddleware
from tunelab.config import Settings

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A WebSocket's scope names ws/wss; its Origin is the page's http/https origin.
_WEB_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# Sent with every answer, pages, API and errors alike; /docs is ours too and needs no framing either.
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


def allowed_hosts(settings: Settings) -> list[str]:
    """Host names the server answers to: loopback, the address it listens on, and any configured ones."""
    own = f"[{settings.host}]" if ":" in settings.host else settings.host
    return sorted({*LOCAL_HOSTS, own, *settings.allowed_hosts})


def split_host(host: str) -> tuple[str, int | None] | None:
    """(name, port) of a Host header, the name lowercased without IPv6 brackets; None when it is not a host."""
    parsed = urlsplit(f"//{host}")
    try:
        port = parsed.port
    except ValueError:
        return None
    return (parsed.hostname, port) if parsed.hostname else None


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether a browser's Origin header names the site at `host` (the Host header) reached over `scheme` (the
    request's own, from the ASGI scope), default ports included: http://x and https://x are two sites."""
    origin_scheme, _, origin_host = origin.partition("://")
    if origin_scheme not in _DEFAULT_PORTS:
        return False  # "null" (sandboxed frames, file://) and anything that is not a web origin
    if origin_scheme != _WEB_SCHEMES.get(scheme):
        return False
    origin_site, served = split_host(origin_host), split_host(host)
    if origin_site is None or served is None:
        return False
    default = _DEFAULT_PORTS[origin_scheme]
    return (origin_site[0], origin_site[1] or default) == (served[0], served[1] or default)


class SameOriginMiddleware:
    """403 `forbidden_origin` for an unsafe request whose Origin is another site than the one it was sent to."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not same_origin(origin, headers.get("host", ""), scope["scheme"]):
                response = respond(
                    Request(scope, receive), 403, "forbidden_origin",
                    f"{scope['method']} requests from another site ({origin}) are refused",
                    {"origin": origin},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TrustedHostMiddleware:
    """400 `invalid_host`, in the usual error envelope (or page), for a Host header naming a host we do not serve."""

    def __init__(self, app: ASGIApp, allowed: list[str]):
        self.app = app
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            site = split_host(host)
            if site is None or site[0] not in self.allowed:
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


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SameOriginMiddleware)
    # Added after the checks, so it runs before them: a request for a host we do not serve goes no further.
    app.add_middleware(TrustedHostMiddleware, allowed=allowed_hosts(settings))
    # Outermost, so that the refusals above carry the headers too.
    app.add_middleware(SecurityHeadersMiddleware)
