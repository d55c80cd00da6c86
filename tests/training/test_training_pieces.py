"""The trainer's parts on the tiny model, in process: losses, padding, LoRA targets, modes, resume checks."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import write_jsonl, write_tone

from tunelab.training.args import RESUMABLE_FILES, Hyperparameters, resume_problems
from tunelab.training.checkpoint import identity_changes
from tunelab.training.codes import CodeCache, make_batch
from tunelab.training.console import Console
from tunelab.training.data import read_dataset, split_examples
from tunelab.training.errors import InputError
from tunelab.training.losses import SequenceScores, dpo_loss, sequence_scores, supervised_loss
from tunelab.training.metrics import MetricsLog
from tunelab.training.model import add_lora, evaluating, lora_target_regex, training_mode


@pytest.fixture(scope="module")
def base(tiny_model: Path) -> Any:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True).eval()
    return model, AutoProcessor.from_pretrained(tiny_model)


def test_ratings_weight_each_example_not_just_the_batch_mix(base: Any, audio_dir: Path) -> None:
    model, processor = base
    cache = CodeCache(model, max_seconds=1.0, device=torch.device("cpu"))
    clips = [cache.sequence(audio_dir / "tone0.wav"), cache.sequence(audio_dir / "tone2.wav")]
    prompts = ["calm ambient pad", "slow piano melody"]

    def loss(weights: list[float], weighted: bool = True, pick: slice = slice(None)) -> float:
        batch = make_batch(processor, prompts[pick], clips[pick], weights, torch.device("cpu"))
        with torch.no_grad():
            return float(supervised_loss(model, batch, cache.pad, weighted))

    plain = [loss([1.0], pick=slice(0, 1)), loss([1.0], pick=slice(1, 2))]
    # a batch of one 3-star clip pulls 0.6 times as hard as the same clip rated 5 (not equally hard)
    assert loss([0.6], pick=slice(0, 1)) == pytest.approx(0.6 * plain[0], rel=1e-5)
    assert loss([1.0, 0.6]) == pytest.approx((plain[0] + 0.6 * plain[1]) / 2, rel=1e-5)
    # evaluation measures the plain mean, whatever the ratings
    assert loss([1.0, 0.6], weighted=False) == pytest.approx(sum(plain) / 2, rel=1e-5)


def test_padding_becomes_pad_and_stays_out_of_the_loss(base: Any, tmp_path: Path) -> None:
    model, processor = base
    cache = CodeCache(model, max_seconds=1.0, device=torch.device("cpu"))
    short = cache.sequence(write_tone(tmp_path / "short.wav", 440, seconds=0.4))
    full = cache.sequence(write_tone(tmp_path / "full.wav", 440, seconds=1.0))
    frames_per_second = model.config.audio_encoder.frame_rate
    valid = math.ceil(0.4 * frames_per_second)
    assert short.shape == full.shape  # padded to max_seconds
    for k in range(cache.num_codebooks):
        real = short[k, k + 1 : k + 1 + valid]
        assert (real != cache.pad).all()
        assert (short[k, k + 1 + valid :] == cache.pad).all()  # frames of zero padding are pad
    batch = make_batch(processor, ["a", "b"], [short, full], [1.0, 1.0], torch.device("cpu"))
    with torch.no_grad():
        scores = sequence_scores(model, batch, cache.pad)
    total_frames = int(frames_per_second * 1.0)
    assert scores.tokens.tolist() == [cache.num_codebooks * valid, cache.num_codebooks * total_frames]


def test_dpo_loss_matches_a_hand_computation() -> None:
    def scores(*logp: float) -> SequenceScores:
        return SequenceScores(torch.tensor(logp), torch.tensor([10, 10]))

    out = dpo_loss(
        scores(-10.0, -20.0), scores(-12.0, -15.0), torch.tensor([-11.0, -19.0]), torch.tensor([-11.0, -16.0]), 0.5
    )
    # rewards: chosen 0.5*(+1, -1), rejected 0.5*(-1, +1) -> margins (+1, -1)
    expected = (-math.log(1 / (1 + math.exp(-1))) - math.log(1 / (1 + math.exp(1)))) / 2
    assert float(out.loss) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.8132617, rel=1e-6)
    assert out.reward_margin == pytest.approx(0.0)
    assert out.reward_accuracy == 0.5
    assert (out.chosen_logp, out.rejected_logp) == (pytest.approx(-15.0), pytest.approx(-13.5))


def test_lora_target_regex_picks_decoder_attention_only() -> None:
    regex = re.compile(lora_target_regex(("q_proj", "encoder_attn.v_proj")))
    layer = "decoder.model.decoder.layers.3."
    assert regex.fullmatch(layer + "self_attn.q_proj")
    assert regex.fullmatch(layer + "encoder_attn.q_proj")
    assert regex.fullmatch(layer + "encoder_attn.v_proj")
    assert not regex.fullmatch(layer + "self_attn.v_proj")
    assert not regex.fullmatch(layer + "self_attn.k_proj")
    assert not regex.fullmatch("text_encoder.encoder.block.0.layer.0.SelfAttention.q")
    assert not regex.fullmatch("audio_encoder.encoder.layers.0.conv")
    assert not regex.fullmatch(layer + "fc1")


def test_lora_wraps_exactly_the_decoder_attention_projections(tiny_model: Path) -> None:
    from transformers import MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True)
    layers = model.config.decoder.num_hidden_layers
    peft_model = add_lora(model, Hyperparameters(lora_r=4, lora_alpha=8), None)
    adapted = {name.removeprefix("base_model.model.") for name, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    expected = {
        f"decoder.model.decoder.layers.{i}.{attn}.{proj}"
        for i in range(layers)
        for attn in ("self_attn", "encoder_attn")
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj")
    }
    assert adapted == expected
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)


def test_training_mode_keeps_the_frozen_encoders_in_eval(tiny_model: Path) -> None:
    from transformers import MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True)
    peft_model = add_lora(model, Hyperparameters(lora_r=4, lora_alpha=8), None)

    def modes() -> tuple[bool, bool, bool]:
        return (model.decoder.training, model.text_encoder.training, model.audio_encoder.training)

    training_mode(peft_model)
    assert modes() == (True, False, False)
    assert not any(m.training for m in model.text_encoder.modules())
    with evaluating(peft_model):
        assert modes() == (False, False, False)
    assert modes() == (True, False, False)


def test_split_always_leaves_something_to_train_on() -> None:
    for count in (2, 3, 10):
        train, held = split_examples(list(range(count)), 0.95, seed=3)  # type: ignore[arg-type]
        assert len(train) == 1 and len(held) == count - 1
    train, held = split_examples(list(range(10)), 0.01, seed=3)  # type: ignore[arg-type]
    assert len(held) == 1


def test_a_clip_that_fails_to_decode_names_its_line(base: Any, tmp_path: Path) -> None:
    from tunelab.training.train import _encode_all

    model, _ = base
    write_tone(tmp_path / "a.wav", 440)
    write_tone(tmp_path / "b.wav", 330)
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt": "p", "audio_path": "a.wav", "rating": 5}, {"prompt": "q", "audio_path": "b.wav", "rating": 5}],
    )
    examples = read_dataset(data, "supervised")
    (tmp_path / "b.wav").write_bytes(b"RIFF gone bad after the check")  # changed between check and encode
    with pytest.raises(InputError, match=r"^line 2: cannot read audio .*b\.wav"):
        _encode_all(CodeCache(model, 1.0, torch.device("cpu")), examples)


def test_resume_needs_every_checkpoint_file_and_never_a_pickle(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-4"
    assert resume_problems(folder) == [f"--resume-from {folder} is not a checkpoint folder"]
    folder.mkdir()
    for name in RESUMABLE_FILES:
        (folder / name).write_text("{}")
    assert resume_problems(folder) == []
    (folder / "adapter_model.safetensors").unlink()
    (folder / "adapter_model.bin").write_bytes(b"pickle")
    (problem,) = resume_problems(folder)
    assert "missing adapter_model.safetensors" in problem
    assert "pickle files (adapter_model.bin)" in problem


def test_identity_changes_list_what_differs_except_free_settings() -> None:
    saved = {"training_type": "supervised", "dataset_sha256": "a" * 64, "hyperparameters": {"lora_r": 8, "epochs": 3}}
    same_but_longer = saved | {"hyperparameters": {"lora_r": 8, "epochs": 6}}
    assert identity_changes(saved, same_but_longer, frozenset({"epochs"})) == []
    other = saved | {"dataset_sha256": "b" * 64, "hyperparameters": {"lora_r": 16, "epochs": 3}}
    changes = identity_changes(saved, other, frozenset({"epochs"}))
    assert changes == ["dataset_sha256 'aaaaaaaaaaaaaaaaaaaa... -> 'bbbbbbbbbbbbbbbbbbbb...", "lora_r 8 -> 16"]


def test_resumed_metrics_log_keeps_the_steps_before_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    events = [{"event": "metrics", "step": step, "values": {"loss": 1.0 / step}} for step in range(1, 6)]
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "summary", "values": {}}\n')
    console = Console(out=open(tmp_path / "out.txt", "w"))  # noqa: SIM115 - closed with the test's tmp dir
    log = MetricsLog(path, console, keep_until_step=3)
    log.step(4, 2.0, {"loss": 0.1})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]
    MetricsLog(path, console)
    assert path.read_text() == ""


def test_a_local_base_model_is_recorded_by_its_absolute_path(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunelab.training.model import load_base_model

    monkeypatch.chdir(tiny_model.parent)
    base = load_base_model(f"./{tiny_model.name}")
    assert base.model_id == str(tiny_model.resolve())
