"""Whole series answered from memory (store/texts.py) and list pages from kept ids (store/rows.py): each is
answered only while what it was read from is unchanged, so every write shows in the next read."""

from __future__ import annotations

import json
import random
import threading

from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter, ExperimentUpdate
from tunelab.domain.metrics import MetricColumns
from tunelab.domain.runs import RunCreate, RunStatus, RunStatusUpdate
from tunelab.services import Services
from tunelab.store import Database


def points(steps: range, value: float) -> MetricColumns:
    return MetricColumns(["loss"] * len(steps), list(steps), [value + s for s in steps], [None] * len(steps))


def series(services: Services, run_id: str) -> list[tuple[int, float]]:
    read = json.loads(services.runs.metrics(run_id, keys=["loss"]))["series"].get("loss", [])
    return [(p["step"], p["value"]) for p in read]


def stored(db: Database, run_id: str) -> list[tuple[int, float]]:
    with db.read() as con:
        rows = con.execute("SELECT step, value FROM metrics WHERE run_id = ? AND key = 'loss' ORDER BY step",
                           [run_id]).fetchall()  # fmt: skip
    return [(int(s), float(v)) for s, v in rows]


def test_a_kept_series_is_answered_until_its_points_are_appended_to_or_replaced(settings: Settings) -> None:
    db = Database(settings.db_path)
    services = Services.build(db)
    run_id = services.runs.create(services.experiments.create(ExperimentCreate(name="texts")).id,
                                  RunCreate(external=True)).id  # fmt: skip
    services.runs.ingest(run_id, points(range(0, 10), 0.0))
    first = series(services, run_id)
    assert first == [(s, float(s)) for s in range(10)]
    assert db.texts.get(run_id, "loss", db.summaries.generation(run_id)) is not None  # kept: the next read asks memory
    assert series(services, run_id) == first

    services.runs.ingest(run_id, points(range(10, 12), 0.0))  # appended
    assert series(services, run_id) == [(s, float(s)) for s in range(12)]
    services.runs.ingest(run_id, points(range(3, 5), 100.0))  # sent again: replaces steps 3 and 4
    expected = [(s, 100.0 + s if s in (3, 4) else float(s)) for s in range(12)]
    assert series(services, run_id) == expected == stored(db, run_id)
    db.close()
    reopened = Services.build(Database(settings.db_path))  # a new process keeps nothing from the last one
    assert series(reopened, run_id) == expected


def test_series_read_while_points_are_written_end_equal_to_the_store(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=0.005)
    services = Services.build(db)
    run_id = services.runs.create(services.experiments.create(ExperimentCreate(name="race")).id,
                                  RunCreate(external=True)).id  # fmt: skip
    done = threading.Event()
    rng = random.Random(5)

    def write() -> None:
        for start in range(0, 400, 4):
            services.runs.ingest(run_id, points(range(start, start + 4), 0.0))
            if start % 40 == 0:  # now and then a resend, which replaces stored points
                services.runs.ingest(run_id, points(range(rng.randrange(start + 1)), 1.0))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not done.is_set():
        read = series(services, run_id)
        assert [s for s, _ in read] == sorted(s for s, _ in read)
        reads += 1
    writer.join()
    assert reads > 5
    assert series(services, run_id) == stored(db, run_id)
    assert len(stored(db, run_id)) == 400


def page(services: Services, **query: object) -> tuple[list[str], int]:
    found = services.experiments.list_page(ExperimentFilter.model_validate(query))
    return [e.name for e in found.items], found.total


def test_a_kept_list_page_follows_every_write_of_an_experiment(settings: Settings) -> None:
    db = Database(settings.db_path)
    services = Services.build(db)
    a = services.experiments.create(ExperimentCreate(name="alpha"))
    assert page(services) == (["alpha"], 1)
    assert page(services, q="alp") == (["alpha"], 1)
    b = services.experiments.create(ExperimentCreate(name="beta"))  # through the row journal
    assert page(services) == (["beta", "alpha"], 2)
    services.experiments.update(a.id, ExperimentUpdate(name="gamma"))  # in a transaction
    assert page(services, q="alp") == ([], 0)
    assert page(services, sort="name") == (["beta", "gamma"], 2)
    services.experiments.archive(b.id)
    assert page(services) == (["gamma"], 1)
    assert page(services, status="draft") == (["gamma"], 1)
    run = services.runs.create(a.id, RunCreate(external=True))  # the experiment starts: a write of its row
    assert page(services, status="draft") == ([], 0)
    assert page(services, status="running") == (["gamma"], 1)
    services.runs.set_status(run.id, RunStatusUpdate(status=RunStatus.COMPLETED))  # settles it
    assert page(services, status="running") == ([], 0)
    assert page(services, status="completed") == (["gamma"], 1)
    services.experiments.unarchive(b.id)
    assert page(services, include_archived=True) == (["beta", "gamma"], 2)
