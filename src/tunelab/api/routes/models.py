"""Base models and the studio's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from tunelab.api.deps import ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.common import ID_REGEX, Page
from tunelab.domain.models import BaseModelCreate, BaseModelInfo, SettingsUpdate, StudioSettings

router = APIRouter(prefix="/api", tags=["models"], route_class=StrictJSONRoute)
ModelId = Annotated[str, Path(pattern=ID_REGEX, description="A base model id (tiny-musicgen, …).")]


@router.get("/models", responses=errors(*COMMON))
async def list_models(services: ServicesDep) -> Page[BaseModelInfo]:
    """Every registered base model; `current` marks the one generation uses and runs train on."""
    items = await blocking(services.models.list)
    return Page(items=items, total=len(items), page=1, page_size=max(1, len(items)))


@router.post(
    "/models",
    status_code=201,
    responses={**errors(*WRITES, 409), 201: links("model_id", {"get": ("GET", "/api/models/{model_id}")})},
)
async def add_model(body: BaseModelCreate, services: ServicesDep) -> BaseModelInfo:
    """Register a MusicGen folder in Hugging Face format (config, safetensors weights, processor), checked and
    described without loading it: 422 `invalid_model` with the reason, 409 `model_exists`, 422 `path_not_allowed`
    outside the data dir and the import roots. The first model registered becomes the current one."""
    return await blocking(services.models.add, body)


@router.get("/models/{model_id}", responses=errors(*COMMON, 404))
async def get_model(model_id: ModelId, services: ServicesDep) -> BaseModelInfo:
    """One base model."""
    return await blocking(services.models.get, model_id)


@router.get("/settings", responses=errors(*COMMON))
async def get_settings(services: ServicesDep) -> StudioSettings:
    """The studio's settings."""
    return await blocking(services.models.studio_settings)


@router.patch("/settings", responses=errors(*WRITES))
async def update_settings(body: SettingsUpdate, services: ServicesDep) -> StudioSettings:
    """Change the current base model (422 `model_not_found` for one not registered)."""
    return await blocking(services.models.update_settings, body)
