"""End to end: `python -m tunelab.training` on the tiny MusicGen, as a subprocess, for both training types."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from training_helpers import SUPERVISED_ARGS, Run, run_training

from tunelab.training.args import parse_args

pytestmark = pytest.mark.slow

ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors"}


def _assert_ok(run: Run) -> None:
    assert run.returncode == 0, run.text[-3000:] + run.stderr


def test_supervised_run_writes_adapters_config_and_metrics(supervised_run: Run, supervised_data: Path) -> None:
    _assert_ok(supervised_run)
    out = supervised_run.output_dir
    for folder in ("final", "best", "checkpoint-6", "checkpoint-12", "checkpoint-18", "checkpoint-24"):
        assert {p.name for p in (out / folder).iterdir()} >= ADAPTER_FILES, folder
    assert {"trainer_state.json", "optimizer.safetensors", "optimizer_state.json"} <= {
        p.name for p in (out / "checkpoint-6").iterdir()
    }
    pickled = [p.name for p in out.rglob("*") if p.suffix in {".pt", ".bin", ".pkl", ".pth"}]
    assert pickled == [], "training must write safetensors and JSON only"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == supervised_run.events
    assert supervised_run.stderr.strip() == ""


def test_training_config_records_what_produced_the_adapter(
    supervised_run: Run, supervised_data: Path, tiny_model: Path
) -> None:
    config = json.loads((supervised_run.output_dir / "training_config.json").read_text())
    assert config["training_type"] == "supervised"
    assert config["hyperparameters"]["epochs"] == 12
    assert config["hyperparameters"]["lora_r"] == 8
    assert config["hyperparameters"]["warmup_ratio"] == 0.1
    assert config["base_model"]["id"] == str(tiny_model)
    assert (
        config["base_model"]["config_sha256"] == hashlib.sha256((tiny_model / "config.json").read_bytes()).hexdigest()
    )
    assert config["dataset"]["sha256"] == hashlib.sha256(supervised_data.read_bytes()).hexdigest()
    assert config["dataset"]["path"] == str(supervised_data.resolve())
    assert config["library_versions"]["torch"].startswith("2.")
    assert config["library_versions"]["peft"]
    assert (config["train_examples"], config["eval_examples"]) == (4, 1)  # the 1-star clip was dropped


def test_supervised_metric_events_have_the_server_shape(supervised_run: Run) -> None:
    metrics = supervised_run.metrics
    assert [event["step"] for event in metrics] == list(range(1, 25))
    assert metrics[-1]["epoch"] == pytest.approx(12.0)
    for event in metrics:
        assert isinstance(event["step"], int)
        assert {"loss", "learning_rate"} <= event["values"].keys()
    assert [e["step"] for e in metrics if "eval_loss" in e["values"]] == list(range(2, 25, 2))
    assert {"final_loss", "best_eval_loss"} <= supervised_run.summary.keys()
    assert supervised_run.events[-1]["event"] == "summary"


def test_output_shows_header_progress_and_summary_without_raw_json(supervised_run: Run) -> None:
    text = supervised_run.text
    assert "TuneLab supervised training" in text
    assert "learning_rate" in text and "epoch 12/12" in text
    assert "done 24 steps" in text
    assert '{"event"' not in text


def _base_model_train_loss(tiny_model: Path, data: Path) -> float:
    """The untrained model's loss on the run's training examples, measured the way the summary's
    train_loss is (eval mode, unweighted), so the two compare like with like."""
    from tunelab.training.codes import CodeCache
    from tunelab.training.data import read_dataset, split_examples
    from tunelab.training.model import load_base_model
    from tunelab.training.objectives import SupervisedObjective, evaluate
    from tunelab.training.train import _rated

    hp = parse_args(["--type", "supervised", "--data", str(data), "--base-model", str(tiny_model),
                     "--output-dir", "unused", *SUPERVISED_ARGS]).hparams  # fmt: skip
    train_set, _ = split_examples(_rated(read_dataset(data, "supervised"), hp.min_rating), hp.eval_fraction, hp.seed)
    base = load_base_model(str(tiny_model))
    cache = CodeCache(base.model, hp.max_audio_seconds, torch.device("cpu"))
    objective = SupervisedObjective(base.processor, cache, torch.device("cpu"))
    return evaluate(base.model, objective, train_set, hp.batch_size)[0]


def test_supervised_training_lowers_the_loss(supervised_run: Run, tiny_model: Path, supervised_data: Path) -> None:
    before = _base_model_train_loss(tiny_model, supervised_data)
    assert supervised_run.summary["train_loss"] < 0.8 * before, (before, supervised_run.summary["train_loss"])
    lrs = [event["values"]["learning_rate"] for event in supervised_run.metrics]
    assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)  # warmup, then decay


@pytest.mark.parametrize("which", ["supervised", "preference"])
def test_trained_adapter_changes_what_the_model_generates(
    which: str, request: pytest.FixtureRequest, tiny_model: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    run: Run = request.getfixturevalue(f"{which}_run")
    _assert_ok(run)
    processor = AutoProcessor.from_pretrained(tiny_model)
    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True).eval()
    inputs = processor(text=["calm ambient pad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        base_audio = model.generate(**inputs, do_sample=False, max_new_tokens=24)
        tuned = PeftModel.from_pretrained(model, str(run.output_dir / "final")).eval()
        tuned_audio = tuned.generate(**inputs, do_sample=False, max_new_tokens=24)
    assert base_audio.shape == tuned_audio.shape
    assert base_audio.shape[-1] > 0
    assert not torch.allclose(base_audio, tuned_audio)


def _resume(run: Run, output: Path, checkpoint: str, data: Path, model: Path, *extra: str) -> Run:
    return run_training(
        output, "--type", "supervised", "--data", data, "--base-model", model,
        *SUPERVISED_ARGS, *extra, "--resume-from", run.output_dir / checkpoint,
    )  # fmt: skip


def test_resume_from_a_checkpoint_continues_the_step_count(
    supervised_run: Run, supervised_data: Path, tiny_model: Path, tmp_path: Path
) -> None:
    run = _resume(supervised_run, tmp_path / "resumed", "checkpoint-18", supervised_data, tiny_model)
    _assert_ok(run)
    assert [event["step"] for event in run.metrics] == list(range(19, 25))
    assert (tmp_path / "resumed" / "final" / "adapter_model.safetensors").is_file()
    assert "resuming at step 18 of 24" in run.text
    # the same job continued: the last steps match the uninterrupted run's, loss for loss
    original = {event["step"]: event["values"]["loss"] for event in supervised_run.metrics}
    for event in run.metrics:
        assert event["values"]["loss"] == pytest.approx(original[event["step"]], rel=1e-4), event["step"]
    # best/ follows into the new output dir and stays the lowest eval loss of the whole job
    best = json.loads((tmp_path / "resumed" / "best" / "best.json").read_text())
    assert best["step"] == run.summary["best_step"] == supervised_run.summary["best_step"]
    assert run.summary["best_eval_loss"] == pytest.approx(supervised_run.summary["best_eval_loss"])


def test_resume_with_more_epochs_trains_further(
    supervised_run: Run, supervised_data: Path, tiny_model: Path, tmp_path: Path
) -> None:
    run = _resume(supervised_run, tmp_path / "longer", "checkpoint-24", supervised_data, tiny_model, "--epochs", "14")
    _assert_ok(run)
    assert [event["step"] for event in run.metrics] == [25, 26, 27, 28]


@pytest.mark.parametrize(
    ("checkpoint", "extra", "expected"),
    [
        ("checkpoint-24", (), "is at step 24 and this run ends at step 24; raise --epochs"),
        ("checkpoint-12", ("--learning-rate", "1e-3"), "other settings (learning_rate 0.03 -> 0.001)"),
        ("checkpoint-12", ("--lora-r", "4"), "lora_r 8 -> 4"),
        ("final", (), "is not a resumable checkpoint: missing trainer_state.json, optimizer.safetensors"),
    ],
)
def test_resume_refuses_what_would_not_continue_the_same_job(
    checkpoint: str, extra: tuple[str, ...], expected: str,
    supervised_run: Run, supervised_data: Path, tiny_model: Path, tmp_path: Path,
) -> None:  # fmt: skip
    run = _resume(supervised_run, tmp_path / "out", checkpoint, supervised_data, tiny_model, *extra)
    assert run.returncode == 2, run.text[-2000:]
    assert expected in run.last_line
    assert not run.metrics
    assert not (tmp_path / "out" / "final").exists()


def test_preference_run_learns_the_pairs(preference_run: Run) -> None:
    _assert_ok(preference_run)
    out = preference_run.output_dir
    for folder in ("final", "best"):
        assert {p.name for p in (out / folder).iterdir()} >= ADAPTER_FILES
    assert not list(out.glob("checkpoint-*"))  # --save-every 0
    config = json.loads((out / "training_config.json").read_text())
    assert config["training_type"] == "preference"
    assert config["hyperparameters"]["beta"] == 0.1
    first = preference_run.metrics[0]["values"]
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 0
    for event in preference_run.metrics:
        assert {"loss", "learning_rate", "reward_margin", "reward_accuracy", "chosen_logp", "rejected_logp"} <= set(
            event["values"]
        )
    summary = preference_run.summary
    assert summary["train_reward_accuracy"] >= 0.9
    assert summary["train_reward_margin"] > 0
    assert summary["final_loss"] < 0.5
