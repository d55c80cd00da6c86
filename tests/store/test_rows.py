"""The in-memory rows: read once, told of every committed write, never keeping a row a write raced past."""

from __future__ import annotations

from datetime import datetime

import pytest

from tunelab.domain.experiments import Execution, Experiment, ExperimentCreate, ExperimentStatus, Provenance
from tunelab.domain.runs import Run, RunCreate, RunStatus, RunStatusUpdate
from tunelab.errors import Conflict
from tunelab.services import Services
from tunelab.store import Database
from tunelab.store.rows import Rows


def experiment(name: str) -> Experiment:
    return Experiment(
        id="exp-1", name=name, description=None, status=ExperimentStatus.DRAFT, archived=False, dataset_id=None,
        config={}, inputs={}, outputs={}, provenance=Provenance(), execution=Execution(), best_metrics={},
        metric_goals={}, run_count=0, created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1),
    )  # fmt: skip


def test_a_row_is_loaded_once_then_served_from_memory() -> None:
    rows = Rows({}, {})
    loads: list[str] = []

    def load(eid: str) -> Experiment:
        loads.append(eid)
        return experiment("first")

    assert rows.experiment("exp-1", load).name == "first"
    assert rows.experiment("exp-1", load).name == "first"
    assert loads == ["exp-1"]
    rows.experiment_changed("exp-1")
    rows.experiment("exp-1", load)
    assert loads == ["exp-1", "exp-1"]


def test_a_load_that_a_write_raced_past_is_answered_but_not_kept() -> None:
    rows = Rows({}, {})

    def stale_load(eid: str) -> Experiment:
        rows.experiment_changed(eid)  # a write commits while this read is in the database
        return experiment("before the write")

    assert rows.experiment("exp-1", stale_load).name == "before the write"
    assert rows.experiment("exp-1", lambda eid: experiment("after the write")).name == "after the write"


def test_a_run_load_that_a_write_raced_past_is_not_kept() -> None:
    rows = Rows({}, {})
    old = Run(
        id="run-1", experiment_id="exp-1", name="r", status=RunStatus.RUNNING, training_type=None, external=True,
        config={}, inputs={}, error=None, adapter_id=None, final_loss=None, metrics_summary={},
        created_at=datetime(2026, 1, 1), started_at=None, completed_at=None,
    )  # fmt: skip
    ended = old.model_copy(update={"status": RunStatus.COMPLETED})

    def stale_load(ids: list[str]) -> list[Run]:
        rows.put_run(ended)  # the run ended and was put while this read ran
        return [old]

    assert rows.runs(["run-1"], stale_load)["run-1"].status is RunStatus.RUNNING
    assert rows.runs(["run-1"], lambda ids: [])["run-1"].status is RunStatus.COMPLETED


def test_a_write_that_rolls_back_leaves_what_reads_see_unchanged(services: Services) -> None:
    first = services.experiments.create(ExperimentCreate(name="first"))
    services.experiments.create(ExperimentCreate(name="second"))
    assert services.experiments.get(first.id).name == "first"  # now in memory

    from tunelab.domain.experiments import ExperimentUpdate

    with pytest.raises(Conflict):
        services.experiments.update(first.id, ExperimentUpdate(name="second"))

    assert services.experiments.get(first.id).name == "first"


def test_what_the_services_write_is_read_back_through_memory_and_after_a_restart(settings) -> None:
    db = Database(settings.db_path)
    services = Services.build(db)
    exp = services.experiments.create(ExperimentCreate(name="cached"))
    run = services.runs.create(exp.id, RunCreate(external=True))
    assert services.experiments.get(exp.id).status is ExperimentStatus.RUNNING  # the run started it
    services.runs.set_status(run.id, RunStatusUpdate(status=RunStatus.FAILED, error="boom"))
    seen = (services.experiments.get(exp.id).status, services.runs.get(run.id).status)
    services.experiments.archive(exp.id)
    archived = services.experiments.detail(exp.id)
    db.close()

    again = Services.build(Database(settings.db_path))
    assert seen == (ExperimentStatus.FAILED, RunStatus.FAILED)
    assert archived.status is ExperimentStatus.ARCHIVED and archived.runs[0].error == "boom"
    fresh = again.experiments.detail(exp.id)
    assert (fresh.status, fresh.runs[0].status, fresh.runs[0].error) == (
        ExperimentStatus.ARCHIVED,
        RunStatus.FAILED,
        "boom",
    )
    again.db.close()
