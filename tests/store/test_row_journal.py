"""The row journal: small writes of experiments and runs are durable when acknowledged, answered from memory at
once, in DuckDB soon or as soon as anything asks DuckDB, and replayed exactly once after a crash."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter, ExperimentStatus, ExperimentUpdate
from tunelab.domain.runs import RunCreate, RunStatus, RunStatusUpdate
from tunelab.errors import Conflict
from tunelab.services import Services
from tunelab.store import Database


def journal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".rows-journal")


def stored(db: Database, table: str, row_id: str) -> tuple[object, ...] | None:
    """The row's status as DuckDB holds it, read without applying the journal."""
    found = db._conn.cursor().execute(f"SELECT status FROM {table} WHERE id = ?", [row_id]).fetchone()  # noqa: S608
    return found


def test_a_created_experiment_and_run_wait_in_the_journal_and_are_answered_from_memory(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)

    experiment = services.experiments.create(ExperimentCreate(name="behind"))
    run = services.runs.create(experiment.id, RunCreate(external=True))

    assert stored(db, "experiments", experiment.id) is None  # not in DuckDB yet …
    assert stored(db, "runs", run.id) is None
    assert journal_path(settings.db_path).stat().st_size > 0  # … but on disk
    assert db.row_journal.pending
    assert services.runs.get(run.id).status is RunStatus.RUNNING  # from memory (a read applies the journal too)
    db.close()


def test_a_read_through_duckdb_applies_the_journal_first(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)
    experiment = services.experiments.create(ExperimentCreate(name="listed"))
    services.runs.create(experiment.id, RunCreate(external=True))

    page = services.experiments.list_page(ExperimentFilter())

    assert [(e.name, e.status, e.run_count) for e in page.items] == [("listed", ExperimentStatus.RUNNING, 1)]
    assert stored(db, "experiments", experiment.id) == ("running",)
    assert journal_path(settings.db_path).stat().st_size == 0
    db.close()


def test_the_journal_reaches_duckdb_within_flush_after(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=0.1)
    services = Services.build(db)
    ids = [services.experiments.create(ExperimentCreate(name=f"e{i}")).id for i in range(5)]
    run = services.runs.create(ids[0], RunCreate(external=True))
    services.runs.set_status(run.id, RunStatusUpdate(status=RunStatus.FAILED, error="boom"))

    deadline = time.monotonic() + 5
    while db.row_journal.pending and time.monotonic() < deadline:
        time.sleep(0.02)

    assert all(stored(db, "experiments", eid) for eid in ids)
    assert stored(db, "runs", run.id) == ("failed",)
    assert stored(db, "experiments", ids[0]) == ("failed",)  # the run that ended settled its experiment
    assert journal_path(settings.db_path).stat().st_size == 0
    db.close()


def test_names_are_checked_in_memory_across_journaled_and_renamed_experiments(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)
    first = services.experiments.create(ExperimentCreate(name="taken"))

    with pytest.raises(Conflict) as same_name:
        services.experiments.create(ExperimentCreate(name="taken"))
    with pytest.raises(Conflict) as same_id:
        services.experiments.create(ExperimentCreate(name="other", id=first.id))
    services.experiments.update(first.id, ExperimentUpdate(name="renamed"))
    services.experiments.create(ExperimentCreate(name="taken"))  # free again
    with pytest.raises(Conflict):
        services.experiments.create(ExperimentCreate(name="renamed"))

    assert (same_name.value.code, same_name.value.details["experiment_id"]) == ("experiment_name_taken", first.id)
    assert same_id.value.code == "experiment_exists"
    assert sorted(e.name for e in services.experiments.list_page(ExperimentFilter()).items) == ["renamed", "taken"]
    db.close()


def test_run_names_are_checked_in_memory_and_automatic_names_skip_taken_ones(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)
    experiment = services.experiments.create(ExperimentCreate(name="runs"))
    services.runs.create(experiment.id, RunCreate(external=True, name="run-2"))

    with pytest.raises(Conflict) as taken:
        services.runs.create(experiment.id, RunCreate(external=True, name="run-2"))
    automatic = services.runs.create(experiment.id, RunCreate(external=True))

    assert taken.value.code == "run_name_taken"
    assert automatic.name == "run-3"
    db.close()
    db = Database(settings.db_path, flush_after=3600)  # names of stored runs are read from DuckDB once
    with pytest.raises(Conflict):
        Services.build(db).runs.create(experiment.id, RunCreate(external=True, name="run-3"))
    db.close()


_CRASHER = """
import os, sys
from pathlib import Path
from tunelab.domain.experiments import ExperimentCreate
from tunelab.domain.runs import RunCreate, RunStatus, RunStatusUpdate
from tunelab.services import Services
from tunelab.store import Database

db = Database(Path(sys.argv[1]), flush_after=3600)  # nothing reaches DuckDB before the crash
services = Services.build(db)
done = services.experiments.create(ExperimentCreate(name="ended", config={"lr": 0.1, "note": "ü"}))
run = services.runs.create(done.id, RunCreate(external=True, config={"epochs": 3}))
services.runs.set_status(run.id, RunStatusUpdate(status=RunStatus.COMPLETED))
open_run = services.runs.create(services.experiments.create(ExperimentCreate(name="open")).id, RunCreate(external=True))
print(done.id, run.id, open_run.id, flush=True)
os._exit(137)  # as kill -9: no close, no flush, no cleanup
"""


def crash(settings: Settings) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _CRASHER, str(settings.db_path)], capture_output=True, text=True)
    assert done.returncode == 137, done.stderr
    return done.stdout.split()


def assert_recovered(db: Database, experiment_id: str, run_id: str, open_run_id: str) -> None:
    services = Services.build(db)
    experiment = services.experiments.get(experiment_id)
    run = services.runs.get(run_id)
    assert (experiment.status, experiment.config, experiment.run_count) == (
        ExperimentStatus.COMPLETED, {"lr": 0.1, "note": "ü"}, 1,
    )  # fmt: skip
    assert (run.status, run.config, run.completed_at is not None) == (RunStatus.COMPLETED, {"epochs": 3}, True)
    assert services.runs.get(open_run_id).status is RunStatus.RUNNING
    assert stored(db, "runs", run_id) == ("completed",)


def test_writes_acknowledged_before_a_crash_are_applied_when_the_database_opens(settings: Settings) -> None:
    experiment_id, run_id, open_run_id = crash(settings)
    assert journal_path(settings.db_path).stat().st_size > 0

    db = Database(settings.db_path)

    assert journal_path(settings.db_path).stat().st_size == 0
    assert_recovered(db, experiment_id, run_id, open_run_id)
    db.close()


def test_a_torn_last_line_is_skipped_and_applying_twice_is_applying_once(settings: Settings) -> None:
    experiment_id, run_id, open_run_id = crash(settings)
    path = journal_path(settings.db_path)
    lines = path.read_bytes()
    Database(settings.db_path).close()
    # The server died after its commit and before emptying the file, then again halfway through a line.
    path.write_bytes(lines + b'[{"table":"runs","id":"run-x","insert":true,"values":{"na')

    db = Database(settings.db_path)

    assert_recovered(db, experiment_id, run_id, open_run_id)
    assert db._conn.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    db.close()
