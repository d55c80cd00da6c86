"""Builds the FastAPI application for one data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import tunelab
from tunelab.api import errors, openapi, security
from tunelab.api.routes import artifacts, experiments, health, runs
from tunelab.config import Settings
from tunelab.services import Services
from tunelab.store import Database


def create_app(settings: Settings) -> FastAPI:
    settings.ensure_dirs()
    services = Services.build(Database(settings.db_path))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        services.db.close()

    app = FastAPI(
        title="TuneLab",
        version=tunelab.__version__,
        description="Fine-tune MusicGen with LoRA adapters from human feedback.",
        lifespan=lifespan,
        docs_url=None,  # the web layer serves /docs from the npm copy of Swagger UI, not from a CDN
        redoc_url=None,  # ReDoc would come from a CDN too; /docs covers it
    )
    app.state.settings = settings
    app.state.services = services
    errors.install(app)
    security.install(app, settings)
    openapi.install(app)
    for module in (health, experiments, runs, artifacts):
        app.include_router(module.router)
    from tunelab.web import mount_web

    mount_web(app, settings)
    return app
