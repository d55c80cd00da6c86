"""Wiring of the web layer into the FastAPI app: page routes, our static files and the npm libraries."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from tunelab.config import Settings
from tunelab.web.pages import router
from tunelab.web.templating import STATIC_DIR, templates

log = logging.getLogger(__name__)

NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"

# Only each library's built files are served, never the rest of node_modules (swagger-ui-dist is all built files).
VENDOR_DIRS = {
    "alpinejs": "dist",
    "htmx.org": "dist",
    "swagger-ui-dist": ".",
    "@xterm/xterm": ".",
    "@xterm/addon-fit": "lib",
    "uplot": "dist",
    "wavesurfer.js": "dist",
}
SWAGGER = "/static/vendor/swagger-ui-dist"


def mount_web(app: FastAPI, settings: Settings) -> None:
    """Add the page routes, /docs, /static and /static/vendor/<package> to `app`."""
    del settings  # the pages hold no state of their own; everything comes through the JSON API
    app.include_router(router)
    _add_api_docs(app)
    app.state.web_vendor_missing = _mount_vendor(app, NODE_MODULES)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _add_api_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from our own copy (FastAPI's default loads it from a CDN: blank offline)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
        )


def _mount_vendor(app: FastAPI, node_modules: Path) -> list[str]:
    """Mount each front-end library that is installed; return the names of those that are not."""
    missing = []
    for package, subdir in VENDOR_DIRS.items():
        directory = node_modules / package / subdir
        if directory.is_dir():
            app.mount(f"/static/vendor/{package}", StaticFiles(directory=directory), name=f"vendor-{package}")
        else:
            missing.append(package)
    if missing:
        log.warning(
            "front-end libraries %s not found under %s: pages will render without interactivity; "
            "run `npm ci` in the repository root",
            ", ".join(missing),
            node_modules,
        )
    return missing


def render_error_page(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    """The HTML counterpart of the JSON error envelope, for browsers."""
    context = {"status": status, "code": code, "message": message}
    return templates.TemplateResponse(request, "error.html", context, status_code=status)
