"""Settings: where the database is, and that tests never see the developer's environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tunelab
from tunelab.config import DEFAULT_DATA_DIR, HOME_DATA_DIR, Settings, source_checkout

SETTINGS_ENV = {"EXPERIMENT_DB", *(f"TUNELAB_{name.upper()}" for name in Settings.model_fields)}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env_seen_by_a_module_fixture() -> Iterator[list[str]]:
    yield [var for var in os.environ if var == "EXPERIMENT_DB" or var.upper().startswith("TUNELAB_")]


def test_tests_run_without_any_tunelab_environment(env_seen_by_a_module_fixture: list[str]) -> None:
    # The session fixture in tests/conftest.py removed them; a real user DB can never be reached.
    assert {"EXPERIMENT_DB", "TUNELAB_DB", "TUNELAB_DATA_DIR"} <= SETTINGS_ENV
    # All but two, which the fixture sets itself: no test server makes the tiny model, or starts the generation
    # worker, unless the test asks.
    fixed = ["TUNELAB_BOOTSTRAP_MODEL", "TUNELAB_WARM_WORKER"]
    assert sorted(var for var in os.environ if var.upper() in SETTINGS_ENV) == fixed
    assert os.environ["TUNELAB_BOOTSTRAP_MODEL"] == "0" and Settings().bootstrap_model is False
    assert os.environ["TUNELAB_WARM_WORKER"] == "0" and Settings().warm_worker is False
    assert sorted(env_seen_by_a_module_fixture) == fixed
    settings = Settings()
    # The tests run TuneLab from this checkout (`make setup` installs it editable): the default is its ./data.
    assert settings.data_dir == DEFAULT_DATA_DIR == REPO / "data"
    assert settings.db_path == REPO / "data" / "tunelab.duckdb"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_a_developers_environment_does_not_reach_the_tests(tmp_path: Path) -> None:
    """Run the test above in a pytest whose environment points every setting somewhere else."""
    env = {
        **os.environ,
        "TUNELAB_DATA_DIR": str(tmp_path / "real-data"),
        "TUNELAB_DB": str(tmp_path / "real.duckdb"),
        "tunelab_port": "9999",  # pydantic-settings reads names case-insensitively
        "TUNELAB_HOST": "0.0.0.0",
        "EXPERIMENT_DB": str(tmp_path / "legacy.duckdb"),
        "TUNELAB_BOOTSTRAP_MODEL": "1",
        "TUNELAB_WARM_WORKER": "1",
    }
    test_id = "tests/test_config.py::test_tests_run_without_any_tunelab_environment"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", test_id, "-q", "-p", "no:cacheprovider"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert not list(tmp_path.iterdir())  # no database was created where the environment pointed


def test_the_cleared_variables_are_the_ones_settings_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNELAB_DATA_DIR", str(tmp_path / "env-dir"))
    assert Settings().db_path == (tmp_path / "env-dir" / "tunelab.duckdb").resolve()
    monkeypatch.setenv("EXPERIMENT_DB", str(tmp_path / "legacy.duckdb"))
    assert Settings().db_path == (tmp_path / "legacy.duckdb").resolve()
    monkeypatch.setenv("TUNELAB_DB", str(tmp_path / "explicit.duckdb"))
    assert Settings(data_dir=tmp_path).db_path == (tmp_path / "explicit.duckdb").resolve()


def checkout_with(tmp_path: Path, pyproject: str | None) -> Path:
    package = tmp_path / "checkout" / "src" / "tunelab"
    package.mkdir(parents=True)
    if pyproject is not None:
        (tmp_path / "checkout" / "pyproject.toml").write_text(pyproject)
    return package


def test_a_source_checkout_is_src_tunelab_beside_a_pyproject_naming_tunelab(tmp_path: Path) -> None:
    assert source_checkout(Path(tunelab.__file__).resolve().parent) == REPO
    assert (
        source_checkout(checkout_with(tmp_path / "a", '[project]\nname = "tunelab"\n')) == tmp_path / "a" / "checkout"
    )
    assert source_checkout(checkout_with(tmp_path / "b", '[project]\nname = "other"\n')) is None
    assert source_checkout(checkout_with(tmp_path / "c", "not = [toml")) is None
    assert source_checkout(checkout_with(tmp_path / "d", None)) is None
    wheel = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "tunelab"
    wheel.mkdir(parents=True)
    assert source_checkout(wheel) is None


@pytest.mark.parametrize("layout", ["checkout", "wheel"])
def test_the_default_data_dir_follows_where_tunelab_runs_from(tmp_path: Path, layout: str) -> None:
    """A copy of the package run as a checkout's src/tunelab, or as an installed wheel's site-packages/tunelab."""
    root = tmp_path / layout
    package = root / "src" / "tunelab" if layout == "checkout" else root / "site-packages" / "tunelab"
    shutil.copytree(REPO / "src" / "tunelab", package, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pyproject.toml").write_text('[project]\nname = "tunelab"\n')  # beside a wheel it is not a checkout
    code = "import tunelab.config as c; print(c.__file__); print(c.Settings().data_dir)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(package.parent)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded_from, data_dir = done.stdout.splitlines()
    assert Path(loaded_from).is_relative_to(package)
    assert Path(data_dir) == (root / "data" if layout == "checkout" else HOME_DATA_DIR.resolve())
