"""Dependency aliases and path parameters for routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from tunelab.config import Settings
from tunelab.domain.common import ID_REGEX
from tunelab.domain.experiments import RESERVED_EXPERIMENT_IDS
from tunelab.services import Services


# Async, though they block nothing: FastAPI runs a sync dependency in the thread pool, a hop per request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ExperimentId = Annotated[
    str,
    Path(pattern=ID_REGEX, description="An experiment id (exp-…).",
         json_schema_extra={"not": {"enum": list(RESERVED_EXPERIMENT_IDS)}}),
]  # fmt: skip
# The path of /api/experiments/{id} itself, which must not match the routes beside it (api/routing.py).
EXPERIMENT_PATH = "/{experiment_id:experiment_id}"
RunId = Annotated[str, Path(pattern=ID_REGEX, description="A run id (run-…).")]
ArtifactId = Annotated[str, Path(pattern=ID_REGEX, description="An artifact id (art-…).")]
