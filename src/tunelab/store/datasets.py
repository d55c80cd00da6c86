"""SQL for datasets, their items and the audio files they hold."""

from __future__ import annotations

from typing import Any

from tunelab.store.db import Connection, fetch_dicts, insert_row, insert_rows

__all__ = ["insert_row", "insert_rows"]  # the datasets' writes use the shared ones

_DATASET = """
    SELECT d.*, coalesce(i.n, 0) AS item_count, coalesce(i.seconds, 0.0) AS total_duration_s
    FROM datasets d LEFT JOIN (
        SELECT dataset_id, count(*) AS n, sum(duration_s) AS seconds FROM dataset_items GROUP BY dataset_id
    ) i ON i.dataset_id = d.id
"""


def all_datasets(con: Connection) -> list[dict[str, Any]]:
    return fetch_dicts(con, _DATASET + " ORDER BY d.created_at DESC, d.id")


def get(con: Connection, dataset_id: str) -> dict[str, Any] | None:
    rows = fetch_dicts(con, _DATASET + " WHERE d.id = ?", [dataset_id])
    return rows[0] if rows else None


def name_owner(con: Connection, name: str) -> str | None:
    row = con.execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()
    return str(row[0]) if row else None


def items(con: Connection, dataset_id: str) -> list[dict[str, Any]]:
    return fetch_dicts(con, "SELECT * FROM dataset_items WHERE dataset_id = ? ORDER BY created_at, id", [dataset_id])


def item(con: Connection, dataset_id: str, item_id: str) -> dict[str, Any] | None:
    rows = fetch_dicts(con, "SELECT * FROM dataset_items WHERE dataset_id = ? AND id = ?", [dataset_id, item_id])
    return rows[0] if rows else None


def delete_item(con: Connection, item_id: str) -> None:
    con.execute("DELETE FROM dataset_items WHERE id = ?", [item_id])


def touch(con: Connection, dataset_id: str, now: Any) -> None:
    con.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", [now, dataset_id])


def audio(con: Connection, audio_id: str) -> dict[str, Any] | None:
    rows = fetch_dicts(con, "SELECT * FROM audio WHERE id = ?", [audio_id])
    return rows[0] if rows else None


def audio_paths(con: Connection, audio_ids: list[str]) -> dict[str, str]:
    rows = con.execute("SELECT id, path FROM audio WHERE list_contains(?, id)", [audio_ids]).fetchall()
    return {str(aid): str(path) for aid, path in rows}
