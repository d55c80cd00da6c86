"""SQL for adapter records."""

from __future__ import annotations

import json
from typing import Any

from tunelab.domain.adapters import Adapter
from tunelab.store.db import Connection, fetch_dicts

_JSON = ("training_config", "metrics")


def insert(con: Connection, row: dict[str, Any]) -> None:
    values = {k: json.dumps(v) if k in _JSON else v for k, v in row.items()}
    con.execute(f"INSERT INTO adapters ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",  # noqa: S608
                list(values.values()))  # fmt: skip


def get(con: Connection, adapter_id: str) -> Adapter | None:
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE id = ?", [adapter_id])
    return _adapter(rows[0]) if rows else None


def of_run(con: Connection, run_id: str) -> Adapter | None:
    rows = fetch_dicts(con, "SELECT * FROM adapters WHERE run_id = ? AND deleted_at IS NULL", [run_id])
    return _adapter(rows[0]) if rows else None


def versions_like(con: Connection, name: str, prefix: str) -> list[str]:
    """The versions of the adapters named `name` (not deleted) that start with `prefix`."""
    rows = con.execute("SELECT version FROM adapters WHERE name = ? AND deleted_at IS NULL AND starts_with(version, ?)",
                       [name, prefix]).fetchall()  # fmt: skip
    return [str(row[0]) for row in rows]


def _adapter(row: dict[str, Any]) -> Adapter:
    return Adapter(**{**row, **{k: json.loads(row[k]) for k in _JSON}})
