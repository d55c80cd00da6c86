"""Runs' metric summaries, from the store's in-memory stats, under their experiment's goals."""

from __future__ import annotations

from tunelab.domain.metrics import MetricGoal, RunStats, final_loss, summarise
from tunelab.domain.runs import Run
from tunelab.store import metrics as metric_store
from tunelab.store.db import Connection, Database


def run_stats(db: Database, con: Connection, run_ids: list[str]) -> dict[str, RunStats]:
    """Stats per existing run among `run_ids`, computed through `con` for runs not yet in memory."""
    if not run_ids:
        return {}
    return db.summaries.get_many(run_ids, lambda missing: metric_store.run_stats(con, missing))


def with_summary(run: Run, stats: RunStats, goals: dict[str, MetricGoal]) -> Run:
    return run.model_copy(update={"metrics_summary": summarise(stats, goals), "final_loss": final_loss(stats)})


def with_summaries(runs: list[Run], stats: dict[str, RunStats], goals: dict[str, MetricGoal]) -> list[Run]:
    return [with_summary(run, stats.get(run.id, {}), goals) for run in runs]
