"""End to end: `python -m tunelab.training` on the tiny MusicGen, as a subprocess, for both training types."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from training_helpers import SUPERVISED_ARGS, Run, run_training

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


def test_supervised_training_lowers_the_loss(supervised_run: Run) -> None:
    first_losses = [event["values"]["loss"] for event in supervised_run.metrics[:2]]
    assert supervised_run.summary["train_loss"] < 0.85 * min(first_losses)
    lrs = [event["values"]["learning_rate"] for event in supervised_run.metrics]
    assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)  # warmup, then decay


def test_trained_adapter_changes_what_the_model_generates(supervised_run: Run, tiny_model: Path) -> None:
    from peft import PeftModel
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True).eval()
    inputs = processor(text=["calm ambient pad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        base_audio = model.generate(**inputs, do_sample=False, max_new_tokens=24)
        tuned = PeftModel.from_pretrained(model, str(supervised_run.output_dir / "final")).eval()
        tuned_audio = tuned.generate(**inputs, do_sample=False, max_new_tokens=24)
    assert base_audio.shape == tuned_audio.shape
    assert base_audio.shape[-1] > 0
    assert not torch.allclose(base_audio, tuned_audio)


def test_resume_from_a_checkpoint_continues_the_step_count(
    supervised_run: Run, supervised_data: Path, tiny_model: Path, tmp_path: Path
) -> None:
    checkpoint = supervised_run.output_dir / "checkpoint-18"
    run = run_training(
        tmp_path / "resumed", "--type", "supervised", "--data", supervised_data, "--base-model", tiny_model,
        *SUPERVISED_ARGS, "--resume-from", checkpoint,
    )  # fmt: skip
    _assert_ok(run)
    assert [event["step"] for event in run.metrics] == list(range(19, 25))
    assert (tmp_path / "resumed" / "final" / "adapter_model.safetensors").is_file()
    assert "resuming at step 18" in run.text


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
