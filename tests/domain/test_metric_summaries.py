"""Metric goals and summaries: final value at the highest step, best by the key's goal (or none)."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from tunelab.domain.metrics import (
    KeyStats,
    MetricColumns,
    MetricGoal,
    append_stats,
    appends_to,
    batch_stats,
    best_of_runs,
    default_goal,
    final_loss,
    parse_metric_batch,
    ranked,
    summarise,
)


def columns(keys: list[str], steps: list[int], values: list[float]) -> MetricColumns:
    return MetricColumns(keys, steps, values, [None] * len(keys))


@pytest.mark.parametrize(
    ("key", "goal"),
    [
        ("loss", "min"), ("eval_loss", "min"), ("train/loss", "min"), ("Error_rate", "min"), ("val_error", "min"),
        ("best_eval_loss", "min"), ("wer", "min"), ("perplexity", "min"),
        ("accuracy", "max"), ("reward_accuracy", "max"), ("train_reward_accuracy", "max"), ("reward_margin", "max"),
        ("val_acc", "max"), ("score", "max"), ("bleu", "max"), ("f1", "max"),
        ("lr", "none"), ("learning_rate", "none"), ("grad_norm", "none"), ("epoch", "none"), ("chosen_logp", "none"),
        ("rejected_logp", "none"), ("best_step", "none"), ("steps", "none"), ("runtime_seconds", "none"),
        ("train_examples", "none"), ("throughput", "none"), ("bleurt_variant", "none"),
    ],
)  # fmt: skip
def test_default_goals_follow_the_key(key: str, goal: str) -> None:
    assert default_goal(key) == goal


def test_batch_stats_keep_count_extremes_and_the_value_at_the_last_step() -> None:
    stats = batch_stats(columns(["loss", "loss", "loss", "acc", "acc"], [0, 5, 3, 0, 1], [2.0, 1.5, 0.9, 0.1, 0.7]))
    assert stats["loss"] == KeyStats(count=3, min=0.9, max=2.0, first_step=0, last_step=5, last_value=1.5)
    assert stats["acc"] == KeyStats(count=2, min=0.1, max=0.7, first_step=0, last_step=1, last_value=0.7)


def test_a_resent_point_in_one_batch_keeps_the_last_one_sent() -> None:
    batch = columns(["loss", "loss", "acc", "loss"], [1, 2, 1, 1], [0.9, 0.8, 0.5, 0.7]).deduplicated()
    assert list(zip(batch.keys, batch.steps, batch.values, strict=True)) == [
        ("loss", 2, 0.8), ("acc", 1, 0.5), ("loss", 1, 0.7),
    ]  # fmt: skip
    unique = columns(["a", "b"], [1, 1], [1.0, 2.0])
    assert unique.deduplicated() is unique


def test_appending_needs_every_key_to_start_after_its_stored_steps() -> None:
    stored = batch_stats(columns(["loss", "acc"], [10, 4], [0.5, 0.1]))
    assert appends_to(stored, batch_stats(columns(["loss", "acc", "new"], [11, 5, 0], [0.4, 0.2, 1.0])))
    assert not appends_to(stored, batch_stats(columns(["loss"], [10], [0.3])))  # step 10 is stored: replaced
    assert not appends_to(stored, batch_stats(columns(["acc", "acc"], [9, 3], [0.3, 0.3])))
    merged = append_stats(stored, batch_stats(columns(["loss", "loss"], [20, 12], [0.8, 0.1])))
    assert merged["loss"] == KeyStats(count=3, min=0.1, max=0.8, first_step=10, last_step=20, last_value=0.8)
    assert merged["acc"] == stored["acc"]


def test_summaries_pick_best_by_goal_and_experiments_may_override_it() -> None:
    stats = batch_stats(columns(["loss", "loss", "lr", "custom"], [1, 2, 2, 2], [0.5, 0.7, 1e-4, 3.0]))

    default = summarise(stats, {})
    assert (default["loss"].final, default["loss"].best, default["loss"].goal) == (0.7, 0.5, "min")
    assert (default["lr"].best, default["lr"].goal) == (None, "none")  # not ranked: no best
    assert default["custom"].goal == "none"

    custom = summarise(stats, {"custom": MetricGoal.MAX, "loss": MetricGoal.MAX})
    assert (custom["custom"].best, custom["loss"].best) == (3.0, 0.7)
    assert final_loss(stats) == 0.7


def test_final_loss_prefers_final_loss_then_loss_then_train_loss() -> None:
    both = batch_stats(columns(["train_loss", "loss"], [1, 1], [0.3, 0.4]))
    assert final_loss(both) == 0.4
    assert final_loss(batch_stats(columns(["train_loss"], [1], [0.3]))) == 0.3
    assert final_loss(batch_stats(columns(["final_loss", "loss"], [1, 1], [0.2, 0.4]))) == 0.2
    assert final_loss({}) is None


def test_best_of_runs_respects_each_goal_and_skips_unranked_metrics() -> None:
    a = batch_stats(columns(["loss", "accuracy", "lr"], [1, 1, 1], [0.4, 0.6, 1e-3]))
    b = batch_stats(columns(["loss", "accuracy", "lr"], [1, 1, 1], [0.3, 0.5, 1e-2]))
    assert best_of_runs([a, b], {}) == {"accuracy": 0.6, "loss": 0.3}
    assert best_of_runs([a, b], {"lr": MetricGoal.MIN, "accuracy": MetricGoal.NONE}) == {"loss": 0.3, "lr": 1e-3}


def test_ranking_stars_every_tied_run_and_none_for_unranked_goals() -> None:
    values = {"a": 0.2, "b": 0.5, "c": 0.2, "d": None}
    assert ranked(values, MetricGoal.MIN) == ["a", "c"]
    assert ranked(values, MetricGoal.MAX) == ["b"]
    assert ranked(values, MetricGoal.NONE) == []
    assert ranked({"a": None}, MetricGoal.MIN) == []


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
