"""Synthetic melodic clips whose sound is steered by prompt words, to train and test the tiny MusicGen.

A clip is a sequence of plucked harmonic notes drawn from a pentatonic scale, each dying out before the next.
Three properties are controlled by words of the prompt (every word is in the tiny tokenizer's corpus):

    property     level     prompt words           what it changes
    register     low       "low", "bass"          notes of 65-131 Hz
                 high      "high"                 notes of 262-523 Hz      (unnamed: 131-262 Hz)
    brightness   bright    "bright"               ~sawtooth: harmonics up to 8 kHz, amplitude 1/k, slow decay
                 dark      "dark", "warm"         ~sine: weak harmonics (1/k³) below 800 Hz, fast decay
    tempo        fast      "fast", "upbeat"       8 notes per second
                 slow      "slow", "calm"         2 notes per second                        (unnamed: 4)

A training prompt names most of the properties its clip has (and adds filler words such as "piano" or "music" that
change nothing); where it names none, the clip is mostly at the unnamed middle level and sometimes at another.
Everything is numpy and deterministic for a seed (`numpy.random.Generator`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SAMPLING_RATE = 32_000
CLIP_SECONDS = 1.28  # 64 EnCodec frames at 50 Hz: about what the tiny model generates by default

# level -> the prompt words that ask for it; level "mid" has no word (it is what a prompt that says nothing gets)
REGISTER_WORDS = {"low": ("low", "bass"), "high": ("high",)}
BRIGHTNESS_WORDS = {"bright": ("bright",), "dark": ("dark", "warm")}
TEMPO_WORDS = {"fast": ("fast", "upbeat"), "slow": ("slow", "calm")}
FILLER_WORDS = ("music", "piano", "synth", "melody", "tone", "electronic", "ambient", "lofi", "pop", "jazz")
LEVELS = ("low", "mid", "high")  # registers
BRIGHTNESS_LEVELS = ("dark", "mid", "bright")
TEMPO_LEVELS = ("slow", "mid", "fast")
STYLE_WORDS = tuple(w for table in (REGISTER_WORDS, BRIGHTNESS_WORDS, TEMPO_WORDS) for ws in table.values() for w in ws)

_ROOT_MIDI = {"low": 36, "mid": 48, "high": 60}  # C2, C3, C4: the scale spans an octave above each
_PENTATONIC = (0, 2, 4, 7, 9, 12)
_NOTES_PER_SECOND = {"slow": 2.0, "mid": 4.0, "fast": 8.0}
# (amplitude of harmonic k is k ** -rolloff, highest harmonic frequency, decay of the upper harmonics per second)
_TIMBRE = {"dark": (3.5, 600.0, 15.0), "mid": (1.7, 2_500.0, 5.0), "bright": (0.7, 6_000.0, 0.5)}
# the fundamental dies out within a note (e^-8t), so each note is heard as one: with a nearly sustained fundamental
# (e^-t) tempo lived only in the 15 ms attack and release, which the codec smoothed away, and the model ignored
# "fast" and "slow" (2.5 onsets a second for "fast music", 4.5 for "slow music"; now 4.9 and 2.5)
_FUNDAMENTAL_DECAY = 8.0


@dataclass(frozen=True)
class Style:
    """The three properties of a clip, each one of its levels."""

    register: str = "mid"  # low | mid | high
    brightness: str = "mid"  # dark | mid | bright
    tempo: str = "mid"  # slow | mid | fast

    def __post_init__(self) -> None:
        if self.register not in LEVELS or self.brightness not in BRIGHTNESS_LEVELS or self.tempo not in TEMPO_LEVELS:
            raise ValueError(f"unknown style {self}")


def style_of(prompt: str) -> Style | None:
    """The levels a prompt's words name, or None where it names contradicting levels; unnamed properties are mid."""
    words = set(prompt.lower().split())
    named = {}
    for name, table in (("register", REGISTER_WORDS), ("brightness", BRIGHTNESS_WORDS), ("tempo", TEMPO_WORDS)):
        levels = [level for level, level_words in table.items() if words & set(level_words)]
        if len(levels) > 1:
            return None
        if levels:
            named[name] = levels[0]
    return Style(**named)


def render(style: Style, rng: np.random.Generator, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """A mono float32 clip of `seconds` at 32 kHz: notes of `style`, peak level between 0.3 and 0.8."""
    length = int(round(seconds * SAMPLING_RATE))
    clip = np.zeros(length, dtype=np.float64)
    note_length = int(SAMPLING_RATE / _NOTES_PER_SECOND[style.tempo])
    start = -int(rng.integers(0, note_length))  # the clip starts somewhere inside a note
    while start < length:
        midi = _ROOT_MIDI[style.register] + int(rng.choice(_PENTATONIC))
        note = _note(440.0 * 2 ** ((midi - 69) / 12), style.brightness, note_length, rng)
        lo, hi = max(start, 0), min(start + note_length, length)
        clip[lo:hi] += note[lo - start : hi - start]
        start += note_length
    peak = np.abs(clip).max()
    level = rng.uniform(0.3, 0.8)
    return (clip * (level / peak if peak > 0 else 0.0)).astype(np.float32)


def _note(frequency: float, brightness: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """One plucked note: harmonics with a fast attack and an exponential decay, the upper ones decaying faster."""
    rolloff, highest, decay = _TIMBRE[brightness]
    t = np.arange(length) / SAMPLING_RATE
    harmonics = np.arange(1, max(1, int(highest // frequency)) + 1)
    amplitudes = harmonics.astype(np.float64) ** -rolloff
    phases = rng.uniform(0, 2 * np.pi, size=len(harmonics))
    envelopes = np.exp(-np.outer(_FUNDAMENTAL_DECAY + decay * (harmonics - 1), t))  # (harmonics, samples)
    waves = np.sin(2 * np.pi * frequency * np.outer(harmonics, t) + phases[:, None])
    note = (amplitudes[:, None] * envelopes * waves).sum(axis=0)
    attack = np.minimum(1.0, t / 0.005)
    release = np.minimum(1.0, (t[-1] - t) / 0.01)
    return note * attack * release


def random_style(rng: np.random.Generator) -> Style:
    """Each property at one of its levels, uniformly."""
    return Style(str(rng.choice(LEVELS)), str(rng.choice(BRIGHTNESS_LEVELS)), str(rng.choice(TEMPO_LEVELS)))


def describe(style: Style, rng: np.random.Generator, name_probability: float = 0.7) -> str:
    """A prompt for `style`: each non-mid level is named with `name_probability`, plus 0-2 filler words."""
    words = []
    for level, table in ((style.register, REGISTER_WORDS), (style.brightness, BRIGHTNESS_WORDS),
                         (style.tempo, TEMPO_WORDS)):  # fmt: skip
        if level in table and rng.random() < name_probability:
            words.append(str(rng.choice(table[level])))
    words += [str(w) for w in rng.choice(FILLER_WORDS, size=int(rng.integers(0, 3)), replace=False)]
    if not words:
        words.append(str(rng.choice(FILLER_WORDS)))
    rng.shuffle(words)
    return " ".join(words)


def random_pairs(seed: int, seconds: float = CLIP_SECONDS) -> Iterator[tuple[str, np.ndarray]]:
    """An endless, seed-deterministic stream of (prompt, clip) pairs: a random style, a prompt naming part of it."""
    rng = np.random.default_rng(seed)
    while True:
        style = random_style(rng)
        yield describe(style, rng), render(style, rng, seconds)


def pairs(count: int, seed: int, seconds: float = CLIP_SECONDS) -> list[tuple[str, np.ndarray]]:
    """The first `count` pairs of `random_pairs(seed, seconds)`."""
    stream = random_pairs(seed, seconds)
    return [next(stream) for _ in range(count)]
