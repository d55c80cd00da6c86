"""The experiment tracker port on DuckDB: the spec's lifecycle, lineage lookups and status rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from tunelab.client import HttpTracker
from tunelab.domain.artifacts import ArtifactCreate
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter, ExperimentStatus, Provenance
from tunelab.domain.metrics import MetricBatch, MetricPoint
from tunelab.domain.runs import RunCreate, RunStatus, RunStatusUpdate
from tunelab.errors import Conflict, Unprocessable
from tunelab.services import Services
from tunelab.services.experiments import ExperimentService
from tunelab.services.tracker import ExperimentTracker


def artifact(services: Services, type_: str, id_: str) -> str:
    return services.artifacts.create(ArtifactCreate(id=id_, type=type_, uri=f"file:///{id_}")).id


def test_both_implementations_satisfy_the_port(services: Services) -> None:
    assert isinstance(services.experiments, ExperimentTracker)
    assert isinstance(HttpTracker("http://127.0.0.1:1"), ExperimentTracker)
    assert isinstance(ExperimentService(services.db), ExperimentTracker)


def test_spec_lifecycle_with_frozen_inputs_and_outputs(services: Services) -> None:
    tracker: ExperimentTracker = services.experiments
    for kind, aid in [
        ("dataset_export", "alert-1"),
        ("dataset_export", "alert-2"),
        ("base_model", "ohlcv-1"),
    ]:
        artifact(services, kind, aid)
    artifact(services, "metrics", "metrics-456")
    created = tracker.create_experiment(
        ExperimentCreate(
            id="exp-123", name="Test Experiment",
            inputs={"datasets": ["alert-1", "alert-2"], "base_models": ["ohlcv-1"]},
            config={"params": {"lr": 1e-4}},
            provenance=Provenance(git_commit="abc123", git_dirty=False, engine_version="1.0.0"),
        )
    )  # fmt: skip
    assert created.id == "exp-123" and created.status is ExperimentStatus.DRAFT
    assert created.provenance.git_commit == "abc123" and created.provenance.engine_version == "1.0.0"

    tracker.update_status("exp-123", "running")
    tracker.store_results("exp-123", {"metrics": "metrics-456"})
    done = tracker.update_status("exp-123", "completed")

    fetched = tracker.get_experiment("exp-123")
    assert fetched.status is ExperimentStatus.COMPLETED == done.status
    assert fetched.outputs == {"metrics": "metrics-456"}
    assert fetched.execution.started_at is not None and fetched.execution.completed_at is not None
    assert fetched.execution.duration_ms is not None and fetched.execution.duration_ms >= 0
    assert [e.id for e in tracker.find_by_input_artifacts(["alert-2"])] == ["exp-123"]
    assert tracker.find_by_input_artifacts(["metrics-456"]) == []
    lineage = services.artifacts.lineage("metrics-456")
    assert lineage["produced_by"] == [{"experiment_id": "exp-123"}] and lineage["used_by"] == []


def test_filters_by_artifact_type_commit_and_status(services: Services) -> None:
    artifact(services, "audio", "a1")
    services.experiments.create(ExperimentCreate(name="with-audio", inputs={"audio": ["a1"]}))
    services.experiments.create(ExperimentCreate(name="other-commit", provenance=Provenance(git_commit="feedbeef")))
    tracker = services.experiments
    assert [e.name for e in tracker.list_experiments(ExperimentFilter(artifact_type="audio"))] == ["with-audio"]
    assert [e.name for e in tracker.list_experiments(ExperimentFilter(git_commit="feedbeef"))] == ["other-commit"]
    assert tracker.list_experiments(ExperimentFilter(status="pending", limit=1))[0].status is ExperimentStatus.DRAFT


def test_wrong_transition_and_unknown_outputs_change_nothing(services: Services) -> None:
    experiment = services.experiments.create(ExperimentCreate(name="strict"))
    with pytest.raises(Conflict) as caught:
        services.experiments.update_status(experiment.id, "completed")
    assert caught.value.code == "invalid_status_transition"
    with pytest.raises(Unprocessable) as missing:
        services.experiments.store_results(experiment.id, {"model": "nope-1"})
    assert missing.value.details == {"missing": ["nope-1"]}
    after = services.experiments.get(experiment.id)
    assert after.status is ExperimentStatus.DRAFT and after.outputs == {}


def test_all_runs_failed_marks_experiment_failed_with_last_error(services: Services) -> None:
    experiment = services.experiments.create(ExperimentCreate(name="doomed"))
    first = services.runs.create(experiment.id, RunCreate(external=True))
    second = services.runs.create(experiment.id, RunCreate(external=True))
    assert services.experiments.get(experiment.id).status is ExperimentStatus.RUNNING
    services.runs.set_status(first.id, RunStatusUpdate(status=RunStatus.FAILED, error="out of memory"))
    assert services.experiments.get(experiment.id).status is ExperimentStatus.RUNNING
    services.runs.set_status(second.id, RunStatusUpdate(status=RunStatus.FAILED, error="disk full"))
    failed = services.experiments.get(experiment.id)
    assert failed.status is ExperimentStatus.FAILED and failed.execution.error == "disk full"


def test_one_success_among_terminal_runs_completes_experiment(services: Services) -> None:
    experiment = services.experiments.create(ExperimentCreate(name="mixed"))
    ok = services.runs.create(experiment.id, RunCreate(external=True))
    bad = services.runs.create(experiment.id, RunCreate(external=True))
    services.runs.set_status(bad.id, RunStatusUpdate(status=RunStatus.FAILED, error="boom"))
    services.runs.set_status(ok.id, RunStatusUpdate(status=RunStatus.COMPLETED))
    done = services.experiments.get(experiment.id)
    assert done.status is ExperimentStatus.COMPLETED and done.execution.error is None


@pytest.mark.parametrize(
    ("ends", "status", "error"),
    [
        # (run status, error) in the order the runs end
        ([("failed", "oom"), ("cancelled", None)], ExperimentStatus.FAILED, "oom"),
        ([("cancelled", None), ("failed", "oom")], ExperimentStatus.FAILED, "oom"),
        ([("failed", "oom"), ("failed", "nan"), ("cancelled", None)], ExperimentStatus.FAILED, "nan"),
        ([("cancelled", None), ("completed", None), ("failed", "oom")], ExperimentStatus.COMPLETED, None),
        ([("cancelled", None), ("cancelled", None)], ExperimentStatus.CANCELLED, None),
        ([("completed", None)], ExperimentStatus.COMPLETED, None),
        ([("failed", "oom")], ExperimentStatus.FAILED, "oom"),
    ],
)
def test_experiment_status_once_every_run_has_ended(
    services: Services, ends: list[tuple[str, str | None]], status: ExperimentStatus, error: str | None
) -> None:
    """completed if any run completed; failed with the last failure's error if none did; cancelled if all were."""
    experiment = services.experiments.create(ExperimentCreate(name="settled"))
    runs = [services.runs.create(experiment.id, RunCreate(external=True)) for _ in ends]
    for run, (run_status, run_error) in zip(runs, ends, strict=True):
        assert services.experiments.get(experiment.id).status is ExperimentStatus.RUNNING
        services.runs.set_status(run.id, RunStatusUpdate(status=RunStatus(run_status), error=run_error))
    settled = services.experiments.get(experiment.id)
    assert (settled.status, settled.execution.error) == (status, error)
    assert settled.execution.completed_at is not None


def _write_concurrently(services: Services, run_id: str, step_of: Callable[[int, int, int], int]) -> None:
    """Six threads send ten batches of 100 points each; step_of(worker, batch, i) says which steps."""
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for batch in range(10):
                points = [MetricPoint(key="loss", value=1.0 / (1 + worker + batch + i), step=step_of(worker, batch, i))
                          for i in range(100)]  # fmt: skip
                services.runs.ingest(run_id, MetricBatch(points=points))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_writers_lose_nothing(services: Services) -> None:
    experiment = services.experiments.create(ExperimentCreate(name="busy"))
    run = services.runs.create(experiment.id, RunCreate(external=True))

    _write_concurrently(services, run.id, lambda worker, batch, i: worker * 1000 + batch * 100 + i)

    series = json.loads(services.runs.metrics(run.id))["series"]["loss"]
    assert [p["step"] for p in series] == sorted(w * 1000 + s for w in range(6) for s in range(1000))
    assert services.runs.get(run.id).metrics_summary["loss"].count == 6000
    assert services.experiments.get(experiment.id).best_metrics["loss"] == pytest.approx(1.0 / (1 + 5 + 9 + 99))


def test_concurrent_writers_of_the_same_steps_leave_one_point_per_step(services: Services) -> None:
    experiment = services.experiments.create(ExperimentCreate(name="retries"))
    run = services.runs.create(experiment.id, RunCreate(external=True))

    _write_concurrently(services, run.id, lambda worker, batch, i: batch * 100 + i)

    series = json.loads(services.runs.metrics(run.id))["series"]["loss"]
    assert [p["step"] for p in series] == list(range(1000))
    # Each stored value is one that some worker sent for that step.
    sent = {b * 100 + i: {1.0 / (1 + w + b + i) for w in range(6)} for b in range(10) for i in range(100)}
    assert all(p["value"] in sent[p["step"]] for p in series)
    summary = services.runs.get(run.id).metrics_summary["loss"]
    assert summary.count == 1000 and summary.best == min(p["value"] for p in series)


def test_after_a_restart_runs_keep_taking_or_refusing_points_as_their_status_says(settings) -> None:
    """What the server keeps in memory (stats, which runs run) starts empty after a restart and is rebuilt."""
    from tunelab.store import Database

    first = Database(settings.db_path)
    services = Services.build(first)
    experiment = services.experiments.create(ExperimentCreate(name="restarted"))
    running = services.runs.create(experiment.id, RunCreate(external=True, name="running"))
    ended = services.runs.create(experiment.id, RunCreate(external=True, name="ended"))
    services.runs.ingest(running.id, MetricBatch(points=[MetricPoint(key="loss", value=0.5, step=1)]))
    services.runs.set_status(ended.id, RunStatusUpdate(status=RunStatus.COMPLETED))
    first.close()

    again = Services.build(Database(settings.db_path))
    assert again.runs.ingest(running.id, MetricBatch(points=[MetricPoint(key="loss", value=0.25, step=2)])) == 1
    with pytest.raises(Conflict) as refused:
        again.runs.ingest(ended.id, MetricBatch(points=[MetricPoint(key="loss", value=0.25, step=2)]))
    assert refused.value.code == "run_finished"
    summary = again.runs.get(running.id).metrics_summary["loss"]
    assert (summary.count, summary.final, summary.best) == (2, 0.25, 0.25)
    again.db.close()
