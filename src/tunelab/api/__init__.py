"""The JSON API under /api."""

from __future__ import annotations

from fastapi import FastAPI

from tunelab.api import errors, openapi, security
from tunelab.api.errors import ErrorPage
from tunelab.api.routes import (
    abtests,
    adapters,
    artifacts,
    datasets,
    experiments,
    generations,
    health,
    logs,
    models,
    runs,
    training,
)
from tunelab.config import Settings


def install(app: FastAPI, settings: Settings, error_page: ErrorPage | None = None) -> None:
    """Add the API's routes, error handlers, security middleware and OpenAPI schema to `app`; browsers that ask
    for a page get their errors from `error_page`."""
    errors.install(app, error_page)
    security.install(app, settings)
    openapi.install(app)
    for module in (health, experiments, runs, logs, training, artifacts, models, datasets, adapters,
                   generations, abtests):  # fmt: skip
        app.include_router(module.router)
