"""SQL for runs. Their metric summaries are not stored here: the service derives them (store/summaries.py)."""

from __future__ import annotations

import json
from typing import Any

from tunelab.domain.runs import Run, RunStatus
from tunelab.store import db
from tunelab.store.db import Connection, fetch_dicts

_JSON_COLUMNS = {"config", "inputs", "provenance"}
UPDATABLE = {"status", "error", "adapter_id", "started_at", "completed_at", "inputs", "config", "exit_code"}


def insert_values(row: dict[str, Any]) -> dict[str, Any]:
    return db.insert_values(row, _JSON_COLUMNS)


def update_values(fields: dict[str, Any]) -> dict[str, Any]:
    return db.update_values(fields, _JSON_COLUMNS, UPDATABLE)


def insert(con: Connection, row: dict[str, Any]) -> None:
    """Insert a run."""
    values = insert_values(row)
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", list(values.values()))  # noqa: S608


def update(con: Connection, run_id: str, fields: dict[str, Any]) -> None:
    values = update_values(fields)
    assignments = ", ".join(f"{column} = ?" for column in values)
    con.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*values.values(), run_id])  # noqa: S608


def get_many(con: Connection, run_ids: list[str]) -> list[Run]:
    """The runs of `run_ids` that exist, as stored."""
    return [to_run(row) for row in fetch_dicts(con, "SELECT * FROM runs WHERE list_contains(?, id)", [run_ids])]


def ids_by_experiment(con: Connection) -> dict[str, list[str]]:
    """Every experiment's run ids, oldest first (experiments without runs are absent)."""
    rows = con.execute("SELECT experiment_id, list(id ORDER BY created_at, id) FROM runs GROUP BY experiment_id")
    return {str(experiment_id): list(ids) for experiment_id, ids in rows.fetchall()}


def started_here_with(con: Connection, status: str) -> list[str]:
    """The ids of the runs TuneLab started (not external) that have `status`, oldest first: the queue's order."""
    rows = con.execute("SELECT id FROM runs WHERE status = ? AND NOT external ORDER BY created_at, id", [status])
    return [str(row[0]) for row in rows.fetchall()]


def names_for_experiment(con: Connection, experiment_id: str) -> set[str]:
    return {
        str(row[0]) for row in con.execute("SELECT name FROM runs WHERE experiment_id = ?", [experiment_id]).fetchall()
    }


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
        output_dir=row["output_dir"],
        exit_code=row["exit_code"],
        provenance=json.loads(row["provenance"] or "{}"),
    )
