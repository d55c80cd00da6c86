"""SQL for runs. Their metric summaries are not stored here: the service derives them (store/summaries.py)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tunelab.domain.experiments import RunOutcome
from tunelab.domain.metrics import MetricGoal
from tunelab.domain.runs import TERMINAL_RUN, Run, RunStatus
from tunelab.store.db import Connection, fetch_dicts, fetch_one, json_text

_JSON_COLUMNS = {"config", "inputs"}
UPDATABLE = {"status", "error", "adapter_id", "started_at", "completed_at", "inputs", "config"}
_OPEN = [s.value for s in RunStatus if s not in TERMINAL_RUN]
# A run with its experiment's metric goals, which decide what its summary calls best.
_SELECT = (
    "SELECT r.*, e.metric_goals AS experiment_metric_goals FROM runs r JOIN experiments e ON e.id = r.experiment_id"
)

Goals = dict[str, MetricGoal]


def insert(con: Connection, row: dict[str, Any]) -> None:
    values = {k: json_text(v) if k in _JSON_COLUMNS else v for k, v in row.items()}
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


def end(con: Connection, run_id: str, status: RunStatus, error: str | None, now: datetime) -> Run | None:
    """End a run that has not ended yet, in one statement; the run as it is now, or None if it had ended
    (or does not exist)."""
    row = fetch_one(
        con,
        "UPDATE runs SET status = ?, completed_at = ?, error = ? WHERE id = ? AND list_contains(?, status) RETURNING *",
        [status.value, now, error, run_id, _OPEN],
    )
    return to_run(row) if row else None


def get(con: Connection, run_id: str) -> tuple[Run, Goals] | None:
    row = fetch_one(con, _SELECT + " WHERE r.id = ?", [run_id])
    return (to_run(row), _goals(row)) if row else None


def get_many(con: Connection, run_ids: list[str]) -> list[tuple[Run, Goals]]:
    rows = fetch_dicts(con, _SELECT + " WHERE list_contains(?, r.id)", [run_ids])
    by_id = {row["id"]: (to_run(row), _goals(row)) for row in rows}
    return [by_id[rid] for rid in run_ids if rid in by_id]


def list_for_experiment(
    con: Connection, experiment_id: str, limit: int | None = None, offset: int = 0
) -> tuple[list[Run], int]:
    """The experiment's runs, newest first, and how many it has."""
    rows = fetch_dicts(
        con,
        "SELECT *, count(*) OVER () AS total FROM runs WHERE experiment_id = ? "
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        [experiment_id, limit, offset],
    )
    if rows or not offset:
        return [to_run(row) for row in rows], int(rows[0]["total"]) if rows else 0
    count = con.execute("SELECT count(*) FROM runs WHERE experiment_id = ?", [experiment_id]).fetchone()
    return [], int(count[0]) if count else 0


def ids_by_experiment(con: Connection, experiment_ids: list[str]) -> dict[str, list[str]]:
    """Each experiment's run ids (experiments without runs are absent)."""
    rows = con.execute(
        "SELECT experiment_id, list(id) FROM runs WHERE experiment_id IN (SELECT unnest(?)) GROUP BY experiment_id",
        [experiment_ids],
    ).fetchall()
    return {str(experiment_id): list(ids) for experiment_id, ids in rows}


def outcomes(con: Connection, experiment_id: str) -> list[RunOutcome]:
    rows = con.execute(
        "SELECT status, completed_at, error FROM runs WHERE experiment_id = ?", [experiment_id]
    ).fetchall()
    return [RunOutcome(RunStatus(status), ended, error) for status, ended, error in rows]


def names_for_experiment(con: Connection, experiment_id: str) -> set[str]:
    return {
        str(row[0]) for row in con.execute("SELECT name FROM runs WHERE experiment_id = ?", [experiment_id]).fetchall()
    }


def _goals(row: dict[str, Any]) -> Goals:
    return {key: MetricGoal(goal) for key, goal in json.loads(row["experiment_metric_goals"]).items()}


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
