"""Fixtures shared by every test folder: a real DuckDB file in a temporary data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelab.config import Settings
from tunelab.services import Services
from tunelab.store import Database

# Every environment variable Settings reads (pydantic-settings: TUNELAB_<field>; config.py: EXPERIMENT_DB).
TUNELAB_ENV = ("EXPERIMENT_DB", *(f"TUNELAB_{name.upper()}" for name in Settings.model_fields))


def is_tunelab_env(var: str) -> bool:
    # pydantic-settings matches names case-insensitively, so `tunelab_db` is read as TUNELAB_DB.
    return var == "EXPERIMENT_DB" or var.upper().startswith("TUNELAB_")


@pytest.fixture(scope="session", autouse=True)
def _no_tunelab_env() -> Iterator[None]:
    """No test may reach the developer's real database through their environment.

    Session-scoped, so it is in effect before every other fixture, module- and session-scoped ones included.
    """
    with pytest.MonkeyPatch.context() as patch:
        for var in [var for var in os.environ if is_tunelab_env(var)]:
            patch.delenv(var)
        yield


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
