"""Metric summaries: final value at the highest step, best by the key's goal."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from tunelab.domain.runs import (
    MetricColumns,
    best_of_runs,
    final_loss,
    merge_summaries,
    metric_goal,
    parse_metric_batch,
    summarise,
)


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


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        ([1.0, 2.0], []),
        ([1e308, 1e308], []),  # their sum overflows, yet both are finite
        ([math.inf, -math.inf], [0, 1]),  # their sum is NaN
        ([0.5, math.nan, 0.25], [1]),
        ([-math.inf], [0]),
    ],
)
def test_non_finite_names_exactly_the_bad_indexes(values: list[float], bad: list[int]) -> None:
    n = len(values)
    assert MetricColumns(["k"] * n, [0] * n, values, [None] * n).non_finite() == bad


def test_parsed_json_batch_has_utc_naive_stamps_and_float_values() -> None:
    raw = b'{"points": [{"key": "a", "value": 1, "step": 2, "ts": "2026-01-01T02:00:00+02:00"}, {"key": "b", "value": NaN, "step": 3}]}'
    batch = parse_metric_batch(raw)
    assert (batch.keys, batch.steps) == (["a", "b"], [2, 3])
    assert batch.values[0] == 1.0 and isinstance(batch.values[0], float) and math.isnan(batch.values[1])
    assert batch.stamps == [datetime(2026, 1, 1, 0, 0), None]
    assert batch.non_finite() == [1]
