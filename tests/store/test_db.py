"""The store: migrations, the single write path, rollback, batching, and the cross-process lock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tunelab.domain.experiments import ExperimentCreate
from tunelab.domain.metrics import MetricColumns
from tunelab.errors import StoreBusy
from tunelab.services import Services
from tunelab.store import Database, migrations
from tunelab.store import metrics as metric_store


def test_fresh_database_records_every_migration(db: Database) -> None:
    with db.read() as con:
        names = [row[0] for row in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]
    assert names == sorted(step.__name__ for step in migrations.MIGRATIONS)


def test_reopening_applies_nothing_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    first = Database(path)
    with first.transaction() as con:
        con.execute("INSERT INTO artifacts (id, type, uri, created_at) VALUES ('a1', 'audio', 'x', now())")
    first.close()
    second = Database(path)
    assert migrations.migrate(second) == []
    with second.read() as con:
        assert con.execute("SELECT id FROM artifacts").fetchall() == [("a1",)]
    second.close()


def test_new_migration_applies_once_and_failed_one_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.duckdb"
    Database(path).close()

    def m900_extra(con: object) -> None:
        con.execute("CREATE TABLE extra (x INTEGER)")  # type: ignore[attr-defined]

    def m901_broken(con: object) -> None:
        con.execute("CREATE TABLE half (x INTEGER)")  # type: ignore[attr-defined]
        con.execute("THIS IS NOT SQL")  # type: ignore[attr-defined]

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, m900_extra, m901_broken])
    with pytest.raises(Exception, match="syntax"):
        Database(path)
    con = duckdb.connect(str(path))  # inspect what the failed open left, without migrating
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    applied = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
    con.close()
    assert "extra" in tables and "m900_extra" in applied
    assert "half" not in tables and "m901_broken" not in applied


def test_error_in_transaction_rolls_back_earlier_writes(db: Database) -> None:
    with pytest.raises(Exception, match="[Cc]onstraint"), db.transaction() as con:
        con.execute("INSERT INTO artifacts (id, type, uri, created_at) VALUES ('ok', 'audio', 'x', now())")
        con.execute("INSERT INTO artifacts (id, type, uri, created_at) VALUES ('ok', 'audio', 'y', now())")
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM artifacts").fetchone() == (0,)
    # The connection is usable afterwards: the failed transaction was rolled back, not left open.
    with db.transaction() as con:
        con.execute("INSERT INTO artifacts (id, type, uri, created_at) VALUES ('next', 'audio', 'x', now())")
    with db.read() as con:
        assert con.execute("SELECT id FROM artifacts").fetchall() == [("next",)]


class _RollbackFails:
    """The real connection, except that ROLLBACK raises."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def execute(self, sql: str, *args: Any) -> duckdb.DuckDBPyConnection:
        if sql == "ROLLBACK":
            raise duckdb.TransactionException("rollback exploded")
        return self.con.execute(sql, *args)


def test_a_failing_rollback_does_not_hide_the_statement_error(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    real = db._conn
    monkeypatch.setattr(db, "_conn", _RollbackFails(real))
    insert = "INSERT INTO artifacts (id, type, uri, created_at) VALUES ('a', 'audio', 'x', now())"

    with pytest.raises(duckdb.ConstraintException) as raised, db.transaction() as con:
        con.execute(insert)
        con.execute(insert)

    assert "rollback exploded" in "\n".join(raised.value.__notes__)
    monkeypatch.setattr(db, "_conn", real)
    real.execute("ROLLBACK")  # the transaction the failed ROLLBACK left open
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM artifacts").fetchone() == (0,)


def test_an_error_after_the_transaction_already_ended_is_the_one_raised(db: Database) -> None:
    # Real DuckDB: ending the transaction inside the block makes the ROLLBACK fail ("no transaction is active").
    with pytest.raises(ValueError, match="the caller's own error") as raised, db.transaction() as con:
        con.execute("ROLLBACK")
        raise ValueError("the caller's own error")

    assert any("no transaction is active" in note for note in raised.value.__notes__)
    with db.transaction() as con:  # and the database is still usable
        con.execute("INSERT INTO artifacts (id, type, uri, created_at) VALUES ('b', 'audio', 'x', now())")


def _running_run(db: Database, run_id: str) -> None:
    with db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, status, created_at, updated_at) VALUES ('e', 'e', 'running', now(), now())"
        )
        con.execute("INSERT INTO runs (id, experiment_id, name, status, created_at) VALUES (?, 'e', ?, 'running', now())",
                    [run_id, run_id])  # fmt: skip


@pytest.mark.parametrize("n", [50_000, 40])  # through Arrow, and as list parameters
def test_batch_insert_and_history_round_trip(db: Database, n: int) -> None:
    _running_run(db, "r1")
    batch = MetricColumns(
        ["loss" if i % 2 else "acc" for i in range(n)],
        [i // 2 for i in range(n)],
        [float(i) for i in range(n)],
        [datetime(2026, 1, 1)] * (n - 1) + [None],
    )
    with db.write() as con:
        inserted = metric_store.insert_points(con, "r1", batch, default_ts=datetime(2026, 1, 2))
    assert inserted == n
    with db.read() as con:
        history = metric_store.history_json(con, ["r1", "missing"], "loss")
        series = metric_store.series_json(con, "r1", ["acc"], None, n)
        stats = metric_store.run_stats(con, ["r1", "missing"])
    columns = json.loads(history["r1"])
    assert (
        len(columns["steps"]) == n // 2 and columns["steps"] == sorted(columns["steps"]) and columns["values"][0] == 1.0
    )
    text, last, total = series["acc"]
    points = json.loads(text)
    assert list(series) == ["acc"] and len(points) == total == n // 2 and last == n // 2 - 1
    assert points[0] == {"step": 0, "value": 0.0, "ts": "2026-01-01T00:00:00Z"}
    assert "missing" not in history and "missing" not in stats
    assert stats["r1"]["loss"].count == n // 2 and stats["r1"]["loss"].last_value == float(n - 1)


def test_database_held_by_another_process_is_a_clear_error(tmp_path: Path, hold_db: Callable[[Path], None]) -> None:
    path = tmp_path / "held.duckdb"
    hold_db(path)
    with pytest.raises(StoreBusy) as caught:
        Database(path)
    assert caught.value.code == "store_locked" and caught.value.status == 503
    assert "another process" in caught.value.message


def _scan_types(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> str:
    # Plain EXPLAIN always says "Sequential Scan": DuckDB picks an index scan while executing, so ANALYZE.
    return "\n".join(row[1] for row in con.execute("EXPLAIN ANALYZE " + sql, params).fetchall())


def test_metric_queries_do_not_use_a_run_key_index_so_none_is_kept(db: Database) -> None:
    with db.read() as con:
        kept = con.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'metrics'").fetchall()
    assert kept == []  # m004 dropped idx_metrics_run_key

    # Why: with that index back and a million points, every metrics query still scans the table (zone maps
    # prune it). Should a DuckDB release start using it, this fails and the index is worth having again.
    with db.transaction() as con:
        con.execute(
            "INSERT INTO metrics SELECT 'run-' || (i // 200), 'k' || (i % 20), i, 0.1, TIMESTAMP '2026-01-01' "
            "FROM range(1000000) t(i)"
        )
        con.execute("CREATE INDEX idx_probe ON metrics(run_id, key)")
        con.execute("CREATE TABLE probe AS SELECT 'run-' || i AS id FROM range(100000) t(i)")
        con.execute("CREATE INDEX idx_probe_id ON probe(id)")
    queries = [
        ("SELECT run_id, step, value FROM metrics WHERE list_contains(?, run_id) AND key = ?", [["run-1"], "k3"]),
        ("SELECT key, step, value, ts FROM metrics WHERE run_id = ? AND key = ?", ["run-1", "k3"]),
        ("SELECT key, step, value, ts FROM metrics WHERE run_id = ?", ["run-1"]),
    ]
    with db.read() as con:
        assert "Type: Index Scan" in _scan_types(con, "SELECT id FROM probe WHERE id = ?", ["run-7"])  # detectable
        for sql, params in queries:
            plan = _scan_types(con, sql, params)
            assert "Type: Sequential Scan" in plan and "Index Scan" not in plan, plan


def test_an_in_memory_database_leaves_no_journal_files_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = Database(Path(":memory:"))
    Services.build(db).experiments.create(ExperimentCreate(name="in memory"))

    db.close()

    assert list(tmp_path.iterdir()) == []  # it wrote ":memory:.metrics-journal" here before
