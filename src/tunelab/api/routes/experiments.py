"""Experiments, their runs, and the tracker's status and results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from tunelab.api.deps import ServicesDep
from tunelab.domain.common import Page
from tunelab.domain.experiments import (
    Experiment,
    ExperimentCreate,
    ExperimentDetail,
    ExperimentFilter,
    ExperimentUpdate,
    ResultsUpdate,
    StatusUpdate,
)
from tunelab.domain.runs import Run, RunCreate

router = APIRouter(prefix="/api/experiments", tags=["experiments"])


@router.post("", status_code=201)
def create_experiment(body: ExperimentCreate, services: ServicesDep) -> Experiment:
    """Create an experiment (status draft); provenance not given is captured."""
    return services.experiments.create(body)


@router.get("")
def list_experiments(
    services: ServicesDep,
    status: str | None = None,
    include_archived: bool = False,
    artifact_type: str | None = None,
    git_commit: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    q: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[Experiment]:
    """List experiments, newest first; archived ones only with include_archived=true."""
    flt = ExperimentFilter(
        status=status, include_archived=include_archived, artifact_type=artifact_type, git_commit=git_commit,
        min_created_at=created_after, max_created_at=created_before, q=q, page=page, page_size=page_size,
    )  # fmt: skip
    return services.experiments.list_page(flt)


@router.get("/by-input-artifacts")
def find_by_input_artifacts(
    services: ServicesDep, artifact_id: Annotated[list[str], Query(min_length=1)]
) -> list[Experiment]:
    """Experiments that declared any of these artifacts as an input."""
    return services.experiments.find_by_input_artifacts(artifact_id)


@router.get("/{experiment_id}")
def get_experiment(experiment_id: str, services: ServicesDep) -> ExperimentDetail:
    """One experiment with all its runs."""
    return services.experiments.detail(experiment_id)


@router.patch("/{experiment_id}")
def update_experiment(experiment_id: str, body: ExperimentUpdate, services: ServicesDep) -> Experiment:
    """Change name, description, dataset or config."""
    return services.experiments.update(experiment_id, body)


@router.delete("/{experiment_id}")
def delete_experiment(experiment_id: str, services: ServicesDep) -> Experiment:
    """Archive the experiment (nothing is hard-deleted)."""
    return services.experiments.archive(experiment_id)


@router.post("/{experiment_id}/archive")
def archive_experiment(experiment_id: str, services: ServicesDep) -> Experiment:
    """Hide the experiment from the default list; it can be unarchived."""
    return services.experiments.archive(experiment_id)


@router.post("/{experiment_id}/unarchive")
def unarchive_experiment(experiment_id: str, services: ServicesDep) -> Experiment:
    """Bring an archived experiment back as draft."""
    return services.experiments.unarchive(experiment_id)


@router.post("/{experiment_id}/status")
def update_status(experiment_id: str, body: StatusUpdate, services: ServicesDep) -> Experiment:
    """Move the experiment along its lifecycle (the tracker's update_status)."""
    return services.experiments.update_status(experiment_id, body.status, body.error)


@router.post("/{experiment_id}/results")
def store_results(experiment_id: str, body: ResultsUpdate, services: ServicesDep) -> Experiment:
    """Record output artifacts by name (the tracker's store_results)."""
    return services.experiments.store_results(experiment_id, body.outputs)


@router.post("/{experiment_id}/runs", status_code=201)
def create_run(experiment_id: str, body: RunCreate, services: ServicesDep) -> Run:
    """Start a run; `external: true` records one that an outside engine reports on."""
    return services.runs.create(experiment_id, body)


@router.get("/{experiment_id}/runs")
def list_runs(experiment_id: str, services: ServicesDep) -> list[Run]:
    """The experiment's runs, newest first."""
    return services.runs.list_for_experiment(experiment_id)
