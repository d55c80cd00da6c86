"""The base model as the training command loads it, and the decoder wrapped in LoRA adapters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tunelab.musicgen import loading
from tunelab.musicgen.loading import BaseModel, autocast, pick_device
from tunelab.musicgen.weights import ModelError
from tunelab.training.args import Hyperparameters
from tunelab.training.errors import InputError

__all__ = ["BaseModel", "autocast", "pick_device", "load_base_model", "add_lora"]

_DECODER_LAYERS = r".*decoder\.model\.decoder\.layers\.\d+\."


def load_base_model(name: str) -> BaseModel:
    """The base model (musicgen/loading.py); a folder that cannot be loaded is bad input to the training command."""
    try:
        return loading.load_base_model(name)
    except ModelError as error:
        raise InputError(str(error)) from None


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
