"""Wiring of the web layer into the FastAPI app: page routes, our static files and the npm libraries."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from tunelab.config import Settings
from tunelab.web.pages import router
from tunelab.web.templating import STATIC_DIR, templates

log = logging.getLogger(__name__)

NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"

# Only each library's built files are served, never the rest of node_modules.
VENDOR_DIRS = {"alpinejs": "dist", "htmx.org": "dist"}


def mount_web(app: FastAPI, settings: Settings) -> None:
    """Add the page routes, /static and /static/vendor/<package> to `app`."""
    del settings  # the pages hold no state of their own; everything comes through the JSON API
    app.include_router(router)
    app.state.web_vendor_missing = _mount_vendor(app, NODE_MODULES)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


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
