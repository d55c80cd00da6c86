"""Load a MusicGen base model (safetensors only), pick a device and wrap the decoder in LoRA adapters."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunelab.training.args import Hyperparameters, pickle_files
from tunelab.training.errors import InputError

_DECODER_LAYERS = r".*decoder\.model\.decoder\.layers\.\d+\."


@dataclass(frozen=True)
class BaseModel:
    """The loaded base model with its processor and the identity recorded in training_config.json."""

    model: Any
    processor: Any
    model_id: str
    config_sha256: str


def pick_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on GPUs that support it; full precision elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_base_model(name: str) -> BaseModel:
    """Load `name` (a local folder or a hub id) as MusicgenForConditionalGeneration plus its processor."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    folder = Path(name)
    if folder.exists():
        _check_local_folder(folder)
    elif folder.is_absolute() or name.startswith("."):
        raise InputError(f"base model folder not found: {name}")
    try:
        model = MusicgenForConditionalGeneration.from_pretrained(name, use_safetensors=True)
        processor = AutoProcessor.from_pretrained(name)
    except Exception as error:
        raise InputError(f"cannot load base model {name} as MusicGen with safetensors: {error}") from None
    decoder_config: Any = model.config.decoder
    if decoder_config.audio_channels != 1:
        raise InputError(f"base model {name} is stereo MusicGen; only mono checkpoints are supported")
    # forward(labels=...) shifts labels right with the start token; older exports leave it unset
    if decoder_config.decoder_start_token_id is None:
        decoder_config.decoder_start_token_id = decoder_config.bos_token_id
    # a local folder is recorded by its absolute path, so the provenance does not depend on where the run started
    model_id = str(folder.resolve()) if folder.exists() else name
    return BaseModel(model, processor, model_id, _config_sha256(folder, model))


def _check_local_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise InputError(f"base model {folder} is not a folder")
    if any(folder.glob("*.safetensors")):
        return
    pickles = pickle_files(folder)
    if pickles:
        raise InputError(
            f"base model folder {folder} has only pickle weights ({', '.join(pickles)}); "
            "TuneLab loads safetensors only, convert them with save_pretrained(safe_serialization=True)"
        )
    raise InputError(f"base model folder {folder} has no model.safetensors")


def _config_sha256(folder: Path, model: Any) -> str:
    """sha256 of config.json as stored on disk, or of the canonical config JSON for a hub model."""
    config_file = folder / "config.json"
    if config_file.is_file():
        return hashlib.sha256(config_file.read_bytes()).hexdigest()
    canonical = json.dumps(model.config.to_dict(), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lora_target_regex(targets: tuple[str, ...]) -> str:
    """A PEFT target regex for the chosen decoder attention projections (text encoder and EnCodec excluded)."""
    alternatives = sorted({name if "." in name else f"(self_attn|encoder_attn)\\.{name}" for name in targets})
    return _DECODER_LAYERS + "(" + "|".join(alternatives) + ")"


def add_lora(model: Any, hparams: Hyperparameters, resume_from: Path | None) -> Any:
    """Wrap `model` in a trainable LoRA adapter: fresh, or the one saved in `resume_from`."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if resume_from is not None:
        try:
            return PeftModel.from_pretrained(model, str(resume_from), is_trainable=True)
        except Exception as error:
            raise InputError(f"cannot resume from {resume_from}: {error}") from None
    config = LoraConfig(
        r=hparams.lora_r,
        lora_alpha=hparams.lora_alpha,
        lora_dropout=hparams.lora_dropout,
        target_modules=lora_target_regex(hparams.lora_target_modules),
        bias="none",
    )
    # get_peft_model freezes everything but the adapters: the text encoder and EnCodec stay as they are
    return get_peft_model(model, config)


def disable_dropout(model: torch.nn.Module) -> None:
    """Preference training compares against a dropout-free reference, so the policy runs without it too."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for name in ("dropout", "attention_dropout", "activation_dropout"):
        for sub in model.modules():
            if isinstance(getattr(sub, name, None), float):
                setattr(sub, name, 0.0)


def training_mode(model: torch.nn.Module) -> None:
    """Train mode for the decoder and its adapters; the frozen text encoder and EnCodec stay in eval mode,
    so T5's dropout never perturbs the conditioning that the adapter learns from."""
    model.train()
    get_base_model = getattr(model, "get_base_model", None)
    inner = get_base_model() if callable(get_base_model) else model
    for name in ("text_encoder", "audio_encoder"):
        frozen = getattr(inner, name, None)
        if isinstance(frozen, torch.nn.Module):
            frozen.eval()


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the duration, then back to the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            training_mode(model)


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
