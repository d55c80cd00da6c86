"""Fast checks of the pieces: events, arguments, data reading, the tiny model and the delay pattern."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import SRC, write_jsonl, write_noise, write_tone

from tunelab.musicgen.tiny import create_tiny_musicgen
from tunelab.training.args import Hyperparameters, build_parser, parse_args
from tunelab.training.data import load_clip, read_dataset, split_examples
from tunelab.training.errors import InputError
from tunelab.training.events import format_event, parse_events, strip_events


def test_events_round_trip_invisibly() -> None:
    event = {"event": "metrics", "step": 3, "epoch": 1.5, "values": {"loss": 2.5, "learning_rate": 1e-4}}
    encoded = format_event(event)
    assert encoded.startswith("\x1b]7711;") and encoded.endswith("\x07") and "\n" not in encoded
    stream = b"epoch 1 " + encoded.encode() + b"\r50%|##| \x1b]7711;{broken\x07" + format_event({"event": "x"}).encode()
    assert parse_events(stream) == [event, {"event": "x"}]
    assert strip_events(b"a" + encoded.encode() + b"b") == b"ab"


def test_non_finite_values_become_null() -> None:
    assert parse_events(format_event({"values": {"loss": math.nan, "x": math.inf}}).encode()) == [
        {"values": {"loss": None, "x": None}}
    ]


def test_events_and_args_import_without_torch() -> None:
    code = "import sys, tunelab.training.events, tunelab.training.args; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC)})


def test_defaults_follow_the_design_table() -> None:
    hp = parse_args(["--type", "supervised", "--data", "d.jsonl", "--base-model", "m", "--output-dir", "o"]).hparams
    assert (hp.epochs, hp.batch_size, hp.learning_rate, hp.lora_r, hp.lora_alpha) == (3, 2, 1e-4, 16, 32)
    assert hp == Hyperparameters()


def test_every_hyperparameter_is_documented_in_help() -> None:
    help_text = " ".join(build_parser().format_help().split())
    for name in Hyperparameters.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in help_text
    assert "weighted by rating / 5" in help_text


def test_validation_collects_every_problem() -> None:
    problems = Hyperparameters(epochs=0, batch_size=0, beta=0, eval_fraction=1.0).problems()
    assert len(problems) == 4
    with pytest.raises(InputError, match="epochs must be at least 1; batch_size"):
        parse_args(["--type", "supervised", "--data", "d", "--base-model", "m", "--output-dir", "o", "--epochs", "0", "--batch-size", "0"])  # fmt: skip


def test_dataset_lines_resolve_relative_paths(tmp_path: Path) -> None:
    write_tone(tmp_path / "a.wav", 440)
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "audio_path": "a.wav", "rating": 4}])
    (example,) = read_dataset(data, "supervised")
    assert example.audio == tmp_path / "a.wav"  # type: ignore[union-attr]
    assert example.rating == 4  # type: ignore[union-attr]


def test_dataset_reports_every_bad_line(tmp_path: Path) -> None:
    write_tone(tmp_path / "a.wav", 440)
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"prompt": "p", "audio_path": "a.wav", "rating": 0}\nnot json\n{"prompt": "", "audio_path": "a.wav", "rating": 3}\n'
    )
    with pytest.raises(InputError) as error:
        read_dataset(data, "supervised")
    assert "line 1: rating must be from 1 to 5" in str(error.value)
    assert "line 2: not valid JSON" in str(error.value)
    assert "line 3: prompt must be a non-empty string" in str(error.value)


def test_clips_are_mono_resampled_and_padded(tmp_path: Path) -> None:
    stereo = write_tone(tmp_path / "s.wav", 440, seconds=0.5, rate=44_100, channels=2)
    clip = load_clip(stereo, 32_000, max_seconds=1.0)
    assert clip.samples.shape == (32_000,) and clip.valid == 16_000
    assert np.all(clip.samples[16_000:] == 0)
    spectrum = np.abs(np.fft.rfft(clip.samples[:16_000]))
    assert abs(np.argmax(spectrum) * 32_000 / 16_000 - 440) < 3  # the pitch survives resampling
    assert load_clip(stereo, 32_000, max_seconds=0.25).valid == 8_000


def test_split_is_deterministic_and_holds_something_out() -> None:
    examples = list(range(10))
    train, held = split_examples(examples, 0.2, seed=1)  # type: ignore[arg-type]
    assert (train, held) == split_examples(examples, 0.2, seed=1)  # type: ignore[arg-type]
    assert len(held) == 2 and sorted(train + held) == examples
    assert split_examples(examples[:1], 0.5, seed=1) == ([0], [])  # type: ignore[arg-type]


def test_tiny_model_is_deterministic_small_and_loadable(tmp_path: Path, tiny_model: Path) -> None:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration, MusicgenProcessor

    again = create_tiny_musicgen(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_model / name).read_bytes(), name
    other = create_tiny_musicgen(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny_model / "model.safetensors").read_bytes()
    assert sum(f.stat().st_size for f in tiny_model.iterdir()) < 8_000_000
    processor = AutoProcessor.from_pretrained(tiny_model)
    assert isinstance(processor, MusicgenProcessor)
    assert processor.feature_extractor.sampling_rate == 32_000
    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True)
    assert model.config.decoder.num_codebooks == 4
    assert model.config.decoder.decoder_start_token_id is not None


def test_tiny_encodec_gives_different_audio_different_codes(tmp_path: Path, tiny_model: Path) -> None:
    from transformers import MusicgenForConditionalGeneration

    from tunelab.training.codes import CodeCache

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True).eval()
    cache = CodeCache(model, max_seconds=1.0, device=torch.device("cpu"))
    low = cache.sequence(write_tone(tmp_path / "low.wav", 220))
    high = cache.sequence(write_tone(tmp_path / "high.wav", 880))
    noise = cache.sequence(write_noise(tmp_path / "noise.wav", seed=0))
    assert not torch.equal(low, high) and not torch.equal(low, noise)
    # every codebook is in use (not all zero); the first, coarsest one may hold white noise in a few entries
    assert all(len(set(row.tolist()) - {cache.pad}) > 1 for row in noise), noise
    assert len(set(noise.flatten().tolist())) > 12


def test_delay_pattern_offsets_codebook_k_by_k_steps(tmp_path: Path, tiny_model: Path) -> None:
    from transformers import MusicgenForConditionalGeneration

    from tunelab.training.codes import CodeCache

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True).eval()
    cache = CodeCache(model, max_seconds=0.5, device=torch.device("cpu"))
    codes = torch.arange(4 * 25).reshape(4, 25) % 64
    delayed = cache._delayed(codes)
    pad = cache.pad
    assert delayed.shape == (4, 25 + 1 + 4)
    for k in range(4):
        assert delayed[k, : k + 1].tolist() == [pad] * (k + 1)
        assert torch.equal(delayed[k, k + 1 : k + 26], codes[k])
        assert delayed[k, k + 26 :].tolist() == [pad] * (4 - k)  # incl. the slot left open for generation


def test_events_cut_anywhere_between_reads_are_found_whole_once() -> None:
    from tunelab.training.events import EventStream

    data = (
        "\x1b[1mbanner\x1b[0m\r\n"
        + format_event({"event": "metrics", "step": 1, "values": {"loss": 1.0}})
        + "\rbar 10%"
        + format_event({"event": "metrics", "step": 2, "values": {"loss": 0.5}})
        + "\x1b]0;a window title\x07\r\n"
        + format_event({"event": "summary", "values": {"final_loss": 0.5}})
    ).encode()
    whole = parse_events(data)
    assert len(whole) == 3
    for first in range(len(data) + 1):
        for second in range(first, len(data) + 1, 5):
            stream = EventStream()
            found = stream.feed(data[:first]) + stream.feed(data[first:second]) + stream.feed(data[second:])
            assert found == whole, (first, second)
    one_byte_at_a_time = EventStream()
    assert [e for i in range(len(data)) for e in one_byte_at_a_time.feed(data[i : i + 1])] == whole
