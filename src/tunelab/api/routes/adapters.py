"""Adapter records (the registry grows here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from tunelab.api.deps import ServicesDep
from tunelab.api.openapi import COMMON, errors
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.adapters import Adapter
from tunelab.domain.common import ID_REGEX

router = APIRouter(prefix="/api/adapters", tags=["adapters"], route_class=StrictJSONRoute)
AdapterId = Annotated[str, Path(pattern=ID_REGEX, description="An adapter id (adp-…).")]


@router.get("/{adapter_id}", responses=errors(*COMMON, 404))
async def get_adapter(adapter_id: AdapterId, services: ServicesDep) -> Adapter:
    """One adapter with its provenance (experiment, run, dataset, base model) and training config."""
    return await blocking(services.adapters.get, adapter_id)
