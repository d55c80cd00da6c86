"""Artifacts and their lineage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tunelab.api.deps import ServicesDep
from tunelab.domain.artifacts import Artifact, ArtifactCreate

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"])


@router.post("", status_code=201)
def create_artifact(body: ArtifactCreate, services: ServicesDep) -> Artifact:
    """Register an immutable artifact (a file or record, by URI)."""
    return services.artifacts.create(body)


@router.get("/{artifact_id}")
def get_artifact(artifact_id: str, services: ServicesDep) -> Artifact:
    """One artifact."""
    return services.artifacts.get(artifact_id)


@router.get("/{artifact_id}/lineage")
def get_lineage(artifact_id: str, services: ServicesDep) -> dict[str, Any]:
    """The experiments that produced this artifact and those that used it."""
    return services.artifacts.lineage(artifact_id)
