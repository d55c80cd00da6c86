"""Artifacts and their lineage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tunelab.api.deps import ArtifactId, ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.artifacts import Artifact, ArtifactCreate

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"], route_class=StrictJSONRoute)


CREATED = links(
    "artifact_id",
    {"get": ("GET", "/api/artifacts/{artifact_id}"), "lineage": ("GET", "/api/artifacts/{artifact_id}/lineage")},
)


@router.post("", status_code=201, responses={**errors(*WRITES, 409), 201: CREATED})
async def create_artifact(body: ArtifactCreate, services: ServicesDep) -> Artifact:
    """Register an immutable artifact (a file or record, by URI)."""
    return await blocking(services.artifacts.create, body)


@router.get("/{artifact_id}", responses=errors(*COMMON, 404))
async def get_artifact(artifact_id: ArtifactId, services: ServicesDep) -> Artifact:
    """One artifact."""
    return await blocking(services.artifacts.get, artifact_id)


@router.get("/{artifact_id}/lineage", responses=errors(*COMMON, 404))
async def get_lineage(artifact_id: ArtifactId, services: ServicesDep) -> dict[str, Any]:
    """The experiments that produced this artifact and those that used it."""
    return await blocking(services.artifacts.lineage, artifact_id)
