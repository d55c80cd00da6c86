"""The feedback loop end to end (bench/loop.py, run as a script): a simulated listener who prefers brighter clips
votes an A/B test of the base model against itself, the votes become a preference dataset, a DPO run trains an
adapter on it through the API, and in a new A/B test against the base model the adapter must win significantly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LOOP = Path(__file__).resolve().parents[1] / "bench" / "loop.py"


@pytest.mark.slow
def test_an_adapter_trained_on_a_listeners_votes_wins_that_listeners_ab_test(tmp_path: Path) -> None:
    command = [sys.executable, str(LOOP), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["preference_decisive"] >= 10, figures  # the listener could tell most pairs apart
    assert figures["win_rate"] >= 0.6, figures
    assert figures["win_rate_ci"][0] > 0.5, figures  # Wilson lower bound above chance
    assert figures["significant"], figures
    assert figures["centroid_shift_hz"] > 0, figures  # the adapter moved the property the listener likes
    lineage = figures["lineage"]
    assert lineage["dataset"]["abtests"] == [figures["preference_abtest_id"]], lineage
