"""Experiments: create, read, update, archive, and the tracker's status and results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import duckdb

from tunelab.domain.common import Page, utcnow
from tunelab.domain.experiments import (
    ALLOWED_TRANSITIONS,
    TERMINAL_EXPERIMENT,
    Execution,
    Experiment,
    ExperimentCreate,
    ExperimentDetail,
    ExperimentFilter,
    ExperimentStatus,
    ExperimentUpdate,
)
from tunelab.domain.metrics import RunStats, best_of_runs
from tunelab.domain.runs import Run
from tunelab.errors import Conflict, NotFound, Unprocessable
from tunelab.services import provenance
from tunelab.services.summaries import run_stats, with_summaries
from tunelab.store import artifacts as artifact_store
from tunelab.store import experiments as store
from tunelab.store import runs as run_store
from tunelab.store.db import Connection, Database
from tunelab.store.row_journal import RowWrite


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def not_found(experiment_id: str) -> NotFound:
    return NotFound(f"Experiment {experiment_id!r} does not exist", code="experiment_not_found",
                    details={"experiment_id": experiment_id})  # fmt: skip


def require(con: Connection, experiment_id: str) -> Experiment:
    """The experiment as stored (without the run count and best metrics derived from its runs), or 404."""
    experiment = store.get(con, experiment_id)
    if experiment is None:
        raise not_found(experiment_id)
    return experiment


def cached(db: Database, con: Connection, experiment_id: str) -> Experiment:
    """The experiment as stored, from memory (read through `con` the first time), or 404. Under the write lock this
    is the database itself; a write block reads through `require` what it changed itself."""

    def load(eid: str) -> Experiment | None:
        db.flush_rows()  # never needed while caches hold what the row journal holds; cheap when it is empty
        return store.get(con, eid)

    experiment = db.rows.experiment(experiment_id, load)
    if experiment is None:
        raise not_found(experiment_id)
    return experiment


def cached_experiments(db: Database, con: Connection, experiment_ids: list[str]) -> list[Experiment]:
    """The experiments of `experiment_ids` in that order, from memory (those not there read in one query)."""

    def load(missing: list[str]) -> list[Experiment]:
        db.flush_rows()
        return store.get_many(con, missing)

    found = db.rows.experiments(experiment_ids, load)
    return [found[eid] for eid in experiment_ids if eid in found]


def cached_runs(db: Database, con: Connection, run_ids: list[str]) -> dict[str, Run]:
    """The existing runs of `run_ids` as stored, from memory (those not there read through `con` in one query)."""

    def load(missing: list[str]) -> list[Run]:
        db.flush_rows()
        return run_store.get_many(con, missing)

    return db.rows.runs(run_ids, load)


def runs_of(db: Database, con: Connection, experiment_id: str) -> list[Run]:
    """The experiment's runs, newest first."""
    ids = db.rows.runs_of([experiment_id]).get(experiment_id, [])
    return sorted(cached_runs(db, con, ids).values(), key=lambda run: (run.created_at, run.id), reverse=True)


def require_artifacts(con: Connection, artifact_ids: list[str]) -> None:
    missing = artifact_store.missing(con, artifact_ids)
    if missing:
        raise Unprocessable(
            f"Unknown artifact ids: {', '.join(missing)}",
            code="unknown_artifacts",
            details={"missing": missing},
        )


def parse_status(status: str) -> ExperimentStatus:
    """The status a caller named (`pending` is `draft`), or 422 invalid_status."""
    try:
        return ExperimentStatus.parse(status)
    except ValueError:
        raise Unprocessable(
            f"Unknown status {status!r}", code="invalid_status",
            details={"allowed": ["pending", *[s.value for s in ExperimentStatus if s != "archived"]]},
        ) from None  # fmt: skip


def id_taken(experiment_id: str) -> Conflict:
    return Conflict(f"Experiment id {experiment_id!r} is taken", code="experiment_exists",
                    details={"experiment_id": experiment_id})  # fmt: skip


def name_taken(name: str, owner: str) -> Conflict:
    return Conflict(f"An experiment named {name!r} already exists", code="experiment_name_taken",
                    details={"name": name, "experiment_id": owner})  # fmt: skip


class ExperimentService:
    """Implements `tunelab.services.tracker.ExperimentTracker` on the DuckDB store."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, data: ExperimentCreate) -> Experiment:
        prov = provenance.capture(data.provenance)
        assert prov.created_at is not None, "capture always dates provenance"
        experiment = Experiment(
            id=data.id or new_id("exp"), name=data.name, description=data.description,
            status=ExperimentStatus.DRAFT, archived=False, dataset_id=data.dataset_id, config=data.config,
            inputs=data.inputs, outputs={}, provenance=prov, execution=Execution(), best_metrics={},
            metric_goals=data.metric_goals, run_count=0, created_at=prov.created_at, updated_at=utcnow(),
        )  # fmt: skip
        # The answer is built before anything is written. Without inputs the experiment is one row, checked against
        # the ids and names in memory and written through the row journal; inputs are checked and linked in DuckDB.
        if not data.inputs:
            with self.db.write(behind=True):
                if self.db.rows.experiment_exists(experiment.id):
                    raise id_taken(experiment.id)
                owner = self.db.rows.experiment_named(experiment.name)
                if owner is not None:
                    raise name_taken(experiment.name, owner)
                self.db.journal_rows([RowWrite("experiments", experiment.id, store.insert_values(_row(experiment)),
                                               insert=True)])  # fmt: skip
                self._created(experiment)
            return experiment
        with self.db.transaction() as con:
            require_artifacts(con, [aid for ids in data.inputs.values() for aid in ids])
            try:
                inserted = store.insert(con, _row(experiment))
            except duckdb.ConstraintException:
                raise id_taken(experiment.id) from None
            if not inserted:
                raise name_taken(experiment.name, store.name_owner(con, experiment.name) or "")
            self.db.after_commit(lambda: self._created(experiment))
        return experiment

    def _created(self, experiment: Experiment) -> None:
        self.db.rows.experiment_created(experiment)

    def get(self, experiment_id: str) -> Experiment:
        with self.db.read() as con:
            return self._derived(con, [cached(self.db, con, experiment_id)])[0]

    def detail(self, experiment_id: str) -> ExperimentDetail:
        with self.db.read() as con:
            experiment = cached(self.db, con, experiment_id)
            runs = runs_of(self.db, con, experiment_id)
            stats = run_stats(self.db, con, [run.id for run in runs])
        derived = _with_runs(experiment, [stats.get(run.id, {}) for run in runs], len(runs))
        # Built from validated parts without validating them again (50 runs of 20 metrics each cost ~10 ms).
        return ExperimentDetail.model_construct(
            **dict(derived), runs=with_summaries(runs, stats, experiment.metric_goals)
        )

    def list_page(self, flt: ExperimentFilter) -> Page[Experiment]:
        if flt.status:
            parse_status(flt.status)
        # The artifact type filter also reads the artifacts table, whose writes do not move the listing generation.
        query = None if flt.artifact_type else flt.model_dump_json()
        generation, kept = self.db.rows.listing(query) if query else (0, None)
        with self.db.read() as con:
            if kept is not None:
                ids, total = kept
            else:
                ids, total = store.list_page(con, flt)
                if query:
                    self.db.rows.keep_listing(query, generation, ids, total)
            items = self._derived(con, cached_experiments(self.db, con, ids))
        return Page(items=items, total=total, page=flt.page, page_size=flt.limit or flt.page_size)

    def runs_page(self, experiment_id: str, page: int, page_size: int) -> Page[Run]:
        """One page of the experiment's runs, newest first."""
        with self.db.read() as con:
            experiment = cached(self.db, con, experiment_id)
            every = runs_of(self.db, con, experiment_id)
            runs = every[(page - 1) * page_size : page * page_size]
            stats = run_stats(self.db, con, [run.id for run in runs])
        return Page(items=with_summaries(runs, stats, experiment.metric_goals), total=len(every), page=page,
                    page_size=page_size)  # fmt: skip

    def update(self, experiment_id: str, data: ExperimentUpdate) -> Experiment:
        fields = data.model_dump(exclude_unset=True)
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            if "name" in fields:
                owner = store.name_owner(con, fields["name"])
                if owner is not None and owner != experiment_id:
                    raise name_taken(fields["name"], owner)
            if "metric_goals" in fields:
                merged = {**experiment.metric_goals, **fields["metric_goals"]}
                fields["metric_goals"] = {key: goal for key, goal in merged.items() if goal is not None}
            if fields:
                store.update(con, experiment_id, {**fields, "updated_at": utcnow()})
                self._changed(experiment_id)
                if "name" in fields:
                    self.db.after_commit(lambda: self.db.rows.named(experiment_id, fields["name"]))
            return self._derived(con, [require(con, experiment_id)])[0]

    def archive(self, experiment_id: str) -> Experiment:
        """Archive; archiving an archived experiment changes nothing."""
        return self._set_archived(experiment_id, ExperimentStatus.ARCHIVED)

    def unarchive(self, experiment_id: str) -> Experiment:
        """Bring an archived experiment back as draft; unarchiving one that is not archived changes nothing."""
        return self._set_archived(experiment_id, ExperimentStatus.DRAFT)

    def _set_archived(self, experiment_id: str, target: ExperimentStatus) -> Experiment:
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            if experiment.archived is not (target is ExperimentStatus.ARCHIVED):
                store.update(con, experiment_id, {"status": target.value, "updated_at": utcnow()})
                self._changed(experiment_id)
                experiment = require(con, experiment_id)
            return self._derived(con, [experiment])[0]

    # The tracker port.

    def create_experiment(self, definition: ExperimentCreate) -> Experiment:
        return self.create(definition)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.get(experiment_id)

    def list_experiments(self, flt: ExperimentFilter) -> list[Experiment]:
        return self.list_page(flt).items

    def update_status(self, experiment_id: str, status: str, error: str | None = None) -> Experiment:
        target = parse_status(status)
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            if target not in ALLOWED_TRANSITIONS[experiment.status]:
                raise Conflict(
                    f"Cannot move experiment from {experiment.status.value} to {target.value}",
                    code="invalid_status_transition",
                    details={"from": experiment.status.value, "to": target.value,
                             "allowed": sorted(s.value for s in ALLOWED_TRANSITIONS[experiment.status])},
                )  # fmt: skip
            store.update(con, experiment_id, execution_fields(experiment.execution.started_at, target, error))
            self._changed(experiment_id)
            return self._derived(con, [require(con, experiment_id)])[0]

    def store_results(self, experiment_id: str, outputs: dict[str, str]) -> Experiment:
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            require_artifacts(con, list(outputs.values()))
            store.unlink_outputs(con, experiment_id, list(outputs))
            store.link_artifacts(con, experiment_id, "output", {name: [aid] for name, aid in outputs.items()})
            store.update(con, experiment_id, {"outputs": {**experiment.outputs, **outputs}, "updated_at": utcnow()})
            self._changed(experiment_id)
            return self._derived(con, [require(con, experiment_id)])[0]

    def find_by_input_artifacts(self, artifact_ids: list[str]) -> list[Experiment]:
        with self.db.read() as con:
            ids, _ = store.find_by_input_artifacts(con, artifact_ids)
            return self._derived(con, cached_experiments(self.db, con, ids))

    def find_page_by_input_artifacts(self, artifact_ids: list[str], page: int, page_size: int) -> Page[Experiment]:
        with self.db.read() as con:
            ids, total = store.find_by_input_artifacts(con, artifact_ids, page_size, (page - 1) * page_size)
            items = self._derived(con, cached_experiments(self.db, con, ids))
        return Page(items=items, total=total, page=page, page_size=page_size)

    def _changed(self, experiment_id: str) -> None:
        self.db.after_commit(lambda: self.db.rows.experiment_changed(experiment_id))

    def _derived(self, con: Connection, experiments: list[Experiment]) -> list[Experiment]:
        """Experiments with the run counts and best metrics of their runs (two queries for a whole page)."""
        run_ids = self.db.rows.runs_of([e.id for e in experiments])
        stats = run_stats(self.db, con, [rid for ids in run_ids.values() for rid in ids])
        return [
            _with_runs(e, [stats.get(rid, {}) for rid in run_ids.get(e.id, [])], len(run_ids.get(e.id, [])))
            for e in experiments
        ]


def _with_runs(experiment: Experiment, runs: list[RunStats], run_count: int) -> Experiment:
    best = best_of_runs(runs, experiment.metric_goals)
    return experiment.model_copy(update={"run_count": run_count, "best_metrics": best})


def _row(experiment: Experiment) -> dict[str, Any]:
    prov = experiment.provenance
    return {
        "id": experiment.id, "name": experiment.name, "description": experiment.description,
        "status": experiment.status.value, "dataset_id": experiment.dataset_id, "config": experiment.config,
        "inputs": experiment.inputs, "metric_goals": experiment.metric_goals, "git_commit": prov.git_commit,
        "git_dirty": prov.git_dirty, "engine_version": prov.engine_version, "created_at": experiment.created_at,
        "updated_at": experiment.updated_at,
    }  # fmt: skip


def with_fields(experiment: Experiment, fields: dict[str, Any]) -> Experiment:
    """The experiment as it is once `fields` (execution_fields' columns) are written."""
    status = ExperimentStatus(fields.get("status", experiment.status))
    execution = experiment.execution.model_copy(
        update={k: fields[k] for k in ("started_at", "completed_at", "duration_ms", "error") if k in fields}
    )
    return experiment.model_copy(update={
        "status": status, "archived": status is ExperimentStatus.ARCHIVED, "execution": execution,
        "updated_at": fields.get("updated_at", experiment.updated_at),
    })  # fmt: skip


def execution_fields(started: datetime | None, target: ExperimentStatus, error: str | None) -> dict[str, object]:
    """The columns a status change of an experiment started at `started` writes: execution start, end, duration
    and error."""
    now = utcnow()
    fields: dict[str, object] = {"status": target.value, "updated_at": now}
    if target is ExperimentStatus.RUNNING:
        fields.update(started_at=now, completed_at=None, duration_ms=None, error=None)
    elif target in TERMINAL_EXPERIMENT:
        fields["completed_at"] = now
        fields["duration_ms"] = int((now - started).total_seconds() * 1000) if started else None
        fields["error"] = error if target is ExperimentStatus.FAILED else None
    return fields
