"""Fixtures shared by every test folder: a real DuckDB file in a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelab.config import Settings
from tunelab.services import Services
from tunelab.store import Database

# Every environment variable Settings reads (pydantic-settings: TUNELAB_<field>; config.py: EXPERIMENT_DB).
TUNELAB_ENV = ("EXPERIMENT_DB", *(f"TUNELAB_{name.upper()}" for name in Settings.model_fields))


@pytest.fixture(autouse=True)
def _no_tunelab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the developer's real database through their environment."""
    for var in TUNELAB_ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    return settings


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.db_path)
    yield database
    database.close()


@pytest.fixture
def services(db: Database) -> Services:
    return Services.build(db)
