"""SQL for runs."""

from __future__ import annotations

import json
from typing import Any

from tunelab.domain.runs import KeySummary, Run, RunStatus, final_loss
from tunelab.store.db import Connection, fetch_dicts, fetch_one

_JSON_COLUMNS = {"config", "inputs", "summary"}
UPDATABLE = {"status", "error", "adapter_id", "summary", "started_at", "completed_at", "inputs", "config"}


def insert(con: Connection, row: dict[str, Any]) -> None:
    values = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in row.items()}
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", list(values.values()))  # noqa: S608


def update(con: Connection, run_id: str, fields: dict[str, Any]) -> None:
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = ?" for column in fields)
    values = [json.dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items()]
    con.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*values, run_id])  # noqa: S608


def get(con: Connection, run_id: str) -> Run | None:
    row = fetch_one(con, "SELECT * FROM runs WHERE id = ?", [run_id])
    return _to_run(row) if row else None


def get_many(con: Connection, run_ids: list[str]) -> list[Run]:
    rows = fetch_dicts(con, "SELECT * FROM runs WHERE list_contains(?, id)", [run_ids])
    by_id = {row["id"]: _to_run(row) for row in rows}
    return [by_id[rid] for rid in run_ids if rid in by_id]


def list_for_experiment(con: Connection, experiment_id: str) -> list[Run]:
    rows = fetch_dicts(
        con, "SELECT * FROM runs WHERE experiment_id = ? ORDER BY created_at DESC, id DESC", [experiment_id]
    )
    return [_to_run(row) for row in rows]


def count_with_name(con: Connection, experiment_id: str, name: str) -> int:
    row = con.execute(
        "SELECT count(*) FROM runs WHERE experiment_id = ? AND name = ?", [experiment_id, name]
    ).fetchone()
    return int(row[0]) if row else 0


def names_for_experiment(con: Connection, experiment_id: str) -> set[str]:
    return {
        str(row[0]) for row in con.execute("SELECT name FROM runs WHERE experiment_id = ?", [experiment_id]).fetchall()
    }


def _to_run(row: dict[str, Any]) -> Run:
    summary = {key: KeySummary(**value) for key, value in json.loads(row["summary"]).items()}
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
        final_loss=final_loss(summary),
        metrics_summary=summary,
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )
