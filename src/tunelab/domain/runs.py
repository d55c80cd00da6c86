"""Runs of an experiment: their lifecycle and how they compare."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from tunelab.domain.common import JSONBool, JSONDict, JSONObject, Model, UTCDateTime, ValidUnicode, trimmed_text
from tunelab.domain.metrics import KeySummary, MetricGoal


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_RUN = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
RunName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), ValidUnicode, trimmed_text(200)
]
ErrorText = Annotated[str, StringConstraints(max_length=10_000), ValidUnicode]


class RunCreate(Model):
    name: RunName | None = None
    config: JSONObject = Field(default_factory=dict)
    external: JSONBool = Field(default=False, description="A run an outside engine reports on; it starts running.")


class RunStatusUpdate(Model):
    status: RunStatus
    error: ErrorText | None = None


class AdapterRef(BaseModel):
    id: str
    name: str
    version: str


class Run(BaseModel):
    id: str
    experiment_id: str
    name: str
    status: RunStatus
    training_type: str | None
    external: bool
    config: JSONDict
    inputs: JSONDict
    error: str | None
    adapter_id: str | None
    adapter: AdapterRef | None = None
    final_loss: float | None
    metrics_summary: dict[str, KeySummary]
    created_at: UTCDateTime
    started_at: UTCDateTime | None
    completed_at: UTCDateTime | None
    output_dir: str | None = Field(default=None, description="Where a run TuneLab started writes its adapter files.")
    exit_code: int | None = Field(default=None, description="How its training process ended (runs TuneLab started).")
    provenance: JSONDict = Field(default_factory=dict, description="Code and model it was started with.")


class MetricComparison(BaseModel):
    values: dict[str, float | None] = Field(description="Each run's final value; null where the run lacks the key.")
    best_run_id: str | None = Field(description="The first of best_run_ids, or null.")
    best_run_ids: list[str] = Field(description="Every run tied for the best value; empty for goal none.")
    goal: MetricGoal


class RunComparison(BaseModel):
    runs: list[Run]
    metrics: dict[str, MetricComparison]
