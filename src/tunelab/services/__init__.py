"""Use cases. Routes, the CLI and the ops script call these; these call the store."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.config import Settings
from tunelab.services.artifacts import ArtifactService
from tunelab.services.datasets import DatasetService
from tunelab.services.experiments import ExperimentService
from tunelab.services.models import ModelService
from tunelab.services.runs import RunService
from tunelab.store.db import Database


@dataclass(frozen=True)
class Services:
    db: Database
    experiments: ExperimentService
    runs: RunService
    artifacts: ArtifactService
    models: ModelService
    datasets: DatasetService

    @classmethod
    def build(cls, db: Database, settings: Settings | None = None) -> Services:
        """The services over `db`; `settings` say where files live (by default, the folder of the database)."""
        settings = settings or Settings(data_dir=db.path.parent, db=db.path)
        return cls(db=db, experiments=ExperimentService(db), runs=RunService(db), artifacts=ArtifactService(db),
                   models=ModelService(db, settings), datasets=DatasetService(db, settings))  # fmt: skip
