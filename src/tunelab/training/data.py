"""Read and check a training JSONL file and load its audio as mono clips at the model's sampling rate.

Every problem found is reported at once, with line numbers, before a model is even loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from scipy.signal import resample_poly

from tunelab.training.errors import InputError

_FIELDS = {"supervised": ("prompt", "audio_path", "rating"), "preference": ("prompt", "chosen_path", "rejected_path")}
_MAX_LISTED = 8


@dataclass(frozen=True)
class SupervisedExample:
    """A rated clip: imitate `audio` when prompted with `prompt`."""

    line: int
    prompt: str
    audio: Path
    rating: int


@dataclass(frozen=True)
class PreferenceExample:
    """A pair: for `prompt`, `chosen` was preferred over `rejected`."""

    line: int
    prompt: str
    chosen: Path
    rejected: Path


Example = SupervisedExample | PreferenceExample


@dataclass(frozen=True)
class Clip:
    """Mono float32 samples padded to a fixed length; `valid` counts the real (unpadded) ones."""

    samples: np.ndarray
    valid: int


def read_dataset(path: Path, training_type: str) -> list[Example]:
    """Parse and check every line of `path`; raise one InputError naming each bad line."""
    if not path.is_file():
        raise InputError(f"dataset file not found: {path}")
    examples: list[Example] = []
    problems: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                examples.append(_parse_line(number, text, training_type, path.parent))
            except ValueError as problem:
                problems.append(f"line {number}: {problem}")
    if problems:
        shown = problems[:_MAX_LISTED] + ([f"and {len(problems) - _MAX_LISTED} more"] if problems[_MAX_LISTED:] else [])
        raise InputError(f"invalid dataset {path}: " + "; ".join(shown))
    if not examples:
        raise InputError(f"dataset {path} is empty: no examples to train on")
    return examples


def _parse_line(number: int, text: str, training_type: str, root: Path) -> Example:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    _check_shape(record, training_type)
    prompt = record["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    if training_type == "supervised":
        return SupervisedExample(number, prompt, _audio_file(record, "audio_path", root), _rating(record["rating"]))
    chosen = _audio_file(record, "chosen_path", root)
    return PreferenceExample(number, prompt, chosen, _audio_file(record, "rejected_path", root))


def _check_shape(record: dict[str, Any], training_type: str) -> None:
    wanted = _FIELDS[training_type]
    missing = [name for name in wanted if name not in record]
    if not missing:
        return
    other = next(kind for kind in _FIELDS if kind != training_type)
    hint = f" (this looks like a {other} line)" if all(name in record for name in _FIELDS[other]) else ""
    raise ValueError(f"{training_type} lines need {', '.join(wanted)}; missing {', '.join(missing)}{hint}")


def _rating(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"rating must be a whole number from 1 to 5, got {value!r}")
    if not 1 <= value <= 5:
        raise ValueError(f"rating must be from 1 to 5, got {value!r}")
    return int(value)


def _audio_file(record: dict[str, Any], key: str, root: Path) -> Path:
    value = record[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a file path")
    path = Path(value) if Path(value).is_absolute() else root / value
    if not path.is_file():
        raise ValueError(f"{key} {value} does not exist")
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises its own LibsndfileError and RuntimeError subclasses
        raise ValueError(f"{key} {value} is not readable audio ({error})") from None
    if info.frames == 0:
        raise ValueError(f"{key} {value} has no samples")
    return path


def load_clip(path: Path, sampling_rate: int, max_seconds: float) -> Clip:
    """Read `path`, mix to mono, resample to `sampling_rate`, crop or zero-pad to `max_seconds`."""
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise InputError(f"cannot read audio {path}: {error}") from None
    mono = samples.mean(axis=1)
    if rate != sampling_rate:
        divisor = math.gcd(int(rate), sampling_rate)
        mono = resample_poly(mono, sampling_rate // divisor, int(rate) // divisor).astype(np.float32)
    length = int(round(max_seconds * sampling_rate))
    valid = min(len(mono), length)
    padded = np.zeros(length, dtype=np.float32)
    padded[:valid] = mono[:valid]
    return Clip(samples=padded, valid=valid)


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A held-out eval set chosen by `seed`; empty when there is too little to hold out.

    At least one example is held out when `eval_fraction` is above 0, and at least one is always left to
    train on, however high the fraction.
    """
    if eval_fraction <= 0 or len(examples) < 2:
        return list(examples), []
    order = np.random.default_rng(seed).permutation(len(examples))
    held = min(len(examples) - 1, max(1, int(round(len(examples) * eval_fraction))))
    held_out = set(order[:held].tolist())
    train = [example for index, example in enumerate(examples) if index not in held_out]
    return train, [example for index, example in enumerate(examples) if index in held_out]
