"""Helpers shared by the training tests: run the trainer as a subprocess, write synthetic audio and JSONL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from tunelab.training.events import parse_events, strip_events

SRC = Path(__file__).resolve().parents[2] / "src"
PROMPTS = ("calm ambient pad", "upbeat electronic drums", "slow piano melody", "dark cinematic strings")


@dataclass(frozen=True)
class Run:
    """A finished `python -m tunelab.training` subprocess."""

    returncode: int
    stdout: bytes
    stderr: str
    output_dir: Path

    @property
    def events(self) -> list[dict[str, Any]]:
        return parse_events(self.stdout)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == "metrics"]

    @property
    def summary(self) -> dict[str, Any]:
        return next(event for event in self.events if event["event"] == "summary")["values"]

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    @property
    def text(self) -> str:
        return strip_events(self.stdout).decode()


def _command(output_dir: Path, args: tuple[str | Path, ...]) -> tuple[list[str], dict[str, str]]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    env |= {"NO_COLOR": "1", "TOKENIZERS_PARALLELISM": "false"}
    return [sys.executable, "-m", "tunelab.training", "--output-dir", str(output_dir), *map(str, args)], env


def run_training(output_dir: Path, *args: str | Path) -> Run:
    """Run the trainer as a real subprocess, the way the server does."""
    command, env = _command(output_dir, args)
    done = subprocess.run(command, capture_output=True, env=env, timeout=300, check=False)
    return Run(done.returncode, done.stdout, done.stderr.decode(), output_dir)


def start_training(output_dir: Path, *args: str | Path) -> subprocess.Popen[bytes]:
    """Start the trainer and return at once, for tests that stop it midway."""
    command, env = _command(output_dir, args)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def write_tone(path: Path, frequency: float, seconds: float = 1.0, rate: int = 16_000, channels: int = 1) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t)
    soundfile.write(path, np.repeat(tone[:, None], channels, axis=1).astype(np.float32), rate)
    return path


def write_noise(path: Path, seed: int, seconds: float = 1.0, rate: int = 16_000) -> Path:
    noise = 0.3 * np.random.default_rng(seed).standard_normal(int(rate * seconds))
    soundfile.write(path, noise.astype(np.float32), rate)
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


SUPERVISED_ARGS = (
    "--epochs", "12", "--batch-size", "2", "--learning-rate", "3e-2", "--lora-r", "8", "--lora-alpha", "16",
    "--eval-fraction", "0.2", "--save-every", "6", "--max-audio-seconds", "1.0", "--seed", "7",
)  # fmt: skip
