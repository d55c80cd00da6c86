"""The experiment tracker port: what an engine needs to record experiments with artifact lineage.

`ExperimentService` implements it on DuckDB; `HttpTracker` (tunelab.client) implements it over HTTP.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tunelab.domain.experiments import Experiment, ExperimentCreate, ExperimentFilter


@runtime_checkable
class ExperimentTracker(Protocol):
    def create_experiment(self, definition: ExperimentCreate) -> Experiment: ...

    def get_experiment(self, experiment_id: str) -> Experiment: ...

    def list_experiments(self, flt: ExperimentFilter) -> list[Experiment]: ...

    def update_status(self, experiment_id: str, status: str, error: str | None = None) -> Experiment: ...

    def store_results(self, experiment_id: str, outputs: dict[str, str]) -> Experiment: ...

    def find_by_input_artifacts(self, artifact_ids: list[str]) -> list[Experiment]: ...
