"""`tunelab models create-tiny` writes a model that loads through the same code as a real checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from transformers import AutoProcessor, MusicgenForConditionalGeneration


def test_create_tiny_from_the_cli_loads_with_from_pretrained(tmp_path: Path) -> None:
    target = tmp_path / "tiny"
    done = subprocess.run(
        [sys.executable, "-m", "tunelab", "models", "create-tiny", str(target), "--seed", "3"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout
    assert (target / "model.safetensors").is_file()
    assert not list(target.glob("*.bin"))
    model = MusicgenForConditionalGeneration.from_pretrained(target, use_safetensors=True)
    processor = AutoProcessor.from_pretrained(target)
    assert model.config.decoder.num_codebooks == 4
    assert processor.feature_extractor.sampling_rate == model.config.audio_encoder.sampling_rate == 32_000
    size_mb = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1e6
    assert size_mb < 10
