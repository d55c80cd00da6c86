"""The TuneLab application for one data dir: the JSON API and the pages, two faces over one set of services.

Neither face imports the other: the API answers JSON and renders an error page through the renderer it is given;
the pages take their services from the app, as the API does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import tunelab
from tunelab import api, web
from tunelab.config import Settings
from tunelab.executors.base import Executor
from tunelab.services import Services
from tunelab.store import Database


def create_app(settings: Settings, executor: Executor | None = None) -> FastAPI:
    """The app over the data dir of `settings`; training runs go to `executor` (default: the local one)."""
    settings.ensure_dirs()
    services = Services.build(Database(settings.db_path), settings, executor)
    if settings.bootstrap_model:
        services.models.ensure_default()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not services.db.closed:  # (an app whose lifespan already ended once serves nothing from its database)
            services.training.begin()  # re-attach to runs left running, then schedule queued ones
            services.generations.begin()  # queue again unfinished jobs; start the worker
        yield
        services.generations.stop()  # its unfinished jobs stay pending for the next start
        services.training.stop()  # runs go on under their supervisors; a later start follows them again
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
    api.install(app, settings, error_page=web.render_error_page)
    web.mount_web(app, settings)
    return app
