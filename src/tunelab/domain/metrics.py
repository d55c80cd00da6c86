"""Metric points, their goals, and the summaries kept per run and key (pure: no I/O)."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Generic, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12 (it depends on the package)

from tunelab.domain.common import (
    MAX_INT,
    InputDateTime,
    JSONFloat,
    JSONInteger,
    Model,
    UTCDateTime,
    ValidUnicode,
    as_naive_utc,
)

MAX_POINTS_PER_BATCH = 10_000
MAX_STEP = MAX_INT  # the metrics.step column is a BIGINT
MAX_SERIES_LIMIT = 1_000_000
MAX_CHART_POINTS = 100_000


class MetricGoal(StrEnum):
    """Whether lower or higher values of a metric are better; `none` metrics are not ranked."""

    MIN = "min"
    MAX = "max"
    NONE = "none"


# Checked in this order on the key's words (split at '_', '/', '.', '-', spaces): the first rule that matches wins,
# so `chosen_logp` is none (a log-prob) although nothing else in it says so, and `reward_accuracy` is max.
_NONE_WORDS = re.compile(
    r"(^|_)(lr|learning_rate|grad_norm|gradient_norm|epochs?|steps?|logps?|log_probs?|logprobs?|runtime|seconds|"
    r"time|examples|samples|tokens)($|_)"
)
_MIN_WORDS = re.compile(r"loss|error|(^|_)(err|perplexity|ppl|wer|cer|mse|mae|rmse|fad|distance)($|_)")
_MAX_WORDS = re.compile(r"accuracy|(^|_)(acc|score|margin|precision|recall|f1|auc|bleu|rouge|win_rate)($|_)")


@functools.lru_cache(maxsize=4096)  # asked for every key of every run on each page: keys repeat
def default_goal(key: str) -> MetricGoal:
    """Losses and errors are minimised; accuracy, scores and margins maximised; everything else is not ranked."""
    words = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")
    if _NONE_WORDS.search(words):
        return MetricGoal.NONE
    if _MIN_WORDS.search(words):
        return MetricGoal.MIN
    if _MAX_WORDS.search(words):
        return MetricGoal.MAX
    return MetricGoal.NONE


def goal_of(key: str, overrides: dict[str, MetricGoal]) -> MetricGoal:
    """An experiment's own goal for `key`, else the default for its name."""
    return overrides.get(key) or default_goal(key)


MetricKey = Annotated[str, StringConstraints(min_length=1, max_length=200), ValidUnicode]
MetricStep = Annotated[int, Field(ge=0, le=MAX_STEP), JSONInteger]


class MetricPoint(Model):
    key: MetricKey
    value: JSONFloat
    step: MetricStep = Field(description="Unique per run and key: a point sent again for the same step replaces it.")
    ts: InputDateTime | None = Field(default=None, description="When it was measured; the server's time if left out.")


class MetricBatch(Model):
    """Up to 10,000 metric points of one run."""

    points: list[MetricPoint] = Field(max_length=MAX_POINTS_PER_BATCH)


@dataclass(frozen=True)
class MetricColumns:
    """A batch as columns, the shape summaries and the store work on; `stamps` are naive UTC or None."""

    keys: list[str]
    steps: list[int]
    values: list[float]
    stamps: list[datetime | None]

    @classmethod
    def of(cls, batch: MetricBatch) -> MetricColumns:
        points = batch.points
        stamps = [as_naive_utc(p.ts) if p.ts else None for p in points]
        return cls([p.key for p in points], [p.step for p in points], [p.value for p in points], stamps)

    def __len__(self) -> int:
        return len(self.keys)

    def non_finite(self) -> list[int]:
        if math.isfinite(sum(self.values)):  # one C loop for the common case: NaN and ±inf reach the sum
            return []
        return [i for i, value in enumerate(self.values) if not math.isfinite(value)]

    def deduplicated(self) -> MetricColumns:
        """The batch with one point per (key, step): the last one sent, as a later write replaces an earlier."""
        pairs = list(zip(self.keys, self.steps, strict=True))
        last = dict(zip(pairs, range(len(pairs)), strict=True))
        if len(last) == len(pairs):
            return self
        keep = sorted(last.values())
        return MetricColumns(
            [self.keys[i] for i in keep], [self.steps[i] for i in keep],
            [self.values[i] for i in keep], [self.stamps[i] for i in keep],
        )  # fmt: skip


# The HTTP fast path: the same fields and limits as MetricPoint, validated straight from JSON bytes into dicts,
# about three times faster than json.loads plus 10,000 MetricPoint instances. Its steps are strict ints, checked in
# Rust; a batch that fails is read again with MetricStep, which also takes integral numbers such as 5.0 (JSON
# Schema's integers) at a Python call per point, and whose errors are the ones reported.
S = TypeVar("S")


class _PointDict(TypedDict, Generic[S]):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    key: MetricKey
    value: JSONFloat
    step: S
    ts: NotRequired[InputDateTime | None]


class _BatchDict(TypedDict, Generic[S]):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    points: Annotated[list[_PointDict[S]], Field(max_length=MAX_POINTS_PER_BATCH)]


_BATCH_FAST = TypeAdapter(_BatchDict[Annotated[int, Strict(), Field(ge=0, le=MAX_STEP)]])
_BATCH_JSON = TypeAdapter(_BatchDict[MetricStep])


def parse_metric_batch(raw: bytes) -> MetricColumns:
    """Validate a JSON batch body; raises pydantic's ValidationError (`too_long` on `points` past the limit)."""
    try:
        points = _BATCH_FAST.validate_json(raw)["points"]
    except ValidationError:
        points = _BATCH_JSON.validate_json(raw)["points"]
    stamps: list[datetime | None] = [None] * len(points)
    for i, point in enumerate(points):
        ts = point.get("ts")
        if ts is not None:
            stamps[i] = as_naive_utc(ts)
    return MetricColumns([p["key"] for p in points], [p["step"] for p in points], [p["value"] for p in points], stamps)


@dataclass(frozen=True)
class KeyStats:
    """What a run's points of one key come to, whatever its goal: the goal picks min or max on read."""

    count: int
    min: float
    max: float
    first_step: int
    last_step: int
    last_value: float

    def then(self, later: KeyStats) -> KeyStats:
        """These stats followed by those of points that all come after `last_step`."""
        return KeyStats(
            count=self.count + later.count, min=min(self.min, later.min), max=max(self.max, later.max),
            first_step=self.first_step, last_step=later.last_step, last_value=later.last_value,
        )  # fmt: skip


RunStats = dict[str, KeyStats]


def batch_stats(batch: MetricColumns) -> RunStats:
    """Per key of a batch with one point per (key, step): count, extremes, first step, last step and its value."""
    # Plain lists in the loop: this runs once per ingested point, and attribute writes cost ~1 µs each.
    acc: dict[str, list[float]] = {}  # key -> [count, min, max, first_step, last_step, last_value]
    for key, step, value in zip(batch.keys, batch.steps, batch.values, strict=True):
        entry = acc.get(key)
        if entry is None:
            acc[key] = [1, value, value, step, step, value]
            continue
        entry[0] += 1
        if value < entry[1]:
            entry[1] = value
        if value > entry[2]:
            entry[2] = value
        if step < entry[3]:
            entry[3] = step
        if step > entry[4]:
            entry[4], entry[5] = step, value
    return {
        key: KeyStats(int(n), lo, hi, int(first), int(last), value)
        for key, (n, lo, hi, first, last, value) in acc.items()
    }


def appends_to(stats: RunStats, fresh: RunStats) -> bool:
    """Whether every key of `fresh` starts after the last step stored for it, so no stored point is replaced."""
    return all(key not in stats or entry.first_step > stats[key].last_step for key, entry in fresh.items())


def append_stats(stats: RunStats, fresh: RunStats) -> RunStats:
    merged = dict(stats)
    for key, entry in fresh.items():
        merged[key] = merged[key].then(entry) if key in merged else entry
    return merged


class KeySummary(BaseModel):
    final: float = Field(description="The value at the highest step.")
    best: float | None = Field(description="The lowest (goal min) or highest (goal max) value; null for goal none.")
    goal: MetricGoal
    last_step: int
    count: int


def best_value(entry: KeyStats, goal: MetricGoal) -> float | None:
    return {MetricGoal.MIN: entry.min, MetricGoal.MAX: entry.max}.get(goal)


def summarise(stats: RunStats, goals: dict[str, MetricGoal]) -> dict[str, KeySummary]:
    """The API's summary of a run's stats under an experiment's goals."""
    out = {}
    for key, entry in sorted(stats.items()):
        goal = goal_of(key, goals)
        out[key] = KeySummary.model_construct(  # trusted values: skip validation (a page builds thousands)
            final=entry.last_value, best=best_value(entry, goal), goal=goal, last_step=entry.last_step,
            count=entry.count,
        )  # fmt: skip
    return out


def final_loss(stats: RunStats) -> float | None:
    """A run's final loss: its final_loss metric, else loss, else train_loss."""
    for key in ("final_loss", "loss", "train_loss"):
        if key in stats:
            return stats[key].last_value
    return None


def best_of_runs(runs: list[RunStats], goals: dict[str, MetricGoal]) -> dict[str, float]:
    """An experiment's best metrics: per ranked key, the best value any of its runs reached."""
    best: dict[str, float] = {}
    for key in sorted(set().union(*runs)):  # each key's goal once, not once per run (a page holds thousands)
        goal = goal_of(key, goals)
        if goal is MetricGoal.MIN:
            best[key] = min(stats[key].min for stats in runs if key in stats)
        elif goal is MetricGoal.MAX:
            best[key] = max(stats[key].max for stats in runs if key in stats)
    return best


def ranked(values: dict[str, float | None], goal: MetricGoal) -> list[str]:
    """The ids whose value is the best under `goal`; every tied id, in the order given; none for goal none."""
    present = {rid: v for rid, v in values.items() if v is not None}
    if goal is MetricGoal.NONE or not present:
        return []
    top = min(present.values()) if goal is MetricGoal.MIN else max(present.values())
    return [rid for rid, value in present.items() if value == top]


class SeriesPoint(BaseModel):
    step: int
    value: float
    ts: UTCDateTime


class RunMetrics(BaseModel):
    """The documented shape of GET /api/runs/{id}/metrics (the route builds its JSON in the database)."""

    run_id: str
    series: dict[str, list[SeriesPoint]] = Field(description="Per key, points in step order.")
    summary: dict[str, KeySummary] = Field(description="Per metric key; a metric may itself be named final_loss.")
    final_loss: float | None = Field(description="The run's final loss (final_loss, else loss, else train_loss).")
    adapter_id: str | None
    next_after_step: dict[str, int] = Field(
        default_factory=dict,
        description="For each series cut short by `limit`: the `after_step` that fetches its next page.",
    )


class SeriesColumns(BaseModel):
    steps: list[int]
    values: list[float]


class MetricHistory(BaseModel):
    """One key's history for many runs, column-wise (what a compare chart draws)."""

    key: str
    runs: dict[str, SeriesColumns] = Field(
        description="Per run id, in the order asked; runs without the key are absent."
    )
