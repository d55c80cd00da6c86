"""Experiments: create, read, update, archive, and the tracker's status and results."""

from __future__ import annotations

import uuid

from tunelab.domain.common import Page, utcnow
from tunelab.domain.experiments import (
    ALLOWED_TRANSITIONS,
    TERMINAL_EXPERIMENT,
    Experiment,
    ExperimentCreate,
    ExperimentDetail,
    ExperimentFilter,
    ExperimentStatus,
    ExperimentUpdate,
)
from tunelab.errors import Conflict, NotFound, Unprocessable
from tunelab.services import provenance
from tunelab.store import artifacts as artifact_store
from tunelab.store import experiments as store
from tunelab.store import runs as run_store
from tunelab.store.db import Connection, Database


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def require(con: Connection, experiment_id: str) -> Experiment:
    experiment = store.get(con, experiment_id)
    if experiment is None:
        raise NotFound(f"Experiment {experiment_id!r} does not exist", code="experiment_not_found",
                       details={"experiment_id": experiment_id})  # fmt: skip
    return experiment


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


class ExperimentService:
    """Implements `tunelab.services.tracker.ExperimentTracker` on the DuckDB store."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, data: ExperimentCreate) -> Experiment:
        prov = provenance.capture(data.provenance)
        now = utcnow()
        with self.db.transaction() as con:
            if data.id and store.get(con, data.id):
                raise Conflict(f"Experiment id {data.id!r} is taken", code="experiment_exists")
            self._require_free_name(con, data.name)
            require_artifacts(con, [aid for ids in data.inputs.values() for aid in ids])
            experiment_id = data.id or new_id("exp")
            store.insert(
                con,
                {
                    "id": experiment_id, "name": data.name, "description": data.description,
                    "status": ExperimentStatus.DRAFT.value, "dataset_id": data.dataset_id, "config": data.config,
                    "inputs": data.inputs, "git_commit": prov.git_commit, "git_dirty": prov.git_dirty,
                    "engine_version": prov.engine_version, "created_at": prov.created_at, "updated_at": now,
                },
            )  # fmt: skip
            return require(con, experiment_id)

    def get(self, experiment_id: str) -> Experiment:
        with self.db.read() as con:
            return require(con, experiment_id)

    def detail(self, experiment_id: str) -> ExperimentDetail:
        with self.db.read() as con:
            experiment = require(con, experiment_id)
            runs = run_store.list_for_experiment(con, experiment_id)
        return ExperimentDetail(**experiment.model_dump(), runs=runs)

    def list_page(self, flt: ExperimentFilter) -> Page[Experiment]:
        if flt.status:
            parse_status(flt.status)
        with self.db.read() as con:
            items, total = store.list_page(con, flt)
        return Page(items=items, total=total, page=flt.page, page_size=flt.limit or flt.page_size)

    def update(self, experiment_id: str, data: ExperimentUpdate) -> Experiment:
        fields = data.model_dump(exclude_unset=True)
        with self.db.transaction() as con:
            require(con, experiment_id)
            if "name" in fields:
                self._require_free_name(con, fields["name"], experiment_id)
            if fields:
                store.update(con, experiment_id, {**fields, "updated_at": utcnow()})
            return require(con, experiment_id)

    def archive(self, experiment_id: str) -> Experiment:
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            if experiment.status is not ExperimentStatus.ARCHIVED:
                store.update(con, experiment_id, {"status": ExperimentStatus.ARCHIVED.value, "updated_at": utcnow()})
            return require(con, experiment_id)

    def unarchive(self, experiment_id: str) -> Experiment:
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            if experiment.status is not ExperimentStatus.ARCHIVED:
                raise Conflict(f"Experiment {experiment.name!r} is not archived", code="experiment_not_archived")
            store.update(con, experiment_id, {"status": ExperimentStatus.DRAFT.value, "updated_at": utcnow()})
            return require(con, experiment_id)

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
            store.update(con, experiment_id, execution_fields(experiment, target, error))
            return require(con, experiment_id)

    def store_results(self, experiment_id: str, outputs: dict[str, str]) -> Experiment:
        with self.db.transaction() as con:
            experiment = require(con, experiment_id)
            require_artifacts(con, list(outputs.values()))
            store.unlink_outputs(con, experiment_id, list(outputs))
            store.link_artifacts(con, experiment_id, "output", {name: [aid] for name, aid in outputs.items()})
            store.update(con, experiment_id, {"outputs": {**experiment.outputs, **outputs}, "updated_at": utcnow()})
            return require(con, experiment_id)

    def find_by_input_artifacts(self, artifact_ids: list[str]) -> list[Experiment]:
        with self.db.read() as con:
            return store.find_by_input_artifacts(con, artifact_ids)

    def _require_free_name(self, con: Connection, name: str, own_id: str | None = None) -> None:
        owner = store.name_owner(con, name)
        if owner is not None and owner != own_id:
            raise Conflict(f"An experiment named {name!r} already exists", code="experiment_name_taken",
                           details={"name": name, "experiment_id": owner})  # fmt: skip


def execution_fields(experiment: Experiment, target: ExperimentStatus, error: str | None) -> dict[str, object]:
    """The columns a status change writes: execution start, end, duration and error."""
    now = utcnow()
    fields: dict[str, object] = {"status": target.value, "updated_at": now}
    if target is ExperimentStatus.RUNNING:
        fields.update(started_at=now, completed_at=None, duration_ms=None, error=None)
    elif target in TERMINAL_EXPERIMENT:
        started = experiment.execution.started_at
        fields["completed_at"] = now
        fields["duration_ms"] = int((now - started).total_seconds() * 1000) if started else None
        fields["error"] = error if target is ExperimentStatus.FAILED else None
    return fields
