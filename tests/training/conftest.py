"""Session fixtures for the training tests: one tiny MusicGen, synthetic WAVs and finished training runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import PROMPTS, SUPERVISED_ARGS, Run, run_training, write_jsonl, write_noise, write_tone


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tones (one stereo, one at 44.1 kHz, to exercise mixing and resampling) and noise clips."""
    folder = tmp_path_factory.mktemp("audio")
    for index, frequency in enumerate((220.0, 330.0, 440.0, 660.0)):
        write_tone(folder / f"tone{index}.wav", frequency, channels=2 if index == 1 else 1)
        write_noise(folder / f"noise{index}.wav", seed=index)
    write_tone(folder / "tone_44k.wav", 550.0, seconds=1.3, rate=44_100)
    return folder


@pytest.fixture(scope="session")
def supervised_data(audio_dir: Path) -> Path:
    records = [
        {"prompt": prompt, "audio_path": f"tone{index}.wav", "rating": 5 if index % 2 else 4}
        for index, prompt in enumerate(PROMPTS)
    ]
    records.append({"prompt": "bright synth", "audio_path": "tone_44k.wav", "rating": 5})
    records.append({"prompt": "a clip the person disliked", "audio_path": "noise0.wav", "rating": 1})
    return write_jsonl(audio_dir / "supervised.jsonl", records)


@pytest.fixture(scope="session")
def preference_data(audio_dir: Path) -> Path:
    records = [
        {"prompt": prompt, "chosen_path": f"tone{index}.wav", "rejected_path": str(audio_dir / f"noise{index}.wav")}
        for index, prompt in enumerate(PROMPTS)
    ]
    return write_jsonl(audio_dir / "preference.jsonl", records)


@pytest.fixture(scope="session")
def supervised_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, supervised_data: Path) -> Run:
    output = tmp_path_factory.mktemp("supervised") / "run"
    return run_training(
        output, "--type", "supervised", "--data", supervised_data, "--base-model", tiny_model, *SUPERVISED_ARGS
    )


@pytest.fixture(scope="session")
def preference_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, preference_data: Path) -> Run:
    output = tmp_path_factory.mktemp("preference") / "run"
    return run_training(
        output,
        "--type", "preference", "--data", preference_data, "--base-model", tiny_model,
        "--epochs", "6", "--batch-size", "2", "--learning-rate", "5e-3", "--beta", "0.1",
        "--eval-fraction", "0", "--save-every", "0", "--max-audio-seconds", "1.0",
    )  # fmt: skip
