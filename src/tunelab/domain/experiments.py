"""Experiments: the unit that groups runs and records what went in and came out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, JsonValue, StringConstraints, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from tunelab.domain.common import (
    ID_REGEX,
    InputDateTime,
    JSONBool,
    JSONDict,
    JSONObject,
    Model,
    PageNumber,
    ResourceId,
    UTCDateTime,
    ValidUnicode,
    not_nullable,
    trimmed_text,
)
from tunelab.domain.metrics import MetricGoal, MetricKey
from tunelab.domain.runs import TERMINAL_RUN, Run, RunStatus


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

ArtifactType = Annotated[str, StringConstraints(min_length=1, max_length=100), ValidUnicode]
ArtifactMap = Annotated[
    dict[ArtifactType, Annotated[list[ResourceId], Field(max_length=1000)]],
    Field(max_length=100, description='Artifact type -> artifact ids, e.g. {"datasets": ["art-…"]}.'),
]
# Surrounding whitespace is stripped before the length check: "  x  " is "x", and a name of only spaces is empty.
ExperimentName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), ValidUnicode, trimmed_text(200)
]
Description = Annotated[str, StringConstraints(max_length=10_000), ValidUnicode]
ShortText = Annotated[str, StringConstraints(max_length=200), ValidUnicode]
MetricGoals = Annotated[dict[MetricKey, MetricGoal], Field(max_length=1000)]


# Names of routes beside /api/experiments/{id}: an experiment with such an id could never be read.
RESERVED_EXPERIMENT_IDS = ("by-input-artifacts",)


def _not_reserved(value: str | None) -> str | None:
    if value in RESERVED_EXPERIMENT_IDS:
        raise PydanticCustomError("reserved_id", "'{id}' names a route; choose another id", {"id": value})
    return value


ExperimentIdIn = Annotated[
    ResourceId,
    AfterValidator(_not_reserved),
    WithJsonSchema({"type": "string", "pattern": ID_REGEX, "not": {"enum": list(RESERVED_EXPERIMENT_IDS)}}),
]


class Provenance(Model):
    git_commit: ShortText | None = None
    git_dirty: JSONBool | None = None
    engine_version: ShortText | None = None
    created_at: InputDateTime | None = None


class ExperimentCreate(Model):
    id: ExperimentIdIn | None = Field(default=None, description="Caller-chosen id (the tracker's experiment_id).")
    name: ExperimentName
    description: Description | None = None
    dataset_id: ResourceId | None = None
    config: JSONObject = Field(default_factory=dict, description="Training defaults for the experiment's runs.")
    inputs: ArtifactMap = Field(default_factory=dict)
    provenance: Provenance | None = None
    metric_goals: MetricGoals = Field(default_factory=dict, description="Per metric key: min, max or none.")


class ExperimentUpdate(Model):
    """Only the fields sent change; description and dataset_id may be null (cleared), the others not."""

    name: ExperimentName | None = Field(default=None, json_schema_extra=not_nullable)
    description: Description | None = None
    dataset_id: ResourceId | None = None
    config: JSONObject | None = Field(default=None, json_schema_extra=not_nullable)
    metric_goals: Annotated[dict[MetricKey, MetricGoal | None], Field(max_length=1000)] | None = Field(
        default=None,
        description="Merged into the experiment's goals; a key set to null goes back to the default for its name.",
        json_schema_extra=not_nullable,
    )

    @field_validator("name", "config", "metric_goals")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Validators run only on fields that were sent: an explicit null would blank a required column.
        if value is None:
            raise ValueError("may be left out but not null")
        return value


# What update_status takes: the statuses but archived (which has its own endpoints), and the tracker's `pending`.
# The service checks it (422 invalid_status); the schema states it so that clients and schemathesis know.
STATUS_NAMES: list[JsonValue] = [
    "pending",
    *[status.value for status in ExperimentStatus if status is not ExperimentStatus.ARCHIVED],
]


class StatusUpdate(Model):
    status: Annotated[str, StringConstraints(max_length=50), ValidUnicode] = Field(
        json_schema_extra={"enum": STATUS_NAMES}, description="`pending` is `draft`."
    )
    error: Description | None = None


class ResultsUpdate(Model):
    outputs: Annotated[dict[ArtifactType, ResourceId], Field(max_length=100)]


@dataclass(frozen=True)
class RunOutcome:
    status: RunStatus
    ended_at: datetime | None
    error: str | None


def status_from_runs(
    current: ExperimentStatus, runs: Iterable[RunOutcome]
) -> tuple[ExperimentStatus, str | None] | None:
    """The experiment status rules (spec v1/v2), in the one place every path asks: the (status, error) an experiment
    now in `current` takes given its runs as they are now, or None when it keeps its status.

    - An archived experiment keeps its status (it starts no runs).
    - A running run makes it running, if it is not already.
    - A running experiment settles once every run has ended: completed if any run completed; else failed, with the
      error of the run that failed last, if any failed; else (every run cancelled) cancelled.
    - Otherwise (no runs, runs waiting in the queue, or a status set explicitly by the tracker) it keeps its status.

    `runs` is read lazily and the answer comes at the first running run, so a caller that knows of one (the run it
    creates) puts it first and the experiment's other runs are never looked at.
    """
    if current is ExperimentStatus.ARCHIVED:
        return None
    seen: list[RunOutcome] = []
    for run in runs:
        if run.status is RunStatus.RUNNING:
            return None if current is ExperimentStatus.RUNNING else (ExperimentStatus.RUNNING, None)
        seen.append(run)
    if current is not ExperimentStatus.RUNNING or not seen or any(run.status not in TERMINAL_RUN for run in seen):
        return None
    if any(run.status is RunStatus.COMPLETED for run in seen):
        return ExperimentStatus.COMPLETED, None
    failed = [run for run in seen if run.status is RunStatus.FAILED]
    if failed:
        last = max(failed, key=lambda run: run.ended_at or datetime.min)
        return ExperimentStatus.FAILED, last.error
    return ExperimentStatus.CANCELLED, None


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
    best_metrics: dict[str, float] = Field(description="Per ranked metric (goal min or max), the best of any run.")
    metric_goals: dict[str, MetricGoal] = Field(description="The goals this experiment sets; other keys use defaults.")
    run_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class ExperimentDetail(Experiment):
    runs: list[Run] = Field(default_factory=list, description="The experiment's runs, newest first.")


class ExperimentSort(StrEnum):
    """List orders; a leading '-' is descending. Ties are broken by id."""

    NEWEST = "-created_at"
    OLDEST = "created_at"
    NAME = "name"
    NAME_DESC = "-name"
    UPDATED = "-updated_at"
    UPDATED_OLDEST = "updated_at"
    STATUS = "status"
    STATUS_DESC = "-status"


class ExperimentFilter(Model):
    status: ShortText | None = None
    include_archived: bool = False
    artifact_type: ShortText | None = None
    git_commit: ShortText | None = None
    min_created_at: InputDateTime | None = None
    max_created_at: InputDateTime | None = None
    q: ShortText | None = None
    name: ShortText | None = Field(default=None, description="Exactly this name.")
    sort: ExperimentSort = ExperimentSort.NEWEST
    page: PageNumber = 1
    page_size: int = Field(default=50, ge=1, le=500)
    limit: int | None = Field(default=None, ge=1, le=500, description="The tracker's limit; overrides page_size.")
