"""Runs, their status, and the metric points they report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunelab.domain.common import utcnow
from tunelab.domain.experiments import Experiment, ExperimentStatus, RunOutcome, status_from_runs
from tunelab.domain.metrics import (
    MAX_POINTS_PER_BATCH,
    MetricBatch,
    MetricColumns,
    MetricGoal,
    appends_to,
    batch_stats,
    ranked,
    summarise,
)
from tunelab.domain.metrics import final_loss as final_loss_of
from tunelab.domain.runs import (
    TERMINAL_RUN,
    MetricComparison,
    Run,
    RunComparison,
    RunCreate,
    RunStatus,
    RunStatusUpdate,
)
from tunelab.errors import BadRequest, Conflict, NotFound, Unprocessable
from tunelab.services.experiments import cached, cached_runs, execution_fields, new_id, with_fields
from tunelab.services.summaries import run_stats, with_summary
from tunelab.store import experiments as experiment_store
from tunelab.store import metrics as metric_store
from tunelab.store import runs as store
from tunelab.store.db import Connection, Database
from tunelab.store.journal import Entry
from tunelab.store.row_journal import RowWrite
from tunelab.store.tiles import decimated_json, tile_shift

MAX_COMPARE = 20
MAX_HISTORY_RUNS = 100
DEFAULT_SERIES_LIMIT = 100_000


def run_not_found(run_id: str) -> NotFound:
    return NotFound(f"Run {run_id!r} does not exist", code="run_not_found", details={"run_id": run_id})


def require_run(db: Database, con: Connection, run_id: str) -> Run:
    """The run as stored (from memory; read through `con` the first time), or 404."""
    run = cached_runs(db, con, [run_id]).get(run_id)
    if run is None:
        raise run_not_found(run_id)
    return run


class RunService:
    def __init__(self, db: Database):
        self.db = db

    def create(self, experiment_id: str, data: RunCreate, prepared: PreparedRun | None = None) -> Run:
        """Create a run: one an outside engine reports on (`external`), which starts running, and so does its
        experiment; or one TuneLab starts (`prepared` by services/training.py), which waits in the queue (pending)
        or was refused before it could (failed).

        The experiment and its runs' names are known in memory, so the run (and the experiment it starts) is written
        through the row journal: durable at once, in DuckDB within moments (store/row_journal.py).
        """
        if not data.external and prepared is None:
            raise BadRequest("A run TuneLab trains is started by the training service", code="training_unavailable")
        with self.db.write(behind=True) as con:
            experiment = cached(self.db, con, experiment_id)
            if experiment.status is ExperimentStatus.ARCHIVED:
                raise Conflict(f"Experiment {experiment.name!r} is archived; unarchive it to start runs",
                               code="experiment_archived")  # fmt: skip
            taken = self.db.rows.run_names(experiment_id, lambda: self._stored_names(con, experiment_id))
            name = data.name or f"run-{len(self.db.rows.runs_of([experiment_id]).get(experiment_id, [])) + 1}"
            if name in taken:
                if data.name:
                    raise Conflict(f"Experiment already has a run named {name!r}", code="run_name_taken",
                                   details={"name": name})  # fmt: skip
                name = next_run_name(taken)  # run-{count+1} was taken (by a run named so by hand)
            run = self._new_run(experiment_id, data, name, utcnow(), prepared)
            writes = [RowWrite("runs", run.id, store.insert_values(_row(run)), insert=True)]
            change = status_from_runs(experiment.status, self._outcomes(con, experiment.id, run))
            changed = self._experiment_write(experiment, change, writes)
            self.db.journal_rows(writes)
            self.db.rows.created(run)
            self.db.summaries.created(run.id)
            if changed is not None:
                self.db.rows.put_experiment(changed)
        return run

    def _outcomes(self, con: Connection, experiment_id: str, run: Run) -> Iterator[RunOutcome]:
        """`run` as it is about to be written, then the experiment's other runs, read from memory only if asked for."""
        yield RunOutcome(run.status, run.completed_at, run.error)
        siblings = [rid for rid in self.db.rows.runs_of([experiment_id]).get(experiment_id, []) if rid != run.id]
        for sibling in cached_runs(self.db, con, siblings).values():
            yield RunOutcome(sibling.status, sibling.completed_at, sibling.error)

    @staticmethod
    def _experiment_write(
        experiment: Experiment, change: tuple[ExperimentStatus, str | None] | None, writes: list[RowWrite]
    ) -> Experiment | None:
        """Add the experiment's status change (if any) to `writes`; the experiment as it will then be stored."""
        if change is None:
            return None
        fields = execution_fields(experiment.execution.started_at, *change)
        writes.append(RowWrite("experiments", experiment.id, experiment_store.update_values(fields)))
        return with_fields(experiment, fields)

    def _stored_names(self, con: Connection, experiment_id: str) -> set[str]:
        self.db.flush_rows()
        return store.names_for_experiment(con, experiment_id)

    @staticmethod
    def _new_run(experiment_id: str, data: RunCreate, name: str, now: datetime, prepared: PreparedRun | None) -> Run:
        if prepared is not None:
            failed = prepared.error is not None
            return Run(
                id=prepared.run_id, experiment_id=experiment_id, name=name,
                status=RunStatus.FAILED if failed else RunStatus.PENDING, training_type=prepared.training_type,
                external=False, config=prepared.config, inputs=prepared.inputs, error=prepared.error, adapter_id=None,
                final_loss=None, metrics_summary={}, created_at=now, started_at=None,
                completed_at=now if failed else None, output_dir=prepared.output_dir, provenance=prepared.provenance,
            )  # fmt: skip
        training_type = data.config.get("training_type")
        return Run(
            id=new_id("run"), experiment_id=experiment_id, name=name, status=RunStatus.RUNNING,
            training_type=training_type if isinstance(training_type, str) else None, external=True,
            config=data.config, inputs={}, error=None, adapter_id=None, final_loss=None, metrics_summary={},
            created_at=now, started_at=now, completed_at=None,
        )  # fmt: skip

    def get(self, run_id: str) -> Run:
        with self.db.read() as con:
            run = require_run(self.db, con, run_id)
            goals = cached(self.db, con, run.experiment_id).metric_goals
            return with_summary(run, run_stats(self.db, con, [run_id]).get(run_id, {}), goals)

    def set_status(self, run_id: str, update: RunStatusUpdate, **ended: object) -> Run:
        """End a run (or start a pending one); the experiment settles once every run has ended. `ended` are more
        columns an end writes (exit_code, adapter_id: a run TuneLab started).

        The run, its experiment and its siblings' statuses are known in memory, so the run (and the experiment it
        settles) is written through the row journal, as one atomic group.
        """
        now = utcnow()
        with self.db.write(behind=True) as con:
            self.db.flush_metrics([run_id])  # the points a run took come before its end
            run = require_run(self.db, con, run_id)
            experiment = cached(self.db, con, run.experiment_id)
            ending = update.status in TERMINAL_RUN
            if (
                run.status in TERMINAL_RUN
                or update.status is run.status
                or not (ending or (update.status is RunStatus.RUNNING and run.status is RunStatus.PENDING))
            ):
                raise Conflict(f"Cannot move run from {run.status.value} to {update.status.value}",
                               code="invalid_status_transition",
                               details={"from": run.status.value, "to": update.status.value})  # fmt: skip
            if ending:
                error = update.error if update.status is RunStatus.FAILED else None
                fields: dict[str, object] = {"status": update.status.value, "completed_at": now, "error": error,
                                             **ended}  # fmt: skip
            else:
                fields = {"status": update.status.value, "started_at": now}
            # The answer is built before anything is written: nothing is committed that could not be answered.
            answer = with_summary(
                run.model_copy(update={**fields, "status": update.status}),
                run_stats(self.db, con, [run_id]).get(run_id, {}), experiment.metric_goals,
            )  # fmt: skip
            writes = [RowWrite("runs", run_id, store.update_values(fields))]
            change = status_from_runs(experiment.status, self._outcomes(con, experiment.id, answer))
            changed = self._experiment_write(experiment, change, writes)
            self.db.journal_rows(writes)
            self.db.rows.put_run(answer)
            if changed is not None:
                self.db.rows.put_experiment(changed)
            return answer

    def report_status(self, run_id: str, update: RunStatusUpdate) -> Run:
        """A status reported from outside (POST /api/runs/{id}/status): only an external run takes one. The status
        of a run TuneLab started follows its training process; it is cancelled with `cancel`."""
        with self.db.read() as con:
            run = require_run(self.db, con, run_id)
        if not run.external:
            raise Conflict(f"Run {run.name!r} was started by TuneLab: its status follows its training process "
                           "(cancel it with POST /api/runs/{id}/cancel)", code="run_not_external",
                           details={"run_id": run_id})  # fmt: skip
        return self.set_status(run_id, update)

    def cancel(self, run_id: str) -> Run:
        return self.set_status(run_id, RunStatusUpdate(status=RunStatus.CANCELLED))

    def ingest(self, run_id: str, batch: MetricBatch | MetricColumns) -> int:
        """Store a batch atomically; a point sent again for a (key, step) replaces the one stored.

        A batch that appends (every key's steps past those stored: a training loop logging as it goes) goes to the
        metric journal, durable when this returns (store/journal.py). A batch that resends stored steps deletes
        them first, in one transaction, and its run's stats are computed afresh.
        """
        points = batch if isinstance(batch, MetricColumns) else MetricColumns.of(batch)
        validate_batch(points)
        points = points.deduplicated()
        fresh = batch_stats(points)
        with self.db.write() as con:
            self._require_running(con, run_id)  # from memory: under the write lock, the run's status as stored
            if not points:
                return 0
            stats = run_stats(self.db, con, [run_id])[run_id]
            if appends_to(stats, fresh):
                self.db.journal_append(Entry(run_id, points, utcnow()))
                self.db.summaries.appended(run_id, fresh)
                return len(points)
            self.db.flush_metrics([run_id])  # the rows to replace may still wait in the journal
            with self.db.transaction():
                stored = [i for i, (k, s) in enumerate(zip(points.keys, points.steps, strict=True))
                          if k in stats and s <= stats[k].last_step]  # fmt: skip
                metric_store.delete_points(con, run_id, [points.keys[i] for i in stored],
                                           [points.steps[i] for i in stored])  # fmt: skip
                metric_store.insert_points(con, run_id, points, utcnow())
            self.db.summaries.forget(run_id)
            self.db.tiles.forget(run_id)
        return len(points)

    def _require_running(self, con: Connection, run_id: str) -> None:
        """404 for an unknown run, 409 for one that is not running (a batch is refused whole)."""
        run = require_run(self.db, con, run_id)
        if run.status in TERMINAL_RUN:
            raise Conflict(f"Run {run.name!r} has ended ({run.status.value}); it takes no more metrics",
                           code="run_finished", details={"run_id": run_id, "status": run.status.value})  # fmt: skip
        if run.status is not RunStatus.RUNNING:
            raise Conflict(f"Run {run.name!r} has not started; it takes metrics once it runs",
                           code="run_not_started", details={"run_id": run_id, "status": run.status.value})  # fmt: skip

    def metrics(
        self,
        run_id: str,
        keys: list[str] | None = None,
        after_step: int | None = None,
        limit: int = DEFAULT_SERIES_LIMIT,
        max_points: int | None = None,
    ) -> bytes:
        """The run's series (all, or `keys`) as JSON bytes in the RunMetrics shape, built by the database.

        Each series holds the points after `after_step`, at most `limit` of them (`next_after_step` says where a
        cut series goes on); with `max_points`, each is instead decimated to at most that many points for a chart.
        """
        generation = self.db.summaries.generation(run_id)  # before DuckDB is read: see store/texts.py
        self.db.flush_metrics([run_id])  # the journal's batches of the run, so that every acknowledged point is read
        with self.db.read() as con:
            run = require_run(self.db, con, run_id)
            goals = cached(self.db, con, run.experiment_id).metric_goals
            stats = run_stats(self.db, con, [run_id]).get(run_id, {})
            wanted = [key for key in stats if keys is None or key in keys]
            floor = -1 if after_step is None else after_step
            spans = {k: (max(stats[k].first_step, floor + 1), stats[k].last_step) for k in wanted}
            spans = {k: span for k, span in spans.items() if span[0] <= span[1]}
            dense = {k for k in spans if max_points is None or stats[k].count <= max_points}
            series: dict[str, str] = {}
            next_after: dict[str, int] = {}
            # A series read whole (the common case) needs no numbering of its points to be cut at `limit`.
            whole = {k for k in dense if after_step is None and stats[k].count <= limit}
            for key in whole:
                text = self.db.texts.get(run_id, key, generation)
                if text is not None:
                    series[key] = text
            if whole - series.keys():
                read = metric_store.whole_series_json(con, run_id, sorted(whole - series.keys()))
                for key, text in read.items():
                    self.db.texts.keep(run_id, key, generation, text)
                series |= read
            if dense - whole:
                for key, (text, last, total) in metric_store.series_json(con, run_id, sorted(dense - whole),
                                                                         after_step, limit).items():  # fmt: skip
                    series[key] = text
                    if total > limit:
                        next_after[key] = last
            sparse = {k: spans[k] for k in spans if k not in dense}
            buckets = max(1, (max_points or 0) // 2)
            shifts = {k: tile_shift(*sparse[k], buckets) if after_step is None else None for k in sparse}
            for key, shift in shifts.items():  # long series read whole: from their tiles (store/tiles.py)
                if shift is not None:
                    series[key] = decimated_json(self.db.tiles.tiles(con, run_id, key), shift)
            raw = {k: span for k, span in sparse.items() if shifts[k] is None}
            if raw and max_points:
                for key, (text, _) in metric_store.downsampled_json(con, run_id, raw, buckets).items():
                    series[key] = text
        head = {
            "run_id": run_id,
            "summary": {k: v.model_dump(mode="json") for k, v in summarise(stats, goals).items()},
            "final_loss": final_loss_of(stats),
            "adapter_id": run.adapter_id,
            "next_after_step": next_after,
        }
        body = ",".join(f"{json.dumps(key)}:{series[key]}" for key in sorted(series))
        return (json.dumps(head)[:-1] + ',"series":{' + body + "}}").encode()

    def history(self, run_ids: list[str], key: str, max_points: int | None = None) -> bytes:
        """One key's history for many runs as JSON bytes in the MetricHistory shape (columns per run)."""
        run_ids = list(dict.fromkeys(run_ids))
        if not run_ids or len(run_ids) > MAX_HISTORY_RUNS:
            raise Unprocessable(f"History takes 1 to {MAX_HISTORY_RUNS} run ids", code="invalid_compare",
                                details={"max": MAX_HISTORY_RUNS})  # fmt: skip
        self.db.flush_metrics(run_ids)
        with self.db.read() as con:
            stats = run_stats(self.db, con, run_ids)
            missing = sorted(set(run_ids) - set(stats))
            if missing:
                raise NotFound(f"Unknown run ids: {', '.join(missing)}", code="run_not_found",
                               details={"missing": missing})  # fmt: skip
            having = [rid for rid in run_ids if key in stats[rid]]
            dense = [rid for rid in having if max_points is None or stats[rid][key].count <= max_points]
            columns = metric_store.history_json(con, dense, key) if dense else {}
            sparse = {
                rid: (stats[rid][key].first_step, stats[rid][key].last_step) for rid in having if rid not in dense
            }
            if sparse and max_points:
                columns |= metric_store.history_downsampled_json(con, sparse, key, max(1, max_points // 2))
        body = ",".join(f"{json.dumps(rid)}:{columns[rid]}" for rid in having if rid in columns)
        return ('{"key":' + json.dumps(key) + ',"runs":{' + body + "}}").encode()

    def compare(self, run_ids: list[str]) -> RunComparison:
        run_ids = list(dict.fromkeys(run_ids))
        if not run_ids or len(run_ids) > MAX_COMPARE:
            raise Unprocessable(f"Compare takes 1 to {MAX_COMPARE} run ids", code="invalid_compare")
        with self.db.read() as con:
            found = cached_runs(self.db, con, run_ids)
            missing = sorted(set(run_ids) - set(found))
            if missing:
                raise NotFound(f"Unknown run ids: {', '.join(missing)}", code="run_not_found",
                               details={"missing": missing})  # fmt: skip
            stats = run_stats(self.db, con, run_ids)
            goals = {rid: cached(self.db, con, run.experiment_id).metric_goals for rid, run in found.items()}
        runs = [with_summary(found[rid], stats.get(rid, {}), goals[rid]) for rid in run_ids]
        return RunComparison(runs=runs, metrics=compare_metrics(runs))


def next_run_name(taken: set[str]) -> str:
    """run-N with N one past the run count, or the next N whose name no run has taken yet."""
    n = len(taken) + 1
    while f"run-{n}" in taken:
        n += 1
    return f"run-{n}"


def compare_metrics(runs: list[Run]) -> dict[str, MetricComparison]:
    """Final value of every metric per run, and which runs are best at it (every one tied for the best)."""
    keys = sorted({key for run in runs for key in run.metrics_summary})
    out: dict[str, MetricComparison] = {}
    for key in keys:
        goals = {run.metrics_summary[key].goal for run in runs if key in run.metrics_summary}
        # Runs of different experiments may disagree on a goal; a metric is ranked only where they agree.
        goal = goals.pop() if len(goals) == 1 else MetricGoal.NONE
        values = {run.id: (run.metrics_summary[key].final if key in run.metrics_summary else None) for run in runs}
        best = ranked(values, goal)
        out[key] = MetricComparison(values=values, best_run_id=best[0] if best else None, best_run_ids=best, goal=goal)
    return out


def _row(run: Run) -> dict[str, object]:
    return {
        "id": run.id, "experiment_id": run.experiment_id, "name": run.name, "status": run.status.value,
        "training_type": run.training_type, "external": run.external, "config": run.config, "inputs": run.inputs,
        "created_at": run.created_at, "started_at": run.started_at, "completed_at": run.completed_at,
        "error": run.error, "output_dir": run.output_dir, "provenance": run.provenance,
    }  # fmt: skip


@dataclass(frozen=True)
class PreparedRun:
    """What the training service settled before a run TuneLab trains is created: its id (its output folder is
    named after it), resolved config, frozen inputs and provenance; `error` when it cannot start at all."""

    run_id: str
    training_type: str
    config: dict[str, Any]
    inputs: dict[str, list[str]]
    output_dir: str
    provenance: dict[str, Any]
    error: str | None = None


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
