"""Which files of a checkpoint folder may be loaded: safetensors only, never a pickle."""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class ModelError(Exception):
    """A base model or checkpoint folder that TuneLab will not load, with the reason as a sentence."""


def pickle_files(folder: Path) -> list[str]:
    """Names of the files in `folder` that would need unpickling to load (which TuneLab never does)."""
    return sorted(path.name for path in folder.iterdir() if path.suffix in PICKLE_SUFFIXES)


def check_model_folder(folder: Path) -> None:
    """A folder with safetensors weights, or ModelError saying what it has instead."""
    if not folder.is_dir():
        raise ModelError(f"base model {folder} is not a folder")
    if any(folder.glob("*.safetensors")):
        return
    pickles = pickle_files(folder)
    if pickles:
        raise ModelError(
            f"base model folder {folder} has only pickle weights ({', '.join(pickles)}); "
            "TuneLab loads safetensors only, convert them with save_pretrained(safe_serialization=True)"
        )
    raise ModelError(f"base model folder {folder} has no model.safetensors")
