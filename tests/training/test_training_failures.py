"""Every way a run can be refused exits non-zero, before training, with the reason as the last line."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from training_helpers import run_training, start_training, write_jsonl

from tunelab.training.args import resume_problems
from tunelab.training.events import parse_events

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


def test_missing_dataset_base_model_and_all_low_ratings_are_refused(
    tmp_path: Path, audio_dir: Path, supervised_data: Path, tiny_model: Path
) -> None:
    cases = {
        "dataset file not found": ("--data", tmp_path / "nowhere.jsonl", "--base-model", tiny_model),
        "base model folder not found": ("--data", supervised_data, "--base-model", tmp_path / "no-model"),
    }
    low = write_jsonl(
        tmp_path / "low.jsonl", [{"prompt": "meh", "audio_path": str(audio_dir / "tone0.wav"), "rating": 2}]
    )
    cases["no example is rated 3 or more (min_rating)"] = ("--data", low, "--base-model", tiny_model)
    for expected, args in cases.items():
        run = run_training(tmp_path / "out", "--type", "supervised", *args)
        assert run.returncode == 2, expected
        assert expected in run.last_line, (expected, run.last_line)
        assert not (tmp_path / "out").exists(), expected  # refused before anything was written


def test_sigterm_mid_training_keeps_the_checkpoints_and_says_why(
    tmp_path: Path, supervised_data: Path, tiny_model: Path
) -> None:
    output = tmp_path / "out"
    process = start_training(
        output, "--type", "supervised", "--data", supervised_data, "--base-model", tiny_model,
        "--epochs", "500", "--save-every", "2", "--max-audio-seconds", "1.0",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (output / "checkpoint-2" / "trainer_state.json").is_file():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143
    last_line = stderr.decode().strip().splitlines()[-1]
    assert last_line == "error: stopped by SIGTERM; checkpoints written so far are kept"
    checkpoints = sorted(output.glob("checkpoint-*"))
    assert checkpoints and all(not resume_problems(folder) for folder in checkpoints if folder.suffix != ".partial")
    assert not (output / "final").exists()
    assert parse_events(stdout) and (output / "metrics.jsonl").read_text()  # the partial log stays too


def test_a_non_finite_loss_stops_before_the_weights_change(
    tmp_path: Path, supervised_data: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A numerical blow-up (forced here at the third step) ends the run with exit 1 and the reason, and
    the checkpoint before it stays intact."""
    import torch

    from tunelab.training import objectives
    from tunelab.training.train import main

    calls = {"train": 0}
    real_loss = objectives.supervised_loss

    def blowing_up(model: object, batch: object, pad: int, weighted: bool = True) -> torch.Tensor:
        loss = real_loss(model, batch, pad, weighted)  # type: ignore[arg-type]
        if weighted:
            calls["train"] += 1
            if calls["train"] == 3:
                return loss * torch.tensor(float("nan"))
        return loss

    monkeypatch.setattr(objectives, "supervised_loss", blowing_up)
    output = tmp_path / "out"
    status = main([
        "--type", "supervised", "--data", str(supervised_data), "--base-model", str(tiny_model),
        "--output-dir", str(output), "--epochs", "3", "--save-every", "2", "--max-audio-seconds", "1.0",
        "--eval-fraction", "0",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.strip().splitlines()[-1] == "error: loss became nan at step 3; try a lower learning rate"
    assert not resume_problems(output / "checkpoint-2")
    assert not (output / "checkpoint-3").exists() and not (output / "final").exists()
    from safetensors.torch import load_file

    saved = load_file(str(output / "checkpoint-2" / "adapter_model.safetensors"))
    assert all(torch.isfinite(tensor).all() for tensor in saved.values())
