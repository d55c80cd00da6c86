"""Fixtures shared by every test folder: a real DuckDB file in a temporary data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
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
        # A server's first start copies the tiny MusicGen into its data dir: tests that want it ask (bootstrap_model).
        patch.setenv("TUNELAB_BOOTSTRAP_MODEL", "0")
        # Nor does it start the generation worker (~5 s to load torch and the model): it starts when a job comes.
        patch.setenv("TUNELAB_WARM_WORKER", "0")
        yield


@pytest.fixture(scope="session", autouse=True)
def _tiny_model_cached(_no_tunelab_env: None) -> None:
    """The tiny MusicGen trained into the cache before any test runs (about 2 minutes, once per machine), so that
    no test whose server, CLI or training subprocess makes one pays that build inside its own timeout."""
    from tunelab.musicgen.tiny import cached_tiny_musicgen

    cached_tiny_musicgen(0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny MusicGen for the session (tests copy it where they need it; none may change it)."""
    from tunelab.musicgen.tiny import create_tiny_musicgen

    return create_tiny_musicgen(tmp_path_factory.mktemp("tiny") / "musicgen", seed=0)


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The output folder of one real `python -m tunelab.training` run on the tiny MusicGen (one step, r=16): its
    `final/` is a PEFT LoRA adapter, next to `training_config.json`. Tests copy what they change."""
    import json

    import numpy as np
    import soundfile

    folder = tmp_path_factory.mktemp("trained")
    t = np.arange(16_000) / 16_000
    lines = []
    for index, frequency in enumerate((220.0, 330.0, 440.0, 550.0)):
        soundfile.write(folder / f"clip{index}.wav", (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32),
                        16_000)  # fmt: skip
        lines.append(json.dumps({"prompt": f"tone {frequency:g} Hz", "audio_path": f"clip{index}.wav", "rating": 5}))
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    output = folder / "run"
    command = [sys.executable, "-m", "tunelab.training", "--type", "supervised", "--data", str(folder / "data.jsonl"),
               "--base-model", str(tiny_model), "--output-dir", str(output), "--epochs", "1", "--batch-size", "4",
               "--max-audio-seconds", "1", "--save-every", "0", "--eval-fraction", "0.25"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return output


_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def hold_db() -> Iterator[Callable[[Path], None]]:
    """hold_db(path): another process opens the DuckDB file at `path` and keeps its lock until the test ends."""
    holders: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> None:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


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
