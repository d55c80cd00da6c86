"""SQL for experiments and the artifacts they declare as inputs and outputs."""

from __future__ import annotations

import json
from typing import Any

from tunelab.domain.common import as_naive_utc
from tunelab.domain.experiments import (
    Execution,
    Experiment,
    ExperimentFilter,
    ExperimentSort,
    ExperimentStatus,
    Provenance,
)
from tunelab.store import db
from tunelab.store.db import Connection, fetch_dicts, fetch_one, total_of

# Run counts and best metrics are not columns: the service derives them from the runs (see services/experiments).
_SELECT = "SELECT e.* FROM experiments e"
UPDATABLE = {
    "name", "description", "dataset_id", "config", "status", "outputs", "metric_goals",
    "updated_at", "started_at", "completed_at", "duration_ms", "error",
}  # fmt: skip
_JSON_COLUMNS = {"config", "outputs", "inputs", "metric_goals"}
_ORDER = {
    ExperimentSort.NEWEST: "e.created_at DESC, e.id",
    ExperimentSort.OLDEST: "e.created_at, e.id",
    ExperimentSort.NAME: "lower(e.name), e.id",
    ExperimentSort.NAME_DESC: "lower(e.name) DESC, e.id",
    ExperimentSort.UPDATED: "e.updated_at DESC, e.id",
    ExperimentSort.UPDATED_OLDEST: "e.updated_at, e.id",
    ExperimentSort.STATUS: "e.status, e.created_at DESC, e.id",
    ExperimentSort.STATUS_DESC: "e.status DESC, e.created_at DESC, e.id",
}


def insert_values(row: dict[str, Any]) -> dict[str, Any]:
    return db.insert_values(row, _JSON_COLUMNS)


def update_values(fields: dict[str, Any]) -> dict[str, Any]:
    return db.update_values(fields, _JSON_COLUMNS, UPDATABLE)


def insert(con: Connection, row: dict[str, Any]) -> bool:
    """Insert the experiment unless its name is taken (checked by the statement itself); whether it was.
    A taken id raises duckdb.ConstraintException."""
    values = insert_values(row)
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    inserted = con.execute(
        f"INSERT INTO experiments ({columns}) SELECT {marks} "  # noqa: S608 - the columns are ours
        "WHERE NOT EXISTS (SELECT 1 FROM experiments WHERE name = ?)",
        [*values.values(), row["name"]],
    ).fetchone()
    if not inserted or not inserted[0]:
        return False
    link_artifacts(con, row["id"], "input", row["inputs"])
    return True


def link_artifacts(con: Connection, experiment_id: str, direction: str, by_type: dict[str, list[str]]) -> None:
    rows = [(experiment_id, direction, kind, aid) for kind, ids in by_type.items() for aid in ids]
    if rows:
        con.execute(
            "INSERT INTO experiment_artifacts SELECT * FROM (SELECT unnest(?) AS e, unnest(?) AS d, "
            "unnest(?) AS t, unnest(?) AS a)",
            [list(column) for column in zip(*rows, strict=True)],
        )


def unlink_outputs(con: Connection, experiment_id: str, names: list[str]) -> None:
    con.execute(
        "DELETE FROM experiment_artifacts WHERE experiment_id = ? AND direction = 'output' "
        "AND list_contains(?, artifact_type)",
        [experiment_id, names],
    )


def update(con: Connection, experiment_id: str, fields: dict[str, Any]) -> None:
    values = update_values(fields)
    assignments = ", ".join(f"{column} = ?" for column in values)
    con.execute(f"UPDATE experiments SET {assignments} WHERE id = ?", [*values.values(), experiment_id])  # noqa: S608


def names_by_id(con: Connection) -> dict[str, str]:
    """Every experiment's name by its id."""
    return {str(eid): str(name) for eid, name in con.execute("SELECT id, name FROM experiments").fetchall()}


def get(con: Connection, experiment_id: str) -> Experiment | None:
    row = fetch_one(con, _SELECT + " WHERE e.id = ?", [experiment_id])
    return _to_experiment(row) if row else None


def name_owner(con: Connection, name: str) -> str | None:
    row = con.execute("SELECT id FROM experiments WHERE name = ? LIMIT 1", [name]).fetchone()
    return str(row[0]) if row else None


def list_page(con: Connection, flt: ExperimentFilter) -> tuple[list[str], int]:
    """The ids of one page of the experiments that match, and how many match."""
    where, params = _where(flt)
    size = flt.limit or flt.page_size
    offset = 0 if flt.limit else (flt.page - 1) * size
    return _paged(con, f"FROM experiments e {where}", params, _ORDER[flt.sort], size, offset)


def find_by_input_artifacts(
    con: Connection, artifact_ids: list[str], limit: int | None = None, offset: int = 0
) -> tuple[list[str], int]:
    """The ids of experiments that declared any of the artifacts as an input, newest first, and how many there are."""
    source = (
        "FROM experiments e WHERE e.id IN (SELECT experiment_id FROM experiment_artifacts "
        "WHERE direction = 'input' AND list_contains(?, artifact_id))"
    )
    return _paged(con, source, [artifact_ids], _ORDER[ExperimentSort.NEWEST], limit, offset)


def _paged(
    con: Connection, source: str, params: list[Any], order: str, limit: int | None, offset: int
) -> tuple[list[str], int]:
    """The ids of the rows of `source` (FROM … WHERE …) on one page, and how many rows it has in all. Ids only: the
    rows themselves are in memory (store/rows.py), and sorting whole rows to keep 50 costs three times as much."""
    ids = [str(row[0]) for row in con.execute(f"SELECT e.id {source} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
                                              [*params, limit, offset]).fetchall()]  # fmt: skip
    total = total_of(con, len(ids), limit, offset, f"SELECT count(*) {source}", params)  # noqa: S608
    return ids, total


def get_many(con: Connection, experiment_ids: list[str]) -> list[Experiment]:
    """The experiments of `experiment_ids` that exist, as stored."""
    rows = fetch_dicts(con, _SELECT + " WHERE list_contains(?, e.id)", [experiment_ids])
    return [_to_experiment(row) for row in rows]


def find_by_artifact(con: Connection, artifact_id: str) -> list[tuple[str, str]]:
    """(experiment_id, direction) pairs that reference an artifact."""
    rows = con.execute(
        "SELECT experiment_id, direction FROM experiment_artifacts WHERE artifact_id = ?", [artifact_id]
    ).fetchall()
    return [(str(e), str(d)) for e, d in rows]


def _where(flt: ExperimentFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if flt.status:
        clauses.append("e.status = ?")
        params.append(str(ExperimentStatus.parse(flt.status)))
    elif not flt.include_archived:
        clauses.append("e.status <> 'archived'")
    if flt.name is not None:
        clauses.append("e.name = ?")
        params.append(flt.name)
    if flt.git_commit:
        clauses.append("e.git_commit = ?")
        params.append(flt.git_commit)
    if flt.min_created_at:
        clauses.append("e.created_at >= ?")
        params.append(as_naive_utc(flt.min_created_at))
    if flt.max_created_at:
        clauses.append("e.created_at <= ?")
        params.append(as_naive_utc(flt.max_created_at))
    if flt.artifact_type:
        # The artifact's registered type, not the name it goes by in the inputs map (that is free text).
        clauses.append(
            "e.id IN (SELECT ea.experiment_id FROM experiment_artifacts ea JOIN artifacts a ON a.id = ea.artifact_id "
            "WHERE ea.direction = 'input' AND a.type = ?)"
        )
        params.append(flt.artifact_type)
    if flt.q:
        escaped = flt.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("e.name ILIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _to_experiment(row: dict[str, Any]) -> Experiment:
    status = ExperimentStatus(row["status"])
    return Experiment(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        status=status,
        archived=status is ExperimentStatus.ARCHIVED,
        dataset_id=row["dataset_id"],
        config=json.loads(row["config"]),
        inputs=json.loads(row["inputs"]),
        outputs=json.loads(row["outputs"]),
        provenance=Provenance(
            git_commit=row["git_commit"],
            git_dirty=row["git_dirty"],
            engine_version=row["engine_version"],
            created_at=row["created_at"],
        ),
        execution=Execution(
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            duration_ms=row["duration_ms"],
            error=row["error"],
        ),
        best_metrics={},
        metric_goals=json.loads(row["metric_goals"]),
        run_count=0,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
