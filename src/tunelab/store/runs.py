"""SQL for runs. Their metric summaries are not stored here: the service derives them (store/summaries.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunelab.domain.experiments import ExperimentStatus, RunOutcome
from tunelab.domain.metrics import MetricGoal
from tunelab.domain.runs import Run, RunStatus
from tunelab.store.db import Connection, fetch_dicts, fetch_one, json_text, total_of

_JSON_COLUMNS = {"config", "inputs"}
UPDATABLE = {"status", "error", "adapter_id", "started_at", "completed_at", "inputs", "config"}
# A run with its experiment's metric goals (which decide what its summary calls best) and status.
_SELECT = (
    "SELECT r.*, e.metric_goals AS experiment_metric_goals, e.status AS experiment_status "
    "FROM runs r JOIN experiments e ON e.id = r.experiment_id"
)


@dataclass(frozen=True)
class StoredRun:
    run: Run
    goals: dict[str, MetricGoal]
    experiment_status: ExperimentStatus


def insert(con: Connection, row: dict[str, Any]) -> None:
    """Insert a run; columns left None take their defaults (each column a row names costs time in DuckDB)."""
    values = {k: json_text(v) if k in _JSON_COLUMNS else v for k, v in row.items() if v is not None}
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", list(values.values()))  # noqa: S608


def update(con: Connection, run_id: str, fields: dict[str, Any]) -> None:
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = ?" for column in fields)
    values = [json_text(v) if k in _JSON_COLUMNS else v for k, v in fields.items()]
    con.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*values, run_id])  # noqa: S608


def get(con: Connection, run_id: str) -> StoredRun | None:
    row = fetch_one(con, _SELECT + " WHERE r.id = ?", [run_id])
    return _stored(row) if row else None


def get_many(con: Connection, run_ids: list[str]) -> list[StoredRun]:
    rows = fetch_dicts(con, _SELECT + " WHERE list_contains(?, r.id)", [run_ids])
    by_id = {row["id"]: _stored(row) for row in rows}
    return [by_id[rid] for rid in run_ids if rid in by_id]


def list_for_experiment(
    con: Connection, experiment_id: str, limit: int | None = None, offset: int = 0
) -> tuple[list[Run], int]:
    """The experiment's runs, newest first, and how many it has."""
    rows = fetch_dicts(
        con,
        "SELECT * FROM runs WHERE experiment_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        [experiment_id, limit, offset],
    )
    count_sql = "SELECT count(*) FROM runs WHERE experiment_id = ?"
    return [to_run(row) for row in rows], total_of(con, len(rows), limit, offset, count_sql, [experiment_id])


def ids_by_experiment(con: Connection) -> dict[str, list[str]]:
    """Every experiment's run ids, oldest first (experiments without runs are absent)."""
    rows = con.execute("SELECT experiment_id, list(id ORDER BY created_at, id) FROM runs GROUP BY experiment_id")
    return {str(experiment_id): list(ids) for experiment_id, ids in rows.fetchall()}


def outcomes(con: Connection, experiment_id: str) -> dict[str, RunOutcome]:
    """Each of the experiment's runs' status, end time and error, by run id."""
    rows = con.execute(
        "SELECT id, status, completed_at, error FROM runs WHERE experiment_id = ?", [experiment_id]
    ).fetchall()
    return {run_id: RunOutcome(RunStatus(status), ended, error) for run_id, status, ended, error in rows}


def names_for_experiment(con: Connection, experiment_id: str) -> set[str]:
    return {
        str(row[0]) for row in con.execute("SELECT name FROM runs WHERE experiment_id = ?", [experiment_id]).fetchall()
    }


def _stored(row: dict[str, Any]) -> StoredRun:
    goals = {key: MetricGoal(goal) for key, goal in json.loads(row["experiment_metric_goals"]).items()}
    return StoredRun(to_run(row), goals, ExperimentStatus(row["experiment_status"]))


def to_run(row: dict[str, Any]) -> Run:
    """A run as stored; its metrics summary and final loss are filled in by the service."""
    return Run(
        id=row["id"],
        experiment_id=row["experiment_id"],
        name=row["name"],
        status=RunStatus(row["status"]),
        training_type=row["training_type"],
        external=row["external"],
        config=json.loads(row["config"]),
        inputs=json.loads(row["inputs"]),
        error=row["error"],
        adapter_id=row["adapter_id"],
        final_loss=None,
        metrics_summary={},
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )
