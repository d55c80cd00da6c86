"""Runs of an experiment and the metric points they report."""

from __future__ import annotations

import math
import re
from enum import StrEnum

from pydantic import BaseModel, Field

from tunelab.domain.common import JSONDict, Model, UTCDateTime

MAX_POINTS_PER_BATCH = 10_000
MAX_STEP = 2**63 - 1  # the metrics.step column is a BIGINT
_MINIMISED = re.compile(r"loss|error", re.IGNORECASE)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_RUN = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}


def metric_goal(key: str) -> str:
    """Keys naming a loss or an error are minimised; every other metric is maximised."""
    return "min" if _MINIMISED.search(key) else "max"


class RunCreate(Model):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: JSONDict = Field(default_factory=dict)
    external: bool = False


class RunStatusUpdate(Model):
    status: RunStatus
    error: str | None = None


class MetricPoint(Model):
    key: str = Field(min_length=1, max_length=200)
    value: float
    step: int = Field(ge=0, le=MAX_STEP)
    ts: UTCDateTime | None = None


class MetricBatch(Model):
    points: list[MetricPoint]

    def non_finite(self) -> list[int]:
        return [i for i, point in enumerate(self.points) if not math.isfinite(point.value)]


class KeySummary(BaseModel):
    final: float
    best: float
    goal: str
    last_step: int
    count: int


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


class SeriesPoint(BaseModel):
    step: int
    value: float
    ts: UTCDateTime


class RunMetrics(BaseModel):
    run_id: str
    series: dict[str, list[SeriesPoint]]
    summary: JSONDict
    adapter_id: str | None


class MetricComparison(BaseModel):
    values: dict[str, float | None]
    best_run_id: str | None
    goal: str


class RunComparison(BaseModel):
    runs: list[Run]
    metrics: dict[str, MetricComparison]


def summarise(keys: list[str], steps: list[int], values: list[float]) -> dict[str, KeySummary]:
    """Final (value at the highest step, later points winning ties) and best value per key of one batch."""
    # Plain lists in the loop: this runs once per ingested point, and pydantic attribute writes cost ~1 µs each.
    acc: dict[str, list[float | int]] = {}  # key -> [final, best, last_step, count]
    minimised = {key: metric_goal(key) == "min" for key in set(keys)}
    for key, step, value in zip(keys, steps, values, strict=True):
        entry = acc.get(key)
        if entry is None:
            acc[key] = [value, value, step, 1]
            continue
        if step >= entry[2]:
            entry[0], entry[2] = value, step
        if (value < entry[1]) if minimised[key] else (value > entry[1]):
            entry[1] = value
        entry[3] += 1
    return {
        key: KeySummary(
            final=final, best=best, goal="min" if minimised[key] else "max", last_step=int(last), count=int(n)
        )
        for key, (final, best, last, n) in acc.items()
    }


def merge_summaries(old: dict[str, KeySummary], new: dict[str, KeySummary]) -> dict[str, KeySummary]:
    merged = dict(old)
    for key, fresh in new.items():
        seen = merged.get(key)
        if seen is None:
            merged[key] = fresh
            continue
        later = fresh if fresh.last_step >= seen.last_step else seen
        pick = min if fresh.goal == "min" else max
        merged[key] = KeySummary(
            final=later.final,
            best=pick(seen.best, fresh.best),
            goal=fresh.goal,
            last_step=later.last_step,
            count=seen.count + fresh.count,
        )
    return merged


def final_loss(summary: dict[str, KeySummary]) -> float | None:
    for key in ("final_loss", "loss", "train_loss"):
        if key in summary:
            return summary[key].final
    return None


def best_of_runs(summaries: list[dict[str, KeySummary]]) -> dict[str, float]:
    """An experiment's best metrics: per key, the best value any of its runs reached."""
    best: dict[str, float] = {}
    for summary in summaries:
        for key, entry in summary.items():
            if key not in best:
                best[key] = entry.best
            else:
                best[key] = min(best[key], entry.best) if entry.goal == "min" else max(best[key], entry.best)
    return best
