"""Settings: where the database is, and that tests never see the developer's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunelab.config import Settings

SETTINGS_ENV = {"EXPERIMENT_DB", *(f"TUNELAB_{name.upper()}" for name in Settings.model_fields)}


def test_tests_run_without_any_tunelab_environment() -> None:
    # The autouse fixture in tests/conftest.py removed them; a real user DB can never be reached.
    assert {"EXPERIMENT_DB", "TUNELAB_DB", "TUNELAB_DATA_DIR"} <= SETTINGS_ENV
    assert not [var for var in SETTINGS_ENV if var in os.environ]


def test_the_cleared_variables_are_the_ones_settings_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNELAB_DATA_DIR", str(tmp_path / "env-dir"))
    assert Settings().db_path == (tmp_path / "env-dir" / "tunelab.duckdb").resolve()
    monkeypatch.setenv("EXPERIMENT_DB", str(tmp_path / "legacy.duckdb"))
    assert Settings().db_path == (tmp_path / "legacy.duckdb").resolve()
    monkeypatch.setenv("TUNELAB_DB", str(tmp_path / "explicit.duckdb"))
    assert Settings(data_dir=tmp_path).db_path == (tmp_path / "explicit.duckdb").resolve()
