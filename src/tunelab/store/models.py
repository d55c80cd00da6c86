"""SQL for base models and settings."""

from __future__ import annotations

import json
from typing import Any

from tunelab.store.db import Connection, fetch_dicts

_COLUMNS = ("id", "display_name", "path", "sample_rate", "frame_rate", "num_codebooks", "max_duration_s",
            "fingerprint", "artifact_id", "created_at")  # fmt: skip


def insert(con: Connection, row: dict[str, Any]) -> None:
    marks = ", ".join("?" for _ in _COLUMNS)
    con.execute(f"INSERT INTO base_models ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608 - our columns
                [row[column] for column in _COLUMNS])  # fmt: skip


def all_models(con: Connection) -> list[dict[str, Any]]:
    return fetch_dicts(con, "SELECT * FROM base_models ORDER BY created_at, id")


def get(con: Connection, model_id: str) -> dict[str, Any] | None:
    rows = fetch_dicts(con, "SELECT * FROM base_models WHERE id = ?", [model_id])
    return rows[0] if rows else None


def setting(con: Connection, key: str) -> Any:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else None


def set_setting(con: Connection, key: str, value: Any) -> None:
    con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, json.dumps(value)])
