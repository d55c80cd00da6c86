"""The statistics shown for ratings, A/B tests and the leaderboard: known values, edge cases, JSON-readiness, and
Monte-Carlo checks of the properties the figures claim (the always-valid interval stays valid under peeking)."""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any

import numpy as np
import pytest
from scipy import optimize, special

from tunelab import stats

AB_KEYS = {
    "a_wins",
    "b_wins",
    "ties",
    "win_rate_a",
    "win_rate_ci",
    "p_value",
    "significant",
    "enough_votes",
    "decisive",
    "sequential_ci",
    "verdict",
    "warning",
}


def assert_plain_json(value: Any) -> None:
    """Only JSON's own types, exactly (np.float64 passes json.dumps as a float subclass; it must not slip through)."""
    json.dumps(value, allow_nan=False)
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{value!r} is a {type(value)}"


# --- Wilson interval, sign test --------------------------------------------------------------------------------------


def test_wilson_interval_known_value() -> None:
    lo, hi = stats.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_edges() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = stats.wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    assert stats.wilson_interval(0, 10)[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        stats.wilson_interval(3, 2)


def test_sign_test_known_values() -> None:
    assert stats.sign_test(9, 1) == pytest.approx(0.021484375)
    assert stats.sign_test(1, 9) == pytest.approx(0.021484375)
    assert stats.sign_test(5, 5) == pytest.approx(1.0)
    assert stats.sign_test(0, 0) is None


def test_minimum_decisive_votes_is_where_the_exact_test_first_can_reject() -> None:
    assert stats.minimum_decisive_votes(0.05) == 6
    assert stats.sign_test(5, 0) == pytest.approx(0.0625)  # 5-0 is not enough
    assert stats.sign_test(6, 0) == pytest.approx(0.03125)
    assert stats.minimum_decisive_votes(0.01) == 8


# --- Confidence sequence -----------------------------------------------------------------------------------------


def log_mixture_ratio(successes: int, n: int, p: float, prior: float = stats.CS_PRIOR) -> float:
    """log M_n(p), written out independently of the module."""
    return float(
        special.betaln(prior + successes, prior + n - successes)
        - special.betaln(prior, prior)
        - successes * math.log(p)
        - (n - successes) * math.log1p(-p)
    )


@pytest.mark.parametrize(("successes", "n"), [(1, 1), (3, 10), (8, 10), (60, 100), (150, 200), (5, 500)])
def test_confidence_sequence_ends_are_where_the_mixture_ratio_reaches_one_over_alpha(successes: int, n: int) -> None:
    lo, hi = stats.confidence_sequence(successes, n, alpha=0.05)
    assert 0.0 < lo < successes / n <= hi <= 1.0
    assert log_mixture_ratio(successes, n, lo) == pytest.approx(math.log(20), abs=1e-6)
    if hi < 1.0:
        assert log_mixture_ratio(successes, n, hi) == pytest.approx(math.log(20), abs=1e-6)


def test_confidence_sequence_edges_and_symmetry() -> None:
    assert stats.confidence_sequence(0, 0) == (0.0, 1.0)
    lo, hi = stats.confidence_sequence(0, 5)
    assert lo == 0.0 and 0.0 < hi < 1.0
    lo, hi = stats.confidence_sequence(5, 5)
    assert hi == 1.0 and 0.0 < lo < 1.0
    lo, hi = stats.confidence_sequence(30, 100)
    mirror_lo, mirror_hi = stats.confidence_sequence(70, 100)
    assert lo == pytest.approx(1 - mirror_hi) and hi == pytest.approx(1 - mirror_lo)
    # An all-one-side run excludes 0.5 from the 8th vote (the fixed-sample test already at the 6th).
    assert stats.confidence_sequence(7, 7)[0] < 0.5 < stats.confidence_sequence(8, 8)[0]


@pytest.mark.parametrize(("successes", "n"), [(6, 10), (9, 10), (60, 100), (130, 200), (600, 1000)])
def test_confidence_sequence_is_wider_than_wilson_and_narrows_with_votes(successes: int, n: int) -> None:
    lo, hi = stats.confidence_sequence(successes, n)
    w_lo, w_hi = stats.wilson_interval(successes, n)
    assert lo < w_lo and w_hi < hi
    lo10, hi10 = stats.confidence_sequence(successes * 10, n * 10)
    assert hi10 - lo10 < hi - lo


def test_confidence_sequence_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.confidence_sequence(5, 4)
    with pytest.raises(ValueError):
        stats.confidence_sequence(1, 2, alpha=0.0)


def first_exclusion(paths: np.ndarray, interval: Any, p0: float = 0.5) -> np.ndarray:
    """Per path of cumulative successes, the first n (1-based) whose interval excludes p0; 0 if none does."""

    @functools.cache
    def excludes(s: int, n: int) -> bool:
        lo, hi = interval(s, n)
        return not lo <= p0 <= hi

    first = np.zeros(len(paths), dtype=int)
    for row, path in enumerate(paths):
        for n, s in enumerate(path, start=1):
            if excludes(int(s), n):
                first[row] = n
                break
    return first


def simulate(p: float, sequences: int, votes: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((sequences, votes)) < p).cumsum(axis=1)


def test_peeking_after_every_vote_the_confidence_sequence_stays_valid_and_wilson_does_not() -> None:
    paths = simulate(0.5, sequences=800, votes=200, seed=20240601)
    sequential = np.mean(first_exclusion(paths, stats.confidence_sequence) > 0)
    fixed = np.mean(first_exclusion(paths, stats.wilson_interval) > 0)
    assert sequential <= 0.07  # ~0.04 measured; Ville's inequality bounds it by alpha
    assert fixed >= 0.25  # ~0.43 measured: the nominal 5% fixed-sample interval, looked at 200 times


def test_the_confidence_sequence_still_detects_a_real_preference() -> None:
    paths = simulate(0.75, sequences=300, votes=200, seed=7)
    first = first_exclusion(paths, stats.confidence_sequence)
    assert np.mean(first > 0) >= 0.95
    assert np.median(first[first > 0]) <= 60  # ~30 decisive votes measured


# --- A/B results -----------------------------------------------------------------------------------------------------


def test_ab_results_without_votes() -> None:
    result = stats.ab_results(0, 0, 0)
    assert result == {
        "a_wins": 0,
        "b_wins": 0,
        "ties": 0,
        "decisive": 0,
        "win_rate_a": None,
        "win_rate_ci": None,
        "p_value": None,
        "significant": False,
        "enough_votes": False,
        "sequential_ci": None,
        "verdict": "undecided",
        "warning": "No votes yet.",
    }


def test_ab_results_all_ties() -> None:
    result = stats.ab_results(0, 0, 12)
    assert set(result) == AB_KEYS
    assert result["win_rate_a"] is None and result["p_value"] is None and result["win_rate_ci"] is None
    assert result["significant"] is False and result["enough_votes"] is False and result["verdict"] == "undecided"
    assert "tie" in result["warning"]
    assert_plain_json(result)


def test_ab_results_known_values_and_ties_excluded() -> None:
    result = stats.ab_results(9, 1, 5)
    assert set(result) == AB_KEYS
    assert result["decisive"] == 10 and result["ties"] == 5
    assert result["win_rate_a"] == pytest.approx(0.9)
    assert result["p_value"] == pytest.approx(0.0215, abs=1e-4)
    assert result["win_rate_ci"] == pytest.approx([0.5958, 0.9821], abs=1e-4)
    assert result["significant"] is True and result["enough_votes"] is True
    # 9 of 10 is significant for one look, not yet for the always-valid interval: the user is told so.
    assert result["sequential_ci"][0] < 0.5 < result["sequential_ci"][1]
    assert result["verdict"] == "undecided"
    assert "always-valid" in result["warning"]
    assert_plain_json(result)


def test_ab_results_verdicts() -> None:
    a_better = stats.ab_results(40, 8, 3)
    assert a_better["verdict"] == "a_better" and a_better["sequential_ci"][0] > 0.5 and a_better["warning"] is None
    b_better = stats.ab_results(8, 40, 3)
    assert b_better["verdict"] == "b_better" and b_better["sequential_ci"][1] < 0.5
    even = stats.ab_results(25, 25, 0)
    assert even["verdict"] == "undecided" and even["significant"] is False and even["p_value"] == pytest.approx(1.0)
    assert even["warning"] is None
    for result in (a_better, b_better, even):
        assert_plain_json(result)


def test_ab_results_with_few_votes() -> None:
    one = stats.ab_results(1, 0, 0)
    assert one["win_rate_a"] == 1.0 and one["p_value"] == pytest.approx(1.0)
    assert one["enough_votes"] is False and one["significant"] is False
    assert one["warning"].startswith("Only 1 decisive vote:")
    assert_plain_json(one)
    five = stats.ab_results(5, 0, 2)  # 5-0 cannot reach p < 0.05 (p = 0.0625)
    assert five["enough_votes"] is False and five["significant"] is False and "6" in five["warning"]
    six = stats.ab_results(6, 0, 0)
    assert six["enough_votes"] is True and six["significant"] is True and six["verdict"] == "undecided"
    eight = stats.ab_results(8, 0, 0)
    assert eight["verdict"] == "a_better" and eight["win_rate_ci"][1] == 1.0


def test_ab_results_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.ab_results(-1, 0, 0)
    with pytest.raises(ValueError):
        stats.ab_results(1, 0, 0, alpha=1.5)


# --- Ratings ---------------------------------------------------------------------------------------------------------


def test_rating_summary_known_values() -> None:
    summary = stats.rating_summary([1, 2, 3, 4, 5])
    assert summary["count"] == 5 and summary["average"] == 3.0
    # 3 ± t(0.975, 4) · sqrt(2.5 / 5) = 3 ± 2.7764 · 0.7071
    assert summary["ci"] == pytest.approx([1.0368, 4.9632], abs=1e-4)
    assert summary["distribution"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}
    assert_plain_json(summary)


def test_rating_summary_edges() -> None:
    assert stats.rating_summary([]) == {
        "count": 0,
        "average": None,
        "ci": None,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }
    one = stats.rating_summary([4])
    assert one["average"] == 4.0 and one["ci"] is None
    same = stats.rating_summary([4, 4, 4])
    assert same["ci"] == [4.0, 4.0] and same["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 3, "5": 0}
    clipped = stats.rating_summary([5, 5, 5, 4])
    assert clipped["ci"][1] == 5.0  # the t interval would pass 5 stars
    for summary in (one, same, clipped):
        assert_plain_json(summary)
    with pytest.raises(ValueError):
        stats.rating_summary([0, 3])
    with pytest.raises(ValueError):
        stats.rating_summary([2.5])  # type: ignore[list-item]


def test_compare_ratings() -> None:
    better, worse = [5] * 15 + [4] * 10, [2] * 15 + [3] * 10
    different = stats.compare_ratings(better, worse)
    assert different["significant"] is True and different["p_value"] < 1e-6
    assert different["u"] == 625.0 and different["prob_a_higher"] == 1.0
    same = stats.compare_ratings([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert same["significant"] is False and same["p_value"] == pytest.approx(1.0) and same["prob_a_higher"] == 0.5
    identical = stats.compare_ratings([3, 3, 3], [3, 3])
    assert identical["p_value"] == 1.0 and identical["significant"] is False
    empty = stats.compare_ratings([], [4, 5])
    assert empty == {"u": None, "p_value": None, "significant": False, "prob_a_higher": None}
    for result in (different, same, identical, empty):
        assert_plain_json(result)


# --- Bradley-Terry ---------------------------------------------------------------------------------------------------


def simulated_comparisons(
    log_strengths: list[float], count: int, seed: int, tie_rate: float = 0.1
) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    comparisons = []
    for _ in range(count):
        i, j = rng.choice(len(log_strengths), size=2, replace=False)
        p_first = 1.0 / (1.0 + math.exp(log_strengths[j] - log_strengths[i]))
        u = rng.random()
        outcome = "tie" if u < tie_rate else "first" if u < tie_rate + (1 - tie_rate) * p_first else "second"
        comparisons.append((f"model-{i}", f"model-{j}", outcome))
    return comparisons


def test_bradley_terry_recovers_the_order_of_known_strengths() -> None:
    strengths = [-2.0, -1.0, -0.3, 0.3, 1.0, 2.0]
    board = stats.bradley_terry(simulated_comparisons(strengths, 1500, seed=3), bootstrap=100)
    assert [entry["id"] for entry in board] == [f"model-{i}" for i in reversed(range(len(strengths)))]
    assert [entry["rank"] for entry in board] == [1, 2, 3, 4, 5, 6]
    assert sum(entry["score"] for entry in board) / len(board) == pytest.approx(1000.0, abs=0.05)
    # Elo scale: 400 points per factor 10 in strength; the fitted gaps match the true ones within a few tens.
    gap = board[0]["score"] - board[-1]["score"]
    assert gap == pytest.approx(stats.ELO_SCALE * 4.0, rel=0.15)
    for entry in board:
        assert entry["ci"][0] <= entry["score"] <= entry["ci"][1]
        assert entry["games"] == entry["wins"] + entry["losses"] + entry["ties"]
    assert sum(entry["games"] for entry in board) == 2 * 1500
    assert_plain_json(board)


def penalised_log_likelihood(theta: np.ndarray, wins: np.ndarray) -> float:
    """The module's objective written out directly, for scipy.optimize.minimize to check the fit against."""
    diff = theta[:, None] - theta[None, :]
    c = stats.BT_PRIOR_GAMES
    return float(np.sum(wins * -np.logaddexp(0.0, -diff)) + c * np.sum(theta / 2 - np.logaddexp(0.0, theta)))


def test_bradley_terry_fit_is_the_penalised_maximum_likelihood() -> None:
    comparisons = simulated_comparisons([0.0, 0.5, 1.5, -1.0], 60, seed=11, tie_rate=0.2)
    comparisons += [("model-2", "model-3", "first")] * 5  # a lopsided pair
    board = stats.bradley_terry(comparisons, bootstrap=0)
    players = sorted(entry["id"] for entry in board)
    wins = np.zeros((4, 4))
    for first, second, outcome in comparisons:
        i, j = players.index(first), players.index(second)
        share = {"first": 1.0, "second": 0.0, "tie": 0.5}[outcome]
        wins[i, j] += share
        wins[j, i] += 1 - share
    best = optimize.minimize(lambda t: -penalised_log_likelihood(t, wins), np.zeros(4), method="BFGS", tol=1e-10)
    expected = 1000 + stats.ELO_SCALE * (best.x - best.x.mean())
    by_id = {entry["id"]: entry["score"] for entry in board}
    assert [by_id[p] for p in players] == pytest.approx(expected, abs=0.02)
    assert all(entry["ci"] is None for entry in board)


def test_bradley_terry_counts_a_tie_as_half_a_win() -> None:
    all_ties = stats.bradley_terry([("a", "b", "tie")] * 4, bootstrap=20)
    assert [entry["score"] for entry in all_ties] == [1000.0, 1000.0]
    assert [entry["rank"] for entry in all_ties] == [1, 1]
    assert all_ties[0]["ties"] == 4 and all_ties[0]["wins"] == 0 and all_ties[0]["games"] == 4
    two_ties = stats.bradley_terry([("a", "b", "tie"), ("a", "c", "tie"), ("a", "b", "tie")], bootstrap=0)
    split = stats.bradley_terry([("a", "b", "first"), ("a", "c", "tie"), ("b", "a", "first")], bootstrap=0)
    assert {e["id"]: e["score"] for e in two_ties} == pytest.approx({e["id"]: e["score"] for e in split})


def test_bradley_terry_keeps_an_undefeated_player_finite() -> None:
    board = stats.bradley_terry([("champ", "rookie", "first")] * 30 + [("rookie", "champ", "second")] * 30)
    assert board[0]["id"] == "champ" and board[0]["wins"] == 60 and board[0]["losses"] == 0
    assert math.isfinite(board[0]["score"]) and 1000 < board[0]["score"] < 2000
    assert board[1]["score"] == pytest.approx(2000 - board[0]["score"], abs=0.02)


def test_bradley_terry_is_deterministic_for_a_seed() -> None:
    comparisons = simulated_comparisons([0.0, 0.4, 0.8], 90, seed=5)
    assert stats.bradley_terry(comparisons, seed=1) == stats.bradley_terry(comparisons, seed=1)
    one, other = stats.bradley_terry(comparisons, seed=1), stats.bradley_terry(comparisons, seed=2)
    assert [e["score"] for e in one] == [e["score"] for e in other]
    assert [e["ci"] for e in one] != [e["ci"] for e in other]


def test_bradley_terry_edges() -> None:
    assert stats.bradley_terry([]) == []
    with pytest.raises(ValueError):
        stats.bradley_terry([("a", "b", "draw")])
    with pytest.raises(ValueError):
        stats.bradley_terry([("a", "a", "first")])


def test_bradley_terry_is_fast() -> None:
    comparisons = simulated_comparisons([0.2 * i for i in range(10)], 500, seed=1)
    stats.bradley_terry(comparisons, bootstrap=10)  # warm up
    started = time.perf_counter()
    stats.bradley_terry(comparisons, bootstrap=200)
    assert time.perf_counter() - started < 1.0  # ~10 ms measured; the budget is 200 ms, with room for a slow CI
