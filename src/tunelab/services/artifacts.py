"""Artifacts: register them, read them, and see which experiments used or produced them."""

from __future__ import annotations

from typing import Any

from tunelab.domain.artifacts import Artifact, ArtifactCreate
from tunelab.domain.common import utcnow
from tunelab.errors import Conflict, NotFound
from tunelab.services.experiments import new_id
from tunelab.store import artifacts as store
from tunelab.store import experiments as experiment_store
from tunelab.store.db import Database


class ArtifactService:
    def __init__(self, db: Database):
        self.db = db

    def create(self, data: ArtifactCreate) -> Artifact:
        with self.db.transaction() as con:
            artifact_id = data.id or new_id("art")
            if store.get(con, artifact_id):
                raise Conflict(f"Artifact {artifact_id!r} exists; artifacts are immutable", code="artifact_exists")
            store.insert(con, {**data.model_dump(), "id": artifact_id, "created_at": utcnow()})
            artifact = store.get(con, artifact_id)
        assert artifact is not None
        return artifact

    def get(self, artifact_id: str) -> Artifact:
        with self.db.read() as con:
            artifact = store.get(con, artifact_id)
        if artifact is None:
            raise NotFound(f"Artifact {artifact_id!r} does not exist", code="artifact_not_found")
        return artifact

    def lineage(self, artifact_id: str) -> dict[str, Any]:
        """Which experiments produced this artifact, and which used it as an input."""
        artifact = self.get(artifact_id)
        with self.db.read() as con:
            links = experiment_store.find_by_artifact(con, artifact_id)
        return {
            "artifact": artifact,
            "produced_by": [{"experiment_id": e} for e, d in links if d == "output"],
            "used_by": [{"experiment_id": e} for e, d in links if d == "input"],
        }
