"""A demo dataset for an empty studio: short melodic clips synthesised with numpy, each with a prompt that says
what it sounds like and a rating, so a new user can start a first run within a minute of `make run`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from tunelab.domain.datasets import Dataset, DatasetCreate, DatasetType

RATE = 32_000
SECONDS = 2.0
# (prompt, scale degrees, base frequency, notes per second, brightness 0..1, rating)
MELODIES = [
    ("bright fast major melody, plucked synth", [0, 2, 4, 7, 9, 7, 4, 2], 523.25, 6, 0.9, 5),
    ("bright upbeat arpeggio, high register", [0, 4, 7, 12, 7, 4, 0, 4], 659.25, 8, 0.8, 5),
    ("happy bouncy melody, warm lead", [0, 2, 4, 5, 7, 5, 4, 2], 440.0, 5, 0.6, 4),
    ("calm slow melody, soft sine pad", [0, 4, 7, 4], 261.63, 2, 0.1, 4),
    ("dreamy ambient tones, mellow", [0, 7, 12, 7], 329.63, 2, 0.2, 3),
    ("dark slow minor melody, low register", [0, 3, 7, 3], 146.83, 2, 0.3, 2),
    ("sad minor arpeggio, strings", [0, 3, 7, 10, 7, 3], 220.0, 3, 0.4, 2),
    ("harsh fast noisy melody", [0, 1, 6, 1, 0, 6], 392.0, 7, 1.0, 1),
]


def melody(degrees: list[int], base: float, rate: float, brightness: float, seed: int) -> np.ndarray:
    """Notes of a scale with a soft attack and decay; `brightness` adds upper harmonics."""
    rng = np.random.default_rng(seed)
    samples = int(RATE * SECONDS)
    note_len = int(RATE / rate)
    out = np.zeros(samples, dtype=np.float64)
    t = np.arange(note_len) / RATE
    envelope = np.minimum(1.0, t * 200) * np.exp(-t * 3.0)
    for index, start in enumerate(range(0, samples, note_len)):
        frequency = base * 2 ** (degrees[index % len(degrees)] / 12)
        tone = sum((brightness**k) * np.sin(2 * np.pi * frequency * (k + 1) * t) / (k + 1) for k in range(6))
        piece = (tone * envelope)[: samples - start]
        out[start : start + len(piece)] += piece
    out += rng.normal(0.0, 0.003, samples)
    return (0.5 * out / np.max(np.abs(out))).astype(np.float32)


def write_demo(folder: Path) -> Path:
    """The clips as WAV files and their manifest (the training JSONL's fields, relative paths) in `folder`."""
    lines = []
    for index, (prompt, degrees, base, rate, brightness, rating) in enumerate(MELODIES):
        name = f"demo-{index + 1}.wav"
        soundfile.write(folder / name, melody(degrees, base, rate, brightness, seed=index), RATE, subtype="PCM_16")
        lines.append(json.dumps({"prompt": prompt, "audio_path": name, "rating": rating}))
    manifest = folder / "data.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def create_demo(datasets: object) -> Dataset:
    """A supervised dataset "Demo melodies" (or "Demo melodies 2", … if the name is taken) holding the clips."""
    from tunelab.errors import Conflict
    from tunelab.services.datasets import DatasetService

    assert isinstance(datasets, DatasetService)
    taken = {d.name for d in datasets.list_page().items}
    name = next(n for n in ("Demo melodies", *(f"Demo melodies {i}" for i in range(2, 1000))) if n not in taken)
    description = "Synthesised melodies with prompts and ratings, to try training on before you have your own clips."
    try:
        dataset = datasets.create(DatasetCreate(name=name, type=DatasetType.SUPERVISED, description=description))
    except Conflict:  # created meanwhile by another request: try the next name
        return create_demo(datasets)
    with tempfile.TemporaryDirectory(prefix="tunelab-demo-") as tmp:
        manifest = write_demo(Path(tmp))
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        datasets.add_items(dataset.id, records, Path(tmp), source="demo")
    return datasets.get(dataset.id)
