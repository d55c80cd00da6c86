"""SQL for generation jobs, their ratings, and blind A/B tests with their pairs and votes."""

from __future__ import annotations

import json
from typing import Any

from tunelab.store.db import Connection, fetch_dicts, fetch_one, insert_row, insert_rows, total_of, update_values

_JSON = {"timings"}
_UPDATABLE = {"status", "error", "audio_id", "rating", "rated_at", "timings", "started_at", "completed_at"}


def insert(con: Connection, row: dict[str, Any]) -> None:
    insert_row(con, "generations", {k: json.dumps(v) if k in _JSON else v for k, v in row.items()})


def insert_many(con: Connection, rows: list[dict[str, Any]]) -> None:
    insert_rows(con, "generations", [{k: json.dumps(v) if k in _JSON else v for k, v in row.items()} for row in rows])


def get(con: Connection, generation_id: str) -> dict[str, Any] | None:
    row = fetch_one(con, "SELECT * FROM generations WHERE id = ?", [generation_id])
    return _row(row) if row else None


def many(con: Connection, generation_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = fetch_dicts(con, "SELECT * FROM generations WHERE list_contains(?, id)", [generation_ids])
    return {row["id"]: _row(row) for row in rows}


def update(con: Connection, generation_id: str, fields: dict[str, Any]) -> None:
    values = update_values(fields, _JSON, _UPDATABLE)
    sets = ", ".join(f"{column} = ?" for column in values)
    con.execute(f"UPDATE generations SET {sets} WHERE id = ?", [*values.values(), generation_id])  # noqa: S608


def page(con: Connection, filters: dict[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Jobs matching `filters` (status, adapter_id, abtest_id; adapter_id None means any), newest first."""
    clauses, params = ["TRUE"], []
    for column in ("status", "adapter_id", "abtest_id"):
        if filters.get(column) is not None:
            clauses.append(f"{column} = ?")
            params.append(filters[column])
    if filters.get("studio_only"):
        clauses.append("abtest_id IS NULL")
    where = " AND ".join(clauses)
    rows = fetch_dicts(con, f"SELECT * FROM generations WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",  # noqa: S608
                       [*params, limit, offset])  # fmt: skip
    total = total_of(con, len(rows), limit, offset, f"SELECT count(*) FROM generations WHERE {where}", params)  # noqa: S608
    return [_row(row) for row in rows], total


def unfinished(con: Connection) -> list[dict[str, Any]]:
    """Jobs pending or running, oldest first: what a starting server queues again."""
    rows = fetch_dicts(con, "SELECT * FROM generations WHERE status IN ('pending', 'running') ORDER BY created_at, id")
    return [_row(row) for row in rows]


def ratings(con: Connection, adapter_id: str | None, prompts: list[str] | None = None,
            model_id: str | None = None) -> list[tuple[str, int]]:  # fmt: skip
    """(prompt, rating) of rated jobs of an adapter (None: of the base model), optionally only of some prompts and
    of one base model."""
    sql = "SELECT prompt, rating FROM generations WHERE rating IS NOT NULL AND "
    sql += "adapter_id = ?" if adapter_id is not None else "adapter_id IS NULL"
    params: list[Any] = [adapter_id] if adapter_id is not None else []
    if model_id is not None:
        sql += " AND model_id = ?"
        params.append(model_id)
    if prompts is not None:
        sql += " AND list_contains(?, prompt)"
        params.append(prompts)
    return [(str(p), int(r)) for p, r in con.execute(sql, params).fetchall()]


def counts(con: Connection, adapter_id: str) -> tuple[int, int]:
    """(all jobs, completed jobs) of an adapter."""
    row = con.execute("SELECT count(*), count(*) FILTER (status = 'completed') FROM generations WHERE adapter_id = ?",
                      [adapter_id]).fetchone()  # fmt: skip
    return (int(row[0]), int(row[1])) if row else (0, 0)


def rated(con: Connection, min_rating: int, adapter_id: str | None, prompt: str | None,
          base_model_only: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Completed jobs rated at least `min_rating`, oldest first."""
    sql = "SELECT * FROM generations WHERE status = 'completed' AND rating >= ? AND audio_id IS NOT NULL"
    params: list[Any] = [min_rating]
    if adapter_id is not None:
        sql += " AND adapter_id = ?"
        params.append(adapter_id)
    if base_model_only:
        sql += " AND adapter_id IS NULL"
    if prompt is not None:
        sql += " AND contains(lower(prompt), ?)"
        params.append(prompt.lower())
    return [_row(row) for row in fetch_dicts(con, sql + " ORDER BY created_at, id", params)]


def add_usage(con: Connection, adapter_id: str) -> None:
    con.execute("UPDATE adapters SET usage_count = usage_count + 1 WHERE id = ?", [adapter_id])


def _row(row: dict[str, Any]) -> dict[str, Any]:
    row["timings"] = json.loads(row["timings"] or "{}")
    return row


# A/B tests


def insert_test(con: Connection, row: dict[str, Any]) -> None:
    insert_row(con, "abtests", {**row, "prompts": json.dumps(row["prompts"])})


def insert_pairs(con: Connection, rows: list[dict[str, Any]]) -> None:
    insert_rows(con, "abtest_pairs", rows)


def get_test(con: Connection, abtest_id: str) -> dict[str, Any] | None:
    row = fetch_one(con, "SELECT * FROM abtests WHERE id = ?", [abtest_id])
    if row:
        row["prompts"] = json.loads(row["prompts"])
    return row


def tests_page(con: Connection, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    rows = fetch_dicts(con, "SELECT * FROM abtests ORDER BY created_at DESC, id LIMIT ? OFFSET ?", [limit, offset])
    for row in rows:
        row["prompts"] = json.loads(row["prompts"])
    return rows, total_of(con, len(rows), limit, offset, "SELECT count(*) FROM abtests", [])


def pairs(con: Connection, abtest_ids: list[str]) -> list[dict[str, Any]]:
    return fetch_dicts(con, "SELECT * FROM abtest_pairs WHERE list_contains(?, abtest_id) ORDER BY abtest_id, position",
                       [abtest_ids])  # fmt: skip


def pair(con: Connection, pair_id: str) -> dict[str, Any] | None:
    return fetch_one(con, "SELECT * FROM abtest_pairs WHERE id = ?", [pair_id])


def vote(con: Connection, pair_id: str, choice: str, at: Any) -> None:
    con.execute("UPDATE abtest_pairs SET vote = ?, voted_at = ? WHERE id = ?", [choice, at, pair_id])


def set_test_dataset(con: Connection, abtest_id: str, dataset_id: str) -> None:
    con.execute("UPDATE abtests SET dataset_id = ? WHERE id = ?", [dataset_id, abtest_id])


def votes_between(con: Connection, model_id: str) -> list[dict[str, Any]]:
    """Every voted pair of the model's tests with its test's two sides (adapter ids; NULL is the base model)."""
    return fetch_dicts(
        con,
        f"{_VOTES} WHERE t.model_id = ? AND p.vote IS NOT NULL {_VOTE_ORDER}",
        [model_id],
    )


def votes_between_adapters(con: Connection, first_id: str, second_id: str) -> list[dict[str, Any]]:
    """Every voted pair of the tests that pitted these two adapters against each other (either way round)."""
    return fetch_dicts(
        con,
        f"{_VOTES} WHERE p.vote IS NOT NULL AND ((t.adapter_a_id = ? AND t.adapter_b_id = ?) "
        f"OR (t.adapter_a_id = ? AND t.adapter_b_id = ?)) {_VOTE_ORDER}",
        [first_id, second_id, second_id, first_id],
    )


_VOTES = (
    "SELECT t.id AS abtest_id, t.adapter_a_id, t.adapter_b_id, p.vote, p.a_first FROM abtest_pairs p "
    "JOIN abtests t ON t.id = p.abtest_id"
)
# A fixed order: the leaderboard's bootstrap resamples the votes by position, so the same votes in another order
# would give other intervals from one request to the next.
_VOTE_ORDER = "ORDER BY t.created_at, t.id, p.position"
