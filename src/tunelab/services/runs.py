"""Runs, their status, and the metric points they report."""

from __future__ import annotations

from tunelab.domain.common import utcnow
from tunelab.domain.experiments import ExperimentStatus
from tunelab.domain.runs import (
    MAX_POINTS_PER_BATCH,
    TERMINAL_RUN,
    MetricBatch,
    MetricColumns,
    MetricComparison,
    Run,
    RunComparison,
    RunCreate,
    RunMetrics,
    RunStatus,
    RunStatusUpdate,
    best_of_runs,
    merge_summaries,
    metric_goal,
    summarise,
)
from tunelab.errors import BadRequest, Conflict, NotFound, Unprocessable
from tunelab.services.experiments import execution_fields, new_id, require
from tunelab.store import experiments as experiment_store
from tunelab.store import metrics as metric_store
from tunelab.store import runs as store
from tunelab.store.db import Connection, Database

MAX_COMPARE = 20


def require_run(con: Connection, run_id: str) -> Run:
    run = store.get(con, run_id)
    if run is None:
        raise NotFound(f"Run {run_id!r} does not exist", code="run_not_found", details={"run_id": run_id})
    return run


class RunService:
    def __init__(self, db: Database):
        self.db = db

    def create(self, experiment_id: str, data: RunCreate) -> Run:
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            if experiment.status is ExperimentStatus.ARCHIVED:
                raise Conflict(f"Experiment {experiment.name!r} is archived; unarchive it to start runs",
                               code="experiment_archived")  # fmt: skip
            if not data.external:
                if not experiment.dataset_id:
                    raise BadRequest("A dataset must be linked to the experiment before a run can start",
                                     code="dataset_required", details={"experiment_id": experiment_id})  # fmt: skip
                raise BadRequest(
                    "Training runs started by TuneLab are not available yet; report an outside run with "
                    '{"external": true}',
                    code="training_unavailable",
                )
            name = data.name or next_run_name(con, experiment_id)
            if store.count_with_name(con, experiment_id, name):
                raise Conflict(f"Experiment already has a run named {name!r}", code="run_name_taken")
            run_id, now = new_id("run"), utcnow()
            store.insert(
                con,
                {"id": run_id, "experiment_id": experiment_id, "name": name, "status": RunStatus.RUNNING.value,
                 "training_type": data.config.get("training_type"), "external": True, "config": data.config,
                 "created_at": now, "started_at": now},
            )  # fmt: skip
            if experiment.status is not ExperimentStatus.RUNNING:
                experiment_store.update(
                    con, experiment_id, execution_fields(experiment, ExperimentStatus.RUNNING, None)
                )
            return require_run(con, run_id)

    def get(self, run_id: str) -> Run:
        with self.db.read() as con:
            return require_run(con, run_id)

    def list_for_experiment(self, experiment_id: str) -> list[Run]:
        with self.db.read() as con:
            require(con, experiment_id)
            return store.list_for_experiment(con, experiment_id)

    def set_status(self, run_id: str, update: RunStatusUpdate) -> Run:
        with self.db.transaction() as con:
            run = require_run(con, run_id)
            if run.status in TERMINAL_RUN or update.status in (RunStatus.PENDING, run.status):
                raise Conflict(f"Cannot move run from {run.status.value} to {update.status.value}",
                               code="invalid_status_transition",
                               details={"from": run.status.value, "to": update.status.value})  # fmt: skip
            fields: dict[str, object] = {"status": update.status.value}
            if update.status is RunStatus.RUNNING:
                fields["started_at"] = utcnow()
            else:
                fields["completed_at"] = utcnow()
                fields["error"] = update.error if update.status is RunStatus.FAILED else None
            store.update(con, run_id, fields)
            if update.status in TERMINAL_RUN:
                self._settle_experiment(con, run.experiment_id)
            return require_run(con, run_id)

    def cancel(self, run_id: str) -> Run:
        return self.set_status(run_id, RunStatusUpdate(status=RunStatus.CANCELLED))

    def ingest(self, run_id: str, batch: MetricBatch | MetricColumns) -> int:
        """Store a batch of points atomically and keep run and experiment summaries current."""
        points = batch if isinstance(batch, MetricColumns) else MetricColumns.of(batch)
        validate_batch(points)
        if not points:
            self.get(run_id)  # an empty batch for an unknown run is still an error
            return 0
        fresh = summarise(points.keys, points.steps, points.values)
        with self.db.transaction() as con:
            run = require_run(con, run_id)
            metric_store.insert_run_points(
                con, run_id, points.keys, points.steps, points.values, points.stamps, default_ts=utcnow()
            )
            summary = merge_summaries(run.metrics_summary, fresh)
            store.update(con, run_id, {"summary": {k: v.model_dump() for k, v in summary.items()}})
            self._refresh_best_metrics(con, run.experiment_id)
        return len(points)

    def metrics(self, run_id: str, keys: list[str] | None = None) -> RunMetrics:
        with self.db.read() as con:
            run = require_run(con, run_id)
            series = metric_store.series(con, run_id, keys)
        return RunMetrics(
            run_id=run_id,
            series=series,
            summary=run.metrics_summary,
            final_loss=run.final_loss,
            adapter_id=run.adapter_id,
        )

    def compare(self, run_ids: list[str]) -> RunComparison:
        run_ids = list(dict.fromkeys(run_ids))
        if not run_ids or len(run_ids) > MAX_COMPARE:
            raise Unprocessable(f"Compare takes 1 to {MAX_COMPARE} run ids", code="invalid_compare")
        with self.db.read() as con:
            runs = store.get_many(con, run_ids)
        missing = sorted(set(run_ids) - {run.id for run in runs})
        if missing:
            raise NotFound(f"Unknown run ids: {', '.join(missing)}", code="run_not_found", details={"missing": missing})
        return RunComparison(runs=runs, metrics=compare_metrics(runs))

    def _settle_experiment(self, con: Connection, experiment_id: str) -> None:
        """When every run has ended, the experiment ends.

        completed if any run completed; else failed (with the error of the run that failed last) if any failed;
        else, every run having been cancelled, cancelled.
        """
        experiment = require(con, experiment_id)
        runs = store.list_for_experiment(con, experiment_id)
        if experiment.status is ExperimentStatus.ARCHIVED or any(r.status not in TERMINAL_RUN for r in runs):
            return
        failed = [r for r in runs if r.status is RunStatus.FAILED]
        if any(r.status is RunStatus.COMPLETED for r in runs):
            target, error = ExperimentStatus.COMPLETED, None
        elif failed:
            last_failed = max(failed, key=lambda r: r.completed_at or r.created_at)
            target, error = ExperimentStatus.FAILED, last_failed.error
        else:
            target, error = ExperimentStatus.CANCELLED, None
        experiment_store.update(con, experiment_id, execution_fields(experiment, target, error))

    def _refresh_best_metrics(self, con: Connection, experiment_id: str) -> None:
        runs = store.list_for_experiment(con, experiment_id)
        best = best_of_runs([run.metrics_summary for run in runs])
        experiment_store.update(con, experiment_id, {"best_metrics": best, "updated_at": utcnow()})


def next_run_name(con: Connection, experiment_id: str) -> str:
    """run-N with N one past the run count, or the next N whose name no run has taken yet."""
    taken = store.names_for_experiment(con, experiment_id)
    n = len(taken) + 1
    while f"run-{n}" in taken:
        n += 1
    return f"run-{n}"


def compare_metrics(runs: list[Run]) -> dict[str, MetricComparison]:
    """Final value of every metric per run, and which run is best at it."""
    keys = sorted({key for run in runs for key in run.metrics_summary})
    out: dict[str, MetricComparison] = {}
    for key in keys:
        goal = metric_goal(key)
        values = {run.id: (run.metrics_summary[key].final if key in run.metrics_summary else None) for run in runs}
        present = {rid: v for rid, v in values.items() if v is not None}
        pick = min if goal == "min" else max
        best = pick(present, key=lambda rid: present[rid]) if present else None
        out[key] = MetricComparison(values=values, best_run_id=best, goal=goal)
    return out


def batch_too_large(received: int) -> Unprocessable:
    return Unprocessable(
        f"A batch holds at most {MAX_POINTS_PER_BATCH} points; this one has {received}",
        code="batch_too_large", details={"max": MAX_POINTS_PER_BATCH, "received": received},
    )  # fmt: skip


def validate_batch(batch: MetricColumns) -> None:
    if len(batch) > MAX_POINTS_PER_BATCH:
        raise batch_too_large(len(batch))
    bad = batch.non_finite()
    if bad:
        raise Unprocessable(
            f"Metric values must be finite numbers; {len(bad)} point(s) are not (first at index {bad[0]})",
            code="invalid_metric_value", details={"indexes": bad[:100]},
        )  # fmt: skip
