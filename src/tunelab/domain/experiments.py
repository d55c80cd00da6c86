"""Experiments: the unit that groups runs and records what went in and came out."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from tunelab.domain.common import JSONDict, Model, ResourceId, UTCDateTime
from tunelab.domain.runs import Run


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"

    @classmethod
    def parse(cls, value: str) -> ExperimentStatus:
        """Accept the tracker's `pending` as our `draft`."""
        return cls.DRAFT if value == "pending" else cls(value)


TERMINAL_EXPERIMENT = {ExperimentStatus.COMPLETED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED}

# update_status may move an experiment only along these edges; archive/unarchive have their own endpoints.
ALLOWED_TRANSITIONS: dict[ExperimentStatus, set[ExperimentStatus]] = {
    ExperimentStatus.DRAFT: {ExperimentStatus.RUNNING, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED},
    ExperimentStatus.RUNNING: TERMINAL_EXPERIMENT,
    ExperimentStatus.COMPLETED: {ExperimentStatus.RUNNING},
    ExperimentStatus.FAILED: {ExperimentStatus.RUNNING},
    ExperimentStatus.CANCELLED: {ExperimentStatus.RUNNING},
    ExperimentStatus.ARCHIVED: set(),
}

ArtifactMap = dict[str, list[ResourceId]]
# Surrounding whitespace is stripped before the length check: "  x  " is "x", and a name of only spaces is empty.
ExperimentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Provenance(Model):
    git_commit: str | None = None
    git_dirty: bool | None = None
    engine_version: str | None = None
    created_at: UTCDateTime | None = None


class ExperimentCreate(Model):
    id: ResourceId | None = Field(default=None, description="Caller-chosen id (the tracker's experiment_id).")
    name: ExperimentName
    description: str | None = Field(default=None, max_length=10_000)
    dataset_id: str | None = None
    config: JSONDict = Field(default_factory=dict)
    inputs: ArtifactMap = Field(default_factory=dict)
    provenance: Provenance | None = None


class ExperimentUpdate(Model):
    name: ExperimentName | None = None
    description: str | None = Field(default=None, max_length=10_000)
    dataset_id: str | None = None
    config: JSONDict | None = None

    @field_validator("name", "config")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Validators run only on fields that were sent: an explicit null would blank a required column.
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class StatusUpdate(Model):
    status: str
    error: str | None = None


class ResultsUpdate(Model):
    outputs: dict[str, ResourceId]


class Execution(BaseModel):
    started_at: UTCDateTime | None = None
    completed_at: UTCDateTime | None = None
    duration_ms: int | None = None
    error: str | None = None


class Experiment(BaseModel):
    id: str
    name: str
    description: str | None
    status: ExperimentStatus
    archived: bool
    dataset_id: str | None
    config: JSONDict
    inputs: dict[str, list[str]]
    outputs: dict[str, str]
    provenance: Provenance
    execution: Execution
    best_metrics: dict[str, float]
    run_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class ExperimentDetail(Experiment):
    runs: list[Run] = Field(default_factory=list, description="The experiment's runs, newest first.")


class ExperimentFilter(Model):
    status: str | None = None
    include_archived: bool = False
    artifact_type: str | None = None
    git_commit: str | None = None
    min_created_at: UTCDateTime | None = None
    max_created_at: UTCDateTime | None = None
    q: str | None = None
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=50, ge=1, le=500)
    limit: int | None = Field(default=None, ge=1, le=500, description="The tracker's limit; overrides page_size.")
