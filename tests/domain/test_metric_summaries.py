"""Metric summaries: final value at the highest step, best by the key's goal."""

from __future__ import annotations

from tunelab.domain.runs import best_of_runs, final_loss, merge_summaries, metric_goal, summarise


def test_goal_minimises_losses_and_errors_only() -> None:
    assert [metric_goal(k) for k in ("loss", "eval_loss", "Error_rate", "accuracy", "reward_margin")] == [
        "min", "min", "min", "max", "max",
    ]  # fmt: skip


def test_summarise_takes_highest_step_and_best_by_goal() -> None:
    summary = summarise(
        ["loss", "loss", "loss", "acc", "acc", "loss"], [0, 5, 3, 0, 1, 5], [2.0, 1.5, 0.9, 0.1, 0.7, 1.2]
    )
    assert summary["loss"].final == 1.2  # step 5 twice: the later point wins
    assert summary["loss"].best == 0.9 and summary["loss"].last_step == 5 and summary["loss"].count == 4
    assert summary["acc"].final == 0.7 and summary["acc"].best == 0.7 and summary["acc"].goal == "max"


def test_merge_keeps_later_final_and_overall_best() -> None:
    old = summarise(["loss"], [10], [0.5])
    late = merge_summaries(old, summarise(["loss"], [20], [0.8]))
    early = merge_summaries(old, summarise(["loss"], [3], [0.1]))
    assert (late["loss"].final, late["loss"].best, late["loss"].count) == (0.8, 0.5, 2)
    assert (early["loss"].final, early["loss"].best, early["loss"].last_step) == (0.5, 0.1, 10)
    assert final_loss(late) == 0.8


def test_best_of_runs_respects_each_goal() -> None:
    a = summarise(["loss", "acc"], [1, 1], [0.4, 0.6])
    b = summarise(["loss", "acc"], [1, 1], [0.3, 0.5])
    assert best_of_runs([a, b]) == {"loss": 0.3, "acc": 0.6}
