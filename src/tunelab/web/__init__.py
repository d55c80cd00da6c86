"""Server-rendered pages: Jinja2 layouts whose Alpine.js components call the JSON API from the browser."""

from __future__ import annotations

from tunelab.web.app import mount_web, render_error_page

__all__ = ["mount_web", "render_error_page"]
