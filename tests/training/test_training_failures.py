"""Every way a run can be refused exits non-zero, before training, with the reason as the last line."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import run_training, write_jsonl

pytestmark = pytest.mark.slow


def _dataset(folder: Path, case: str, audio_dir: Path) -> tuple[str, Path]:
    tone = str(audio_dir / "tone0.wav")
    if case == "missing audio":
        records = [
            {"prompt": "a", "audio_path": tone, "rating": 5},
            {"prompt": "b", "audio_path": "nowhere.wav", "rating": 5},
        ]
        return "supervised", write_jsonl(folder / "data.jsonl", records)
    if case == "unreadable audio":
        (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
        return "supervised", write_jsonl(
            folder / "data.jsonl", [{"prompt": "a", "audio_path": "broken.wav", "rating": 5}]
        )
    if case == "wrong shape":
        records = [{"prompt": "a", "chosen_path": tone, "rejected_path": tone}]
        return "supervised", write_jsonl(folder / "data.jsonl", records)
    if case == "wrong shape for preference":
        return "preference", write_jsonl(folder / "data.jsonl", [{"prompt": "a", "audio_path": tone, "rating": 5}])
    if case == "empty dataset":
        (folder / "data.jsonl").write_text("\n\n")
        return "supervised", folder / "data.jsonl"
    if case == "bad rating":
        return "supervised", write_jsonl(folder / "data.jsonl", [{"prompt": "a", "audio_path": tone, "rating": 7}])
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing audio", "line 2: audio_path nowhere.wav does not exist"),
        ("unreadable audio", "line 1: audio_path broken.wav is not readable audio"),
        ("wrong shape", "line 1: supervised lines need prompt, audio_path, rating; missing audio_path, rating"),
        ("wrong shape for preference", "(this looks like a supervised line)"),
        ("empty dataset", "is empty"),
        ("bad rating", "line 1: rating must be from 1 to 5, got 7"),
    ],
)
def test_bad_data_is_refused(case: str, expected: str, tmp_path: Path, audio_dir: Path, tiny_model: Path) -> None:
    training_type, data = _dataset(tmp_path, case, audio_dir)
    run = run_training(tmp_path / "out", "--type", training_type, "--data", data, "--base-model", tiny_model)
    assert run.returncode == 2
    assert run.last_line.startswith("error: ")
    assert expected in run.last_line
    assert not (tmp_path / "out" / "final").exists()
    assert not run.metrics


def test_bad_hyperparameters_are_all_reported_at_once(tmp_path: Path, supervised_data: Path, tiny_model: Path) -> None:
    run = run_training(
        tmp_path / "out", "--type", "supervised", "--data", supervised_data, "--base-model", tiny_model,
        "--epochs", "0", "--lora-r", "0", "--learning-rate", "3", "--lora-target-modules", "q_proj,fc1",
    )  # fmt: skip
    assert run.returncode == 2
    for problem in ("epochs must be at least 1", "lora_r must be at least 1", "learning_rate", "fc1"):
        assert problem in run.last_line
    assert run.last_line.startswith("error: invalid hyperparameters")


def test_pickle_only_model_folder_is_refused(tmp_path: Path, supervised_data: Path, tiny_model: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"pretend pickle")
    run = run_training(tmp_path / "out", "--type", "supervised", "--data", supervised_data, "--base-model", folder)
    assert run.returncode == 2
    assert "only pickle weights (pytorch_model.bin)" in run.last_line
    assert "safetensors" in run.last_line
