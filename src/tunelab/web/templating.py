"""The one Jinja2 environment the pages render with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"


def _app_context(request: Request) -> dict[str, Any]:
    """What every page needs to know about the app serving it."""
    app = request.scope.get("app")
    return {"vendor_missing": getattr(app.state, "web_vendor_missing", []) if app else []}


templates = Jinja2Templates(directory=WEB_DIR / "templates", context_processors=[_app_context])
