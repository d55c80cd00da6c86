"""Use cases. Routes, the CLI and the ops script call these; these call the store."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.config import Settings
from tunelab.executors.base import Executor
from tunelab.services.abtests import ABTestService
from tunelab.services.adapters import AdapterService
from tunelab.services.artifacts import ArtifactService
from tunelab.services.datasets import DatasetService
from tunelab.services.experiments import ExperimentService
from tunelab.services.generations import GenerationService
from tunelab.services.models import ModelService
from tunelab.services.runs import RunService
from tunelab.services.training import TrainingService
from tunelab.store.db import Database


@dataclass(frozen=True)
class Services:
    db: Database
    experiments: ExperimentService
    runs: RunService
    artifacts: ArtifactService
    models: ModelService
    datasets: DatasetService
    adapters: AdapterService
    training: TrainingService
    generations: GenerationService
    abtests: ABTestService

    @classmethod
    def build(cls, db: Database, settings: Settings | None = None, executor: Executor | None = None) -> Services:
        """The services over `db`; `settings` say where files live (by default, the folder of the database); runs
        TuneLab trains go to `executor` (by default the local one, under DATA_DIR/runs)."""
        from tunelab.executors.local import LocalExecutor

        settings = settings or Settings(data_dir=db.path.parent, db=db.path)
        experiments, runs = ExperimentService(db), RunService(db)
        models, datasets = ModelService(db, settings), DatasetService(db, settings)
        adapters = AdapterService(db, settings, models)
        training = TrainingService(db, settings, executor or LocalExecutor(settings.data_dir / "runs"), runs,
                                   experiments, datasets, models, adapters)  # fmt: skip
        generations = GenerationService(db, settings, models, adapters)
        return cls(db=db, experiments=experiments, runs=runs, artifacts=ArtifactService(db), models=models,
                   datasets=datasets, adapters=adapters, training=training, generations=generations,
                   abtests=ABTestService(db, generations, adapters))  # fmt: skip
