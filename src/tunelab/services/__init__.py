"""Use cases. Routes, the CLI and the ops script call these; these call the store."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.services.artifacts import ArtifactService
from tunelab.services.experiments import ExperimentService
from tunelab.services.runs import RunService
from tunelab.store.db import Database


@dataclass(frozen=True)
class Services:
    db: Database
    experiments: ExperimentService
    runs: RunService
    artifacts: ArtifactService

    @classmethod
    def build(cls, db: Database) -> Services:
        return cls(db=db, experiments=ExperimentService(db), runs=RunService(db), artifacts=ArtifactService(db))
