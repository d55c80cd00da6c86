"""Load a MusicGen base model (safetensors only) and pick a device for it."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.musicgen.weights import ModelError, check_model_folder

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class BaseModel:
    """The loaded base model with its processor and the identity recorded in training_config.json."""

    model: Any
    processor: Any
    model_id: str
    config_sha256: str


def pick_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on GPUs that support it; full precision elsewhere."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_base_model(name: str) -> BaseModel:
    """Load `name` (a local folder or a hub id) as MusicgenForConditionalGeneration plus its processor."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    folder = Path(name)
    if folder.exists():
        check_model_folder(folder)
    elif folder.is_absolute() or name.startswith("."):
        raise ModelError(f"base model folder not found: {name}")
    try:
        model = MusicgenForConditionalGeneration.from_pretrained(name, use_safetensors=True)
        processor = AutoProcessor.from_pretrained(name)
    except Exception as error:
        raise ModelError(f"cannot load base model {name} as MusicGen with safetensors: {error}") from None
    decoder_config: Any = model.config.decoder
    if decoder_config.audio_channels != 1:
        raise ModelError(f"base model {name} is stereo MusicGen; only mono checkpoints are supported")
    # forward(labels=...) shifts labels right with the start token; older exports leave it unset
    if decoder_config.decoder_start_token_id is None:
        decoder_config.decoder_start_token_id = decoder_config.bos_token_id
    # a local folder is recorded by its absolute path, so the provenance does not depend on where the run started
    model_id = str(folder.resolve()) if folder.exists() else name
    return BaseModel(model, processor, model_id, _config_sha256(folder, model))


def _config_sha256(folder: Path, model: Any) -> str:
    """sha256 of config.json as stored on disk, or of the canonical config JSON for a hub model."""
    config_file = folder / "config.json"
    if config_file.is_file():
        return hashlib.sha256(config_file.read_bytes()).hexdigest()
    canonical = json.dumps(model.config.to_dict(), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
