"""Experiments, their runs, and the tracker's status and results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tunelab.api.deps import EXPERIMENT_PATH, ExperimentId, ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.common import ID_REGEX, InputDateTime, Page, PageNumber
from tunelab.domain.experiments import (
    Experiment,
    ExperimentCreate,
    ExperimentDetail,
    ExperimentFilter,
    ExperimentSort,
    ExperimentStatus,
    ExperimentUpdate,
    ResultsUpdate,
    StatusUpdate,
)
from tunelab.domain.runs import Run, RunCreate

router = APIRouter(prefix="/api/experiments", tags=["experiments"], route_class=StrictJSONRoute)

PageSize = Annotated[int, Query(ge=1, le=500)]
# The statuses a list can be filtered by: the experiment statuses and the tracker's `pending` (draft).
StatusFilter = Annotated[
    str | None, Query(description="One status; `pending` is `draft`.", max_length=50,
                      json_schema_extra={"enum": ["pending", *[s.value for s in ExperimentStatus]]})
]  # fmt: skip


_ONE = "/api/experiments/{experiment_id}"
CREATED = links(
    "experiment_id",
    {
        "get": ("GET", _ONE), "update": ("PATCH", _ONE), "delete": ("DELETE", _ONE),
        "archive": ("POST", f"{_ONE}/archive"), "unarchive": ("POST", f"{_ONE}/unarchive"),
        "setStatus": ("POST", f"{_ONE}/status"), "storeResults": ("POST", f"{_ONE}/results"),
        "createRun": ("POST", f"{_ONE}/runs"), "listRuns": ("GET", f"{_ONE}/runs"),
    },
)  # fmt: skip


@router.post("", status_code=201, responses={**errors(*WRITES, 409), 201: CREATED})
async def create_experiment(body: ExperimentCreate, services: ServicesDep) -> Experiment:
    """Create an experiment (status draft); provenance not given is captured."""
    return await blocking(services.experiments.create, body)


@router.get("", responses=errors(*COMMON))
async def list_experiments(
    services: ServicesDep,
    status: StatusFilter = None,
    include_archived: bool = False,
    artifact_type: Annotated[str | None, Query(max_length=200)] = None,
    git_commit: Annotated[str | None, Query(max_length=200)] = None,
    created_after: InputDateTime | None = None,
    created_before: InputDateTime | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name, any case.")] = None,
    name: Annotated[str | None, Query(max_length=200, description="Exactly this name.")] = None,
    sort: ExperimentSort = ExperimentSort.NEWEST,
    page: Annotated[PageNumber, Query()] = 1,
    page_size: PageSize = 50,
) -> Page[Experiment]:
    """List experiments, newest first unless `sort` says otherwise; archived ones only with include_archived=true."""
    flt = ExperimentFilter(
        status=status, include_archived=include_archived, artifact_type=artifact_type, git_commit=git_commit,
        min_created_at=created_after, max_created_at=created_before, q=q, name=name, sort=sort, page=page,
        page_size=page_size,
    )  # fmt: skip
    return await blocking(services.experiments.list_page, flt)


@router.get("/by-input-artifacts", responses=errors(*COMMON))
async def find_by_input_artifacts(
    services: ServicesDep,
    artifact_id: Annotated[list[Annotated[str, Query(pattern=ID_REGEX)]], Query(min_length=1, max_length=100)],
    page: Annotated[PageNumber, Query()] = 1,
    page_size: PageSize = 50,
) -> Page[Experiment]:
    """Experiments that declared any of these artifacts as an input, newest first."""
    return await blocking(services.experiments.find_page_by_input_artifacts, artifact_id, page, page_size)


@router.get(EXPERIMENT_PATH, responses=errors(*COMMON, 404))
async def get_experiment(experiment_id: ExperimentId, services: ServicesDep) -> ExperimentDetail:
    """One experiment with all its runs."""
    return await blocking(services.experiments.detail, experiment_id)


# 405: /api/experiments/by-input-artifacts is the search, which only takes GET (see EXPERIMENT_PATH).
@router.patch(EXPERIMENT_PATH, responses=errors(*WRITES, 404, 405, 409))
async def update_experiment(experiment_id: ExperimentId, body: ExperimentUpdate, services: ServicesDep) -> Experiment:
    """Change name, description, dataset, config or metric goals."""
    return await blocking(services.experiments.update, experiment_id, body)


@router.delete(EXPERIMENT_PATH, responses=errors(*WRITES, 404, 405))
async def delete_experiment(experiment_id: ExperimentId, services: ServicesDep) -> Experiment:
    """Archive the experiment (nothing is hard-deleted)."""
    return await blocking(services.experiments.archive, experiment_id)


@router.post("/{experiment_id}/archive", responses=errors(*WRITES, 404))
async def archive_experiment(experiment_id: ExperimentId, services: ServicesDep) -> Experiment:
    """Hide the experiment from the default list; it can be unarchived. Archiving twice changes nothing."""
    return await blocking(services.experiments.archive, experiment_id)


@router.post("/{experiment_id}/unarchive", responses=errors(*WRITES, 404))
async def unarchive_experiment(experiment_id: ExperimentId, services: ServicesDep) -> Experiment:
    """Bring an archived experiment back as draft; for one that is not archived, nothing changes."""
    return await blocking(services.experiments.unarchive, experiment_id)


@router.post("/{experiment_id}/status", responses=errors(*WRITES, 404, 409))
async def update_status(experiment_id: ExperimentId, body: StatusUpdate, services: ServicesDep) -> Experiment:
    """Move the experiment along its lifecycle (the tracker's update_status)."""
    return await blocking(services.experiments.update_status, experiment_id, body.status, body.error)


@router.post("/{experiment_id}/results", responses=errors(*WRITES, 404))
async def store_results(experiment_id: ExperimentId, body: ResultsUpdate, services: ServicesDep) -> Experiment:
    """Record output artifacts by name (the tracker's store_results)."""
    return await blocking(services.experiments.store_results, experiment_id, body.outputs)


_RUN = "/api/runs/{run_id}"
RUN_CREATED = links(
    "run_id",
    {
        "get": ("GET", _RUN), "cancel": ("POST", f"{_RUN}/cancel"), "setStatus": ("POST", f"{_RUN}/status"),
        "getMetrics": ("GET", f"{_RUN}/metrics"), "ingestMetrics": ("POST", f"{_RUN}/metrics"),
        "getLog": ("GET", f"{_RUN}/logs"), "streamLog": ("GET", f"{_RUN}/logs/stream"),
    },
)  # fmt: skip


@router.post("/{experiment_id}/runs", status_code=201, responses={**errors(*WRITES, 404, 409), 201: RUN_CREATED})
async def create_run(experiment_id: ExperimentId, body: RunCreate, services: ServicesDep) -> Run:
    """Start a training run of the experiment's dataset on the current base model: 201 with the run `pending`
    (queued); 400 `dataset_required` (and no run) without a dataset; 409 for an archived experiment; 422
    `invalid_config` listing every bad option. `config` overrides the experiment's config, which overrides the
    training command's defaults. An empty dataset or a failed export gives a `failed` run saying so.
    With `external: true` it records a run an outside engine reports on instead (it starts running)."""
    start = services.runs.create if body.external else services.training.start
    return await blocking(start, experiment_id, body)


@router.get("/{experiment_id}/runs", responses=errors(*COMMON, 404))
async def list_runs(
    experiment_id: ExperimentId,
    services: ServicesDep,
    page: Annotated[PageNumber, Query()] = 1,
    page_size: PageSize = 50,
) -> Page[Run]:
    """The experiment's runs, newest first."""
    return await blocking(services.experiments.runs_page, experiment_id, page, page_size)
