"""The experiment status rules, in the one function every path asks (domain/experiments.status_from_runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tunelab.domain.experiments import ExperimentStatus, RunOutcome, status_from_runs
from tunelab.domain.runs import RunStatus

E = ExperimentStatus
T0 = datetime(2026, 12, 1, 12, 0)


def run(status: RunStatus, minute: int = 0, error: str | None = None) -> RunOutcome:
    ended = (
        T0.replace(minute=minute) if status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED) else None
    )
    return RunOutcome(status, ended, error)


@pytest.mark.parametrize("current", [E.DRAFT, E.COMPLETED, E.FAILED, E.CANCELLED])
def test_a_running_run_makes_the_experiment_running(current: ExperimentStatus) -> None:
    assert status_from_runs(current, [run(RunStatus.COMPLETED), run(RunStatus.RUNNING)]) == (E.RUNNING, None)


def test_a_running_experiment_stays_running_while_a_run_has_not_ended() -> None:
    assert status_from_runs(E.RUNNING, [run(RunStatus.RUNNING)]) is None
    assert status_from_runs(E.RUNNING, [run(RunStatus.COMPLETED), run(RunStatus.PENDING)]) is None


def test_queued_runs_do_not_start_an_experiment() -> None:
    assert status_from_runs(E.DRAFT, [run(RunStatus.PENDING)]) is None
    assert status_from_runs(E.COMPLETED, [run(RunStatus.COMPLETED), run(RunStatus.PENDING)]) is None


def test_once_every_run_has_ended_completed_wins_then_failed_with_the_last_error_then_cancelled() -> None:
    assert status_from_runs(E.RUNNING, [run(RunStatus.FAILED, 1, "a"), run(RunStatus.COMPLETED, 2)]) == (
        E.COMPLETED, None)  # fmt: skip
    failed = [run(RunStatus.FAILED, 5, "late"), run(RunStatus.FAILED, 1, "early"), run(RunStatus.CANCELLED, 9)]
    assert status_from_runs(E.RUNNING, failed) == (E.FAILED, "late")
    assert status_from_runs(E.RUNNING, [run(RunStatus.CANCELLED, 1), run(RunStatus.CANCELLED, 2)]) == (
        E.CANCELLED, None)  # fmt: skip


def test_archived_experiments_and_explicit_statuses_are_kept() -> None:
    assert status_from_runs(E.ARCHIVED, [run(RunStatus.RUNNING)]) is None
    assert status_from_runs(E.ARCHIVED, [run(RunStatus.COMPLETED, 1)]) is None
    # Only a running experiment settles from its runs: a status the tracker set stays.
    assert status_from_runs(E.FAILED, [run(RunStatus.COMPLETED, 1)]) is None
    assert status_from_runs(E.RUNNING, []) is None


def test_runs_are_read_only_up_to_the_first_running_one() -> None:
    read: list[int] = []

    def runs() -> Iterator[RunOutcome]:
        for i in range(1000):
            read.append(i)
            yield run(RunStatus.RUNNING if i == 0 else RunStatus.COMPLETED, 1)

    assert status_from_runs(E.DRAFT, runs()) == (E.RUNNING, None)
    assert read == [0]
