"""SQL for artifacts."""

from __future__ import annotations

import json
from typing import Any

from tunelab.domain.artifacts import Artifact
from tunelab.store.db import Connection, fetch_one, json_text


def insert(con: Connection, row: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO artifacts (id, type, uri, sha256, size, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            row["id"],
            row["type"],
            row["uri"],
            row["sha256"],
            row["size"],
            json_text(row["metadata"]),
            row["created_at"],
        ],
    )


def same_content(con: Connection, row: dict[str, Any]) -> str:
    """The id of the artifact of `row`'s type and sha256, inserting `row` when there is none: the same content is
    the same artifact."""
    found = con.execute("SELECT id FROM artifacts WHERE type = ? AND sha256 = ? ORDER BY created_at LIMIT 1",
                        [row["type"], row["sha256"]]).fetchone()  # fmt: skip
    if found is not None:
        return str(found[0])
    insert(con, row)
    return str(row["id"])


def get(con: Connection, artifact_id: str) -> Artifact | None:
    row = fetch_one(con, "SELECT * FROM artifacts WHERE id = ?", [artifact_id])
    if row is None:
        return None
    return Artifact(**{**row, "metadata": json.loads(row["metadata"])})


def missing(con: Connection, artifact_ids: list[str]) -> list[str]:
    """The ids of `artifact_ids` that name no artifact, in the order given."""
    if not artifact_ids:
        return []
    found = {
        row[0] for row in con.execute("SELECT id FROM artifacts WHERE list_contains(?, id)", [artifact_ids]).fetchall()
    }
    return [aid for aid in dict.fromkeys(artifact_ids) if aid not in found]
