"""Liveness and identity of the server."""

from __future__ import annotations

from fastapi import APIRouter

import tunelab
from tunelab.api.deps import SettingsDep
from tunelab.api.openapi import COMMON, errors
from tunelab.api.routing import StrictJSONRoute

router = APIRouter(prefix="/api", tags=["health"], route_class=StrictJSONRoute)


@router.get("/health", responses=errors(*COMMON))
async def health(settings: SettingsDep) -> dict[str, str]:
    """Says the server is up, its version and which database it owns."""
    return {"status": "ok", "version": tunelab.__version__, "db": str(settings.db_path)}
