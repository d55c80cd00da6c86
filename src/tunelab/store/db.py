"""One DuckDB connection per process, one serialised write path, ROLLBACK on every error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from tunelab.errors import StoreBusy

Connection = duckdb.DuckDBPyConnection
log = logging.getLogger(__name__)


class Database:
    """Owns the DuckDB file. Every statement runs under one lock, so writers never conflict."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusy(
                    f"The database {path} is held by another process (is a TuneLab server running?)",
                    details={"path": str(path)},
                ) from exc
            raise
        self._lock = threading.RLock()
        from tunelab.store.migrations import migrate

        migrate(self)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run a block atomically; any exception rolls back (DuckDB's COMMIT after a failure drops writes)."""
        with self._lock:
            self._conn.execute("BEGIN TRANSACTION")
            try:
                yield self._conn
            except BaseException as exc:
                self._rollback(exc)
                raise
            self._conn.execute("COMMIT")

    def _rollback(self, cause: BaseException) -> None:
        """ROLLBACK after `cause`; should that fail too, `cause` is still what the caller sees."""
        try:
            self._conn.execute("ROLLBACK")
        except Exception as rollback_error:
            log.error("ROLLBACK failed after %r: %s", cause, rollback_error)
            cause.add_note(f"ROLLBACK failed as well: {rollback_error}")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def fetch_dicts(con: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [column[0] for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fetch_one(con: Connection, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    rows = fetch_dicts(con, sql, params)
    return rows[0] if rows else None
