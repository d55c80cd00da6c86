"""One DuckDB database per process: one serialised write path, a cursor of its own for each reading thread.

Writers take one lock, so they never conflict (DuckDB aborts concurrent updates of a row instead of waiting)
and any error rolls back (DuckDB's COMMIT after a failed statement silently drops the earlier writes).
Readers take no lock: each thread reads through its own cursor, and DuckDB's MVCC gives it committed data.
Appending metric batches go through the metric journal (store/journal.py), and the small writes of experiments and
runs through the row journal (store/row_journal.py); a background thread applies both. Every read and every write
that asks DuckDB itself applies the row journal first, so nothing that reaches DuckDB sees it behind.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from tunelab.errors import StoreBusy
from tunelab.store.journal import FLUSH_AFTER, FLUSH_POINTS, Entry

if TYPE_CHECKING:
    from tunelab.store.row_journal import RowWrite

Connection = duckdb.DuckDBPyConnection
log = logging.getLogger(__name__)


class Database:
    """Owns the DuckDB file."""

    def __init__(self, path: Path, flush_after: float = FLUSH_AFTER):
        self.path = path
        self.flush_after = flush_after  # how long a journal entry may wait for DuckDB (seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        # An in-memory database (a read of a database that does not exist) keeps its journals in a folder of its
        # own, removed on close, not beside a file that is not there (":memory:.…" in the working directory).
        self._scratch = tempfile.TemporaryDirectory(prefix="tunelab-") if str(path) == ":memory:" else None
        journals = Path(self._scratch.name) / "memory" if self._scratch else path
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
        self._committed: list[list[Callable[[], None]]] = []  # per open write block: what to do once committed
        # Read cursors come from a connection of their own, under a lock of their own: a thread's first read
        # must not wait for a writer holding the write lock.
        self._cursor_source = self._conn.cursor()
        self._cursor_lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[Connection] = []
        self._closed = False
        from tunelab.store.journal import MetricJournal
        from tunelab.store.migrations import migrate
        from tunelab.store.row_journal import RowJournal
        from tunelab.store.summaries import SummaryCache

        self.row_journal = RowJournal(journals.with_name(journals.name + ".rows-journal"))
        self._apply_rows(replay=True)  # before migrating: the journal was written against the schema as it was
        migrate(self)
        from tunelab.store.experiments import names_by_id
        from tunelab.store.rows import Rows
        from tunelab.store.runs import ids_by_experiment
        from tunelab.store.texts import SeriesTexts
        from tunelab.store.tiles import TileCache

        self.summaries = SummaryCache()
        self.tiles = TileCache()
        self.texts = SeriesTexts()
        with self.read() as con:
            self.rows = Rows(ids_by_experiment(con), names_by_id(con))
        self.journal = MetricJournal(journals.with_name(journals.name + ".metrics-journal"))
        self._replay_journal()
        self._journal_waiting = threading.Condition(self._lock)
        self._flusher = threading.Thread(target=self._flush_soon, name="journals", daemon=True)
        self._flusher.start()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run a block atomically; any exception rolls back (DuckDB's COMMIT after a failure drops writes)."""
        with self._lock:
            self.flush_rows()
            self._conn.execute("BEGIN TRANSACTION")
            self._committed.append([])
            try:
                yield self._conn
            except BaseException as exc:
                self._committed.pop()
                self._rollback(exc)
                raise
            self._conn.execute("COMMIT")
            self._run_after(self._committed.pop())

    @contextmanager
    def write(self, behind: bool = False) -> Iterator[Connection]:
        """The write path without a transaction: for a block whose only write is one statement (atomic by itself),
        where BEGIN and COMMIT would double the cost; its reads see everything committed, as no writer can interleave.
        With `behind`, the block writes rows through `journal_rows` and reads only what memory holds; the row journal
        is not applied first.
        """
        with self._lock:
            if not behind:
                self.flush_rows()
            self._committed.append([])
            try:
                yield self._conn
            finally:  # its statements committed as they ran, also those before an error
                self._run_after(self._committed.pop())

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the enclosing write block has committed, still under the write lock (what the
        in-memory caches learn of a write must be true before another writer can look)."""
        self._committed[-1].append(action)

    @staticmethod
    def _run_after(actions: list[Callable[[], None]]) -> None:
        for action in actions:
            action()

    def _rollback(self, cause: BaseException) -> None:
        """ROLLBACK after `cause`; should that fail too, `cause` is still what the caller sees."""
        try:
            self._conn.execute("ROLLBACK")
        except Exception as rollback_error:
            log.error("ROLLBACK failed after %r: %s", cause, rollback_error)
            cause.add_note(f"ROLLBACK failed as well: {rollback_error}")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """This thread's read cursor: it never waits for writers, and writers never wait for it (unless rows wait in
        the row journal: they are applied first)."""
        if self.row_journal.pending:
            self.flush_rows()
        cursor: Connection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._cursor_lock:
                if self._closed:
                    raise RuntimeError("the database is closed")
                cursor = self._cursor_source.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        yield cursor

    def journal_rows(self, writes: list[RowWrite]) -> None:
        """Small writes of rows held in memory, as one atomic group: durable once this returns, in DuckDB within
        FLUSH_AFTER. The caller holds the write lock (`write(behind=True)`) and has checked everything from memory."""
        with self._lock:
            first = not self.row_journal.pending
            self.row_journal.append(writes)
            if first:
                self._journal_waiting.notify()

    def flush_rows(self) -> None:
        """Apply the row journal to DuckDB now, in one transaction."""
        if not self.row_journal.pending:  # a list swapped, never mutated: no lock needed to see that nothing waits
            return
        self._apply_rows()

    def _apply_rows(self, replay: bool = False) -> None:
        """The row journal into DuckDB in one transaction; `replay`: lines a previous server may have applied."""
        with self._lock:
            if not self.row_journal.pending:
                return
            from tunelab.store.row_journal import apply

            if replay:
                log.info("applying %d row write(s) left in the row journal", len(self.row_journal.pending))
            self._conn.execute("BEGIN TRANSACTION")
            try:
                apply(self._conn, self.row_journal.pending, replay=replay)
            except BaseException as exc:
                self._rollback(exc)
                raise
            self._conn.execute("COMMIT")
            self.row_journal.applied()

    def journal_append(self, entry: Entry) -> None:
        """A batch that appends to a running run: durable once this returns, in DuckDB within FLUSH_AFTER."""
        with self._lock:
            first = not self.journal.pending
            self.journal.append(entry)
            if self.journal.points >= FLUSH_POINTS:
                self.flush_metrics()
            elif first:  # the flusher sleeps until FLUSH_AFTER past the first entry; later ones need no wake-up
                self._journal_waiting.notify()

    def flush_metrics(self, run_ids: list[str] | None = None) -> None:
        """Insert every batch the journal holds into DuckDB now, if any is for one of `run_ids` (all runs: None);
        reads and replacing writes need their runs' points there."""
        pending = self.journal.pending  # no lock needed to see that nothing waits: a list swapped, never mutated
        if not pending or (run_ids is not None and not any(entry.run_id in run_ids for entry in pending)):
            return
        with self._lock:  # held until the journal is emptied: else another flush could insert the same entries
            if not self.journal.pending:
                return
            from tunelab.store.metrics import insert_entries

            with self.transaction() as con:
                insert_entries(con, self.journal.pending)
            self.journal.applied()

    def _flush_soon(self) -> None:
        with self._lock:
            while not self._closed:
                waiting = [j.since for j in (self.row_journal, self.journal) if j.pending]
                if not waiting:
                    self._journal_waiting.wait()
                    continue
                left = min(waiting) + self.flush_after - time.monotonic()
                if left > 0:  # writes that follow within FLUSH_AFTER of the first share its commit
                    self._journal_waiting.wait(left)
                    continue
                try:
                    self.flush_rows()
                    self.flush_metrics()
                except Exception:  # the journals keep them: the next read, write or restart applies them
                    log.exception("could not apply a journal; it is kept")
                    self._journal_waiting.wait(1.0)

    def _replay_journal(self) -> None:
        """Apply what a previous server acknowledged but did not commit (replacing: a line may be applied already)."""
        if not self.journal.pending:
            return
        from tunelab.store.metrics import replace_entries

        log.info("applying %d metric batch(es) left in the journal", len(self.journal.pending))
        with self.transaction() as con:
            replace_entries(con, self.journal.pending)
        self.journal.applied()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Apply the journal and close; closing again does nothing (an app's lifespan may end more than once)."""
        with self._lock:
            if self._closed:
                return
            self.flush_rows()
            self.flush_metrics()
            self._closed = True
            self._journal_waiting.notify_all()
        self._flusher.join(timeout=5)
        with self._lock, self._cursor_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
            self._cursor_source.close()
            self.journal.close()
            self.row_journal.close()
            self._conn.close()
            if self._scratch is not None:
                self._scratch.cleanup()


def fetch_dicts(con: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [column[0] for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def total_of(con: Connection, rows: int, limit: int | None, offset: int, count_sql: str, params: list[Any]) -> int:
    """How many rows a paged query matched in all: known from the page itself unless the page is full (or past the
    end), else counted — a count over the same source costs far less than a window over every row."""
    if limit is None or (rows < limit and (rows or not offset)):
        return offset + rows
    found = con.execute(count_sql, params).fetchone()
    return int(found[0]) if found else 0


def fetch_one(con: Connection, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    rows = fetch_dicts(con, sql, params)
    return rows[0] if rows else None


def insert_row(con: Connection, table: str, row: dict[str, Any]) -> None:
    """One row of `table` (a table name of ours, never user input), its columns named by `row`'s keys."""
    assert table.isidentifier() and all(column.isidentifier() for column in row)
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608 - ours


def insert_rows(con: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows of one table with the same columns, in one statement (DuckDB takes a batch 100-1000x faster than rows
    one by one)."""
    if not rows:
        return
    columns = list(rows[0])
    assert table.isidentifier() and all(column.isidentifier() for column in columns)
    selects = ", ".join(f"unnest(?) AS {column}" for column in columns)
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM (SELECT {selects})",  # noqa: S608
                [[row[column] for row in rows] for column in columns])  # fmt: skip


def insert_values(row: dict[str, Any], json_columns: set[str]) -> dict[str, Any]:
    """The columns an insert of `row` names: None and empty JSON objects are left to the columns' defaults (NULL and
    '{}'), as each column an INSERT names costs DuckDB about 0.1 ms; JSON columns as text."""
    return {k: json_text(v) if k in json_columns else v for k, v in row.items() if v is not None and v != {}}


def update_values(fields: dict[str, Any], json_columns: set[str], updatable: set[str]) -> dict[str, Any]:
    """The columns an update of `fields` writes, JSON columns as text; ValueError for one that is not updatable."""
    unknown = set(fields) - updatable
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return {k: json_text(v) if k in json_columns else v for k, v in fields.items()}


def json_text(value: Any) -> str:
    """`value` as the JSON text a column holds; ValueError for what could not be read back and answered (NaN,
    infinities, text that is not valid Unicode), so that such a write fails and rolls back instead of landing."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode at position {exc.start}; refusing to store it") from None
    return text
