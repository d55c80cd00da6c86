"""The tiny MusicGen makes real, prompt-dependent sound: its codec keeps pitch and brightness, its generations differ
from seed to seed, the prompt's words move what they name, and a LoRA adapter moves the sound toward its data.

Every check measures audio with tunelab.musicgen.features and asserts a margin, so a model that decodes everything
to the same noise (as a randomly initialised one does) fails them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tunelab.musicgen import features, synth
from tunelab.musicgen.tiny import _CORPUS_WORDS, SAMPLING_RATE

RATE = SAMPLING_RATE


@pytest.fixture(scope="module")
def loaded(tiny_model: Path) -> tuple[Any, Any]:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model, use_safetensors=True).eval()
    return model, AutoProcessor.from_pretrained(tiny_model)


def generate(model: Any, processor: Any, prompt: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` sampled clips for `prompt` (one batch, seeded), as mono float arrays."""
    inputs = processor(text=[prompt] * count, padding=True, return_tensors="pt")
    torch.manual_seed(seed)
    with torch.no_grad():
        audio = model.generate(**inputs, do_sample=True)
    return [row[0].numpy() for row in audio]


def centroids(clips: list[np.ndarray]) -> np.ndarray:
    return np.array([features.spectral_centroid(clip, RATE) for clip in clips])


def pitches(clips: list[np.ndarray]) -> np.ndarray:
    return np.array([features.pitch(clip, RATE) for clip in clips])


# --- the synthetic clips and the measures ----------------------------------------------------------------------


def test_every_prompt_word_of_the_synthetic_clips_is_in_the_tokenizer_corpus() -> None:
    assert set(synth.STYLE_WORDS) | set(synth.FILLER_WORDS) <= set(_CORPUS_WORDS)
    assert {"low", "high", "bright", "dark", "fast", "slow"} <= set(synth.STYLE_WORDS)


def test_synthetic_pairs_are_deterministic_for_a_seed() -> None:
    first, again, other = synth.pairs(6, seed=3), synth.pairs(6, seed=3), synth.pairs(6, seed=4)
    assert [p for p, _ in first] == [p for p, _ in again]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, other, strict=True))
    assert all(clip.dtype == np.float32 and clip.shape == (int(synth.CLIP_SECONDS * RATE),) for _, clip in first)
    assert all(0.25 < np.abs(clip).max() <= 0.8 for _, clip in first)


def test_the_style_of_a_synthetic_clip_is_what_its_words_say() -> None:
    rng = np.random.default_rng(0)

    def mean(measure: Any, **style: str) -> float:
        return float(np.mean([measure(synth.render(synth.Style(**style), rng), RATE) for _ in range(6)]))

    assert mean(features.spectral_centroid, brightness="bright") > 2 * mean(
        features.spectral_centroid, brightness="dark"
    )
    assert mean(features.pitch, register="high") > 2.5 * mean(features.pitch, register="low")
    assert mean(features.onset_rate, tempo="fast") > 2.5 * mean(features.onset_rate, tempo="slow")
    assert synth.style_of("bright low calm piano") == synth.Style("low", "bright", "slow")
    assert synth.style_of("music") == synth.Style() and synth.style_of("bright dark") is None


def test_the_measures_read_known_signals() -> None:
    t = np.arange(RATE) / RATE
    sine = 0.5 * np.sin(2 * np.pi * 440 * t)
    saw = sum(0.5 / k * np.sin(2 * np.pi * 110 * k * t) for k in range(1, 60))
    assert features.pitch(sine, RATE) == pytest.approx(440, rel=0.01)
    assert features.pitch(saw, RATE) == pytest.approx(110, rel=0.01)  # not an octave off, despite its harmonics
    assert features.spectral_centroid(sine, RATE) == pytest.approx(440, rel=0.05)
    assert features.spectral_centroid(saw, RATE) > 3 * features.spectral_centroid(sine, RATE)
    clicks = np.zeros(2 * RATE)
    for start in range(0, 2 * RATE, RATE // 5):  # 5 plucks a second
        clicks[start : start + 3200] = np.sin(2 * np.pi * 300 * t[:3200]) * np.exp(-t[:3200] * 30)
    assert features.onset_rate(clicks, RATE) == pytest.approx(5, abs=0.6)
    assert features.rms(sine) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    stereo = np.stack([sine, sine])  # (channels, samples) is mixed down
    assert features.measure(stereo, RATE) == features.measure(sine, RATE)
    silence = features.measure(np.zeros(RATE), RATE)
    assert (silence.centroid_hz, silence.pitch_hz, silence.onsets_per_second, silence.rms) == (0, 0, 0, 0)


# --- the tiny model's sound ------------------------------------------------------------------------------------


def test_encode_then_decode_keeps_pitch_and_brightness(loaded: tuple[Any, Any]) -> None:
    model, _ = loaded
    clips = [clip for _, clip in synth.pairs(48, seed=1234)]
    with torch.no_grad():
        codes = model.audio_encoder.encode(torch.from_numpy(np.stack(clips))[:, None], bandwidth=1.2).audio_codes
        decoded = [row[0].numpy() for row in model.audio_encoder.decode(codes, [None])[0]]
    brightness = np.corrcoef(centroids(clips), centroids(decoded))[0, 1]
    pitch = np.corrcoef(np.log2(pitches(clips) + 1), np.log2(pitches(decoded) + 1))[0, 1]
    assert brightness > 0.7, brightness
    assert pitch > 0.7, pitch
    assert min(features.rms(clip) for clip in decoded) > 0.02  # no clip decodes to silence


def test_generations_differ_from_seed_to_seed(loaded: tuple[Any, Any]) -> None:
    model, processor = loaded
    clips = [generate(model, processor, "piano music", 1, seed=seed)[0] for seed in range(12)]
    spread = centroids(clips)
    assert spread.std() > 0.15 * spread.mean(), spread
    voiced = pitches(clips)[pitches(clips) > 0]
    assert voiced.max() > 1.3 * voiced.min(), voiced  # not all one note
    for a, b in zip(clips, clips[1:], strict=False):
        assert np.abs(a - b).mean() > 0.1 * np.abs(a).mean()  # not the same waveform (a random model: 0.000)


def test_prompt_words_move_what_they_name(loaded: tuple[Any, Any]) -> None:
    model, processor = loaded

    def sample(prompt: str) -> list[np.ndarray]:
        return generate(model, processor, prompt, 12, seed=1)

    bright, dark = centroids(sample("bright music")).mean(), centroids(sample("dark music")).mean()
    assert bright > 1.4 * dark, (bright, dark)
    high, low = np.median(pitches(sample("high music"))), np.median(pitches(sample("low music")))
    assert high > 1.8 * low, (high, low)
    fast, slow = (
        np.median([features.onset_rate(clip, RATE) for clip in sample(p)]) for p in ("fast music", "slow music")
    )
    assert fast > 1.4 * slow, (fast, slow)


@pytest.mark.slow
def test_an_adapter_trained_on_bright_clips_makes_brighter_clips(loaded: tuple[Any, Any]) -> None:
    from peft import LoraConfig, get_peft_model

    from tunelab.musicgen.tiny_training import code_loss, delayed_codes
    from tunelab.training.model import lora_target_regex

    model, processor = loaded
    rng = np.random.default_rng(7)
    bright = [
        synth.Style(str(rng.choice(synth.LEVELS)), "bright", str(rng.choice(synth.TEMPO_LEVELS))) for _ in range(16)
    ]
    clips = torch.from_numpy(np.stack([synth.render(style, rng) for style in bright]))

    base = centroids(generate(model, processor, "music", 16, seed=5)).mean()
    sequences = delayed_codes(model, clips)
    adapted = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=lora_target_regex(("q_proj", "v_proj")))
    )
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    torch.manual_seed(0)
    adapted.train()
    for _ in range(30):
        picks = torch.randint(len(sequences), (8,))
        loss = code_loss(adapted, processor.tokenizer, ["music"] * 8, sequences[picks], pad=64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    adapted.eval()
    tuned = centroids(generate(adapted, processor, "music", 16, seed=5)).mean()
    adapted.unload()
    assert tuned > 1.25 * base, (base, tuned)
