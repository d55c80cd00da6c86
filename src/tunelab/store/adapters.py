"""SQL for the adapter registry: adapter records and their events (registrations, activations, renames, deletions)."""

from __future__ import annotations

import json
from typing import Any

from tunelab.domain.adapters import Adapter, AdapterEvent
from tunelab.store.db import Connection, fetch_dicts, insert_row, insert_rows, total_of

_JSON = ("training_config", "metrics", "lora")
_UPDATABLE = {"name", "description", "active", "updated_at", "deleted_at"}


def insert(con: Connection, row: dict[str, Any]) -> None:
    insert_row(con, "adapters", {k: json.dumps(v) if k in _JSON else v for k, v in row.items()})


def get(con: Connection, adapter_id: str) -> Adapter | None:
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE id = ?", [adapter_id])
    return _adapter(rows[0]) if rows else None


def many(con: Connection, adapter_ids: list[str]) -> dict[str, Adapter]:
    """The adapters (deleted ones too) with these ids, by id."""
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE list_contains(?, id)", [adapter_ids])
    return {row["id"]: _adapter(row) for row in rows}


def of_run(con: Connection, run_id: str) -> Adapter | None:
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE run_id = ? AND deleted_at IS NULL", [run_id])
    return _adapter(rows[0]) if rows else None


def versions_of(con: Connection, name: str) -> list[Adapter]:
    """The adapters named `name` that are not deleted, oldest first."""
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE name = ? AND deleted_at IS NULL ORDER BY created_at, id",
                       [name])  # fmt: skip
    return [_adapter(row) for row in rows]


def version_taken(con: Connection, name: str, version: str) -> bool:
    found = con.execute("SELECT 1 FROM adapters WHERE name = ? AND version = ? AND deleted_at IS NULL LIMIT 1",
                        [name, version]).fetchone()  # fmt: skip
    return found is not None


def _where(active: bool | None, base_model_id: str | None, q: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = ["deleted_at IS NULL"]
    params: list[Any] = []
    if active is not None:
        clauses.append("active = ?")
        params.append(active)
    if base_model_id is not None:
        clauses.append("base_model_id = ?")
        params.append(base_model_id)
    if q:
        clauses.append("(contains(lower(name), ?) OR contains(lower(version), ?) OR contains(lower(description), ?))")
        params += [q.lower()] * 3
    return " AND ".join(clauses), params


def page(con: Connection, active: bool | None, base_model_id: str | None, q: str | None, limit: int,
         offset: int) -> tuple[list[Adapter], int]:  # fmt: skip
    """A page of the adapters not deleted that match, newest first, and how many match in all."""
    where, params = _where(active, base_model_id, q)
    rows = fetch_dicts(con, f"SELECT * FROM adapters WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",  # noqa: S608
                       [*params, limit, offset])  # fmt: skip
    total = total_of(con, len(rows), limit, offset, f"SELECT count(*) FROM adapters WHERE {where}", params)  # noqa: S608
    return [_adapter(row) for row in rows], total


def name_page(con: Connection, active: bool | None, base_model_id: str | None, q: str | None, limit: int,
              offset: int) -> tuple[list[Adapter], int]:  # fmt: skip
    """The matching adapters of a page of names (names with the newest adapter first), and how many names match."""
    where, params = _where(active, base_model_id, q)
    names = [str(row[0]) for row in con.execute(
        f"SELECT name FROM adapters WHERE {where} GROUP BY name ORDER BY max(created_at) DESC, name LIMIT ? OFFSET ?",  # noqa: S608
        [*params, limit, offset]).fetchall()]  # fmt: skip
    total = total_of(con, len(names), limit, offset,
                     f"SELECT count(DISTINCT name) FROM adapters WHERE {where}", params)  # noqa: S608 # fmt: skip
    if not names:
        return [], total
    rows = fetch_dicts(con, f"SELECT * FROM adapters WHERE {where} AND list_contains(?, name) ORDER BY created_at, id",  # noqa: S608
                       [*params, names])  # fmt: skip
    return [_adapter(row) for row in rows], total


def with_base_model(con: Connection, base_model_id: str, limit: int) -> list[Adapter]:
    """Adapters not deleted that were trained on `base_model_id`, active ones first, newest first."""
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE base_model_id = ? AND deleted_at IS NULL "
                            "ORDER BY active DESC, created_at DESC, id LIMIT ?", [base_model_id, limit])  # fmt: skip
    return [_adapter(row) for row in rows]


def update(con: Connection, adapter_id: str, fields: dict[str, Any]) -> None:
    unknown = set(fields) - _UPDATABLE
    assert not unknown, unknown
    sets = ", ".join(f"{column} = ?" for column in fields)
    con.execute(f"UPDATE adapters SET {sets} WHERE id = ?", [*fields.values(), adapter_id])  # noqa: S608


def active_ids_named(con: Connection, name: str) -> list[str]:
    rows = con.execute("SELECT id FROM adapters WHERE name = ? AND active AND deleted_at IS NULL", [name]).fetchall()
    return [str(row[0]) for row in rows]


def insert_events(con: Connection, rows: list[dict[str, Any]]) -> None:
    """Events of adapters in one statement: {id, adapter_id, name, version, event, at, detail}."""
    insert_rows(con, "adapter_events", [{**{k: v for k, v in row.items() if k not in ("at", "detail")},
                                         "happened_at": row["at"], "detail": json.dumps(row["detail"])}
                                        for row in rows])  # fmt: skip


def events_named(con: Connection, name: str) -> list[AdapterEvent]:
    """The events recorded under `name`, oldest first."""
    rows = fetch_dicts(con, "SELECT adapter_id, version, event, happened_at AS at, detail FROM adapter_events WHERE name = ? "
                            "ORDER BY seq", [name])  # fmt: skip
    return [AdapterEvent(**{**row, "detail": json.loads(row["detail"])}) for row in rows]


def _adapter(row: dict[str, Any]) -> Adapter:
    return Adapter(**{**row, **{k: json.loads(row[k]) if row.get(k) else {} for k in _JSON}})


def active_of_model(con: Connection, model_id: str) -> list[Adapter]:
    """Active adapters trained on `model_id`, most recently changed first."""
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE active AND deleted_at IS NULL AND base_model_id = ? "
                            "ORDER BY updated_at DESC, id", [model_id])  # fmt: skip
    return [_adapter(row) for row in rows]
