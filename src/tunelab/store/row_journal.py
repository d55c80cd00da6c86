"""The row journal: small writes of experiments and runs are acknowledged once they are on disk here, and reach
DuckDB in groups, as metric batches do (store/journal.py).

A DuckDB write of one row costs 1-2.5 ms here (an INSERT names ~0.1 ms per column, and a commit ~1 ms), so
creating an experiment or a run or ending one cost that on top of HTTP. The rows these writes touch are held in
memory (store/rows.py) and every check they make is answered there, so a write is complete once its rows are in
memory and durable: each write is one synced line of this file (tens of microseconds), and the journal is applied
to DuckDB within FLUSH_AFTER, one transaction and one statement per table and column set for everything waiting,
or at once when anything reads or writes DuckDB itself (Database.read, write, transaction).

A line may be applied twice (the server may die after the commit, before the file is emptied): at open the
journal is replayed with inserts that skip rows already there and updates that set the same values again, so
twice is the same as once. A last line cut short by a crash was never acknowledged: it is skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tunelab.store.db import Connection
from tunelab.store.journal import SyncedLines, parsed

TABLES = ("experiments", "runs")
_KEYS = {"experiments": {"id"}, "runs": {"id", "experiment_id", "name"}}  # never changed by an update


@dataclass(frozen=True)
class RowWrite:
    """One row's insert or update, in the column values DuckDB takes (JSON columns as text)."""

    table: str
    row_id: str
    values: dict[str, Any]
    insert: bool = False


def _encode(value: Any) -> Any:
    return {"$ts": value.isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    return datetime.fromisoformat(value["$ts"]) if isinstance(value, dict) else value


def _line(writes: list[RowWrite]) -> bytes:
    record = [{"table": w.table, "id": w.row_id, "insert": w.insert,
               "values": {k: _encode(v) for k, v in w.values.items()}} for w in writes]  # fmt: skip
    return json.dumps(record, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def _entry(line: bytes) -> list[RowWrite]:
    writes = []
    for item in json.loads(line):
        if item["table"] not in TABLES:
            raise ValueError(f"unknown table {item['table']!r}")
        values = {str(k): _decode(v) for k, v in item["values"].items()}
        writes.append(RowWrite(item["table"], str(item["id"]), values, bool(item["insert"])))
    return writes


class RowJournal:
    """The file and the writes it holds that DuckDB does not have yet. Callers hold the write lock."""

    def __init__(self, path: Path):
        self.file = SyncedLines(path)
        self.pending: list[list[RowWrite]] = parsed(self.file, _entry)
        self.since = time.monotonic()  # when the oldest pending entry came

    def append(self, writes: list[RowWrite]) -> None:
        """Write and sync one atomic group of writes; once this returns, they are durable."""
        self.file.append(_line(writes))
        if not self.pending:
            self.since = time.monotonic()
        self.pending = [*self.pending, writes]  # a new list: readers look at it without the lock

    def applied(self) -> None:
        self.file.truncate()
        self.pending = []

    def close(self) -> None:
        self.file.close()


def merged(entries: Iterable[list[RowWrite]]) -> dict[tuple[str, str], RowWrite]:
    """One write per row: later values over earlier ones, an insert followed by updates inserted as it ends up.
    Rows are independent of each other here (no journaled write renames), so only each row's own order matters."""
    out: dict[tuple[str, str], RowWrite] = {}
    for writes in entries:
        for w in writes:
            key = (w.table, w.row_id)
            before = out.get(key)
            out[key] = (
                w if before is None else RowWrite(w.table, w.row_id, {**before.values, **w.values}, before.insert)
            )
    return out


def apply(con: Connection, entries: list[list[RowWrite]], replay: bool = False) -> None:
    """Write the entries to DuckDB, one statement per table, kind and column set. With `replay`, rows inserted
    already are kept and updated to the journal's values (a line may have been applied before a crash)."""
    groups: dict[tuple[str, bool, tuple[str, ...]], list[RowWrite]] = {}
    for w in merged(entries).values():
        groups.setdefault((w.table, w.insert, tuple(sorted(w.values))), []).append(w)
    for (table, insert, columns), writes in groups.items():
        if insert:
            _insert(con, table, columns, writes, replay)
        if not insert or replay:
            _update(con, table, [c for c in columns if c not in _KEYS[table]], writes)


def _insert(con: Connection, table: str, columns: tuple[str, ...], writes: list[RowWrite], replay: bool) -> None:
    select = ", ".join(f"unnest(?) AS {c}" for c in columns)
    con.execute(
        f"INSERT {'OR IGNORE ' if replay else ''}INTO {table} ({', '.join(columns)}) SELECT {select}",  # noqa: S608
        [[w.values[c] for w in writes] for c in columns],
    )


def _update(con: Connection, table: str, columns: list[str], writes: list[RowWrite]) -> None:
    if not columns:
        return
    select = ", ".join(["unnest(?) AS _id", *(f"unnest(?) AS {c}" for c in columns)])
    assignments = ", ".join(f"{c} = u.{c}" for c in columns)
    con.execute(
        f"UPDATE {table} SET {assignments} FROM (SELECT {select}) u WHERE {table}.id = u._id",  # noqa: S608
        [[w.row_id for w in writes], *[[w.values[c] for w in writes] for c in columns]],
    )
