"""Fixtures shared by every test folder: a real DuckDB file in a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelab.config import Settings
from tunelab.services import Services
from tunelab.store import Database


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
