"""Artifacts: register them, read them, and see which experiments used or produced them."""

from __future__ import annotations

from typing import Any

from tunelab.domain.artifacts import Artifact, ArtifactCreate
from tunelab.domain.common import utcnow
from tunelab.errors import Conflict, NotFound
from tunelab.services.experiments import new_id
from tunelab.store import artifacts as store
from tunelab.store import datasets as dataset_store
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
            dataset = self._dataset_sources(con, artifact)
        return {
            "artifact": artifact,
            "produced_by": [{"experiment_id": e} for e, d in links if d == "output"],
            "used_by": [{"experiment_id": e} for e, d in links if d == "input"],
            **({"dataset": dataset} if dataset else {}),
        }

    @staticmethod
    def _dataset_sources(con: Any, artifact: Artifact) -> dict[str, Any] | None:
        """For a dataset export: its dataset and where the dataset's items came from (the generations rated, the
        A/B tests voted), so lineage reaches from an adapter's run back to the clips listeners judged."""
        dataset_id = (artifact.metadata or {}).get("dataset_id")
        if artifact.type != "dataset_export" or not isinstance(dataset_id, str):
            return None
        found = dataset_store.get(con, dataset_id)
        if found is None:
            return None
        sources = [str(item["source"]) for item in dataset_store.items(con, dataset_id)]
        generations = sorted({s.split(":", 1)[1] for s in sources if s.startswith("generation:")})
        abtests = sorted({s.split(":")[1] for s in sources if s.startswith("abtest:")})
        return {"id": dataset_id, "name": found["name"], "type": found["type"], "generations": generations,
                "abtests": abtests, "other_items": sum(1 for s in sources if not s.startswith(("generation:", "abtest:")))}  # fmt: skip
