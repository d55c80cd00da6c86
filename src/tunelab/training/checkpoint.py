"""What a run leaves in --output-dir: adapter folders, resumable checkpoints, training_config.json, metrics.

final/ best/ checkpoint-N/   PEFT adapters (adapter_config.json + adapter_model.safetensors)
checkpoint-N/ also holds     trainer_state.json, optimizer.safetensors and optimizer_state.json (no pickle),
                             enough for --resume-from
training_config.json         resolved hyperparameters, base model, dataset and library versions
metrics.jsonl                the metric events, one JSON object per line
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tunelab.training.args import TrainingArgs, hparams_dict
from tunelab.training.errors import InputError

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_STATE = "optimizer_state.json"
_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "soundfile", "scipy", "numpy")


@dataclass
class TrainerState:
    """Progress that --resume-from restores."""

    step: int = 0
    best_eval_loss: float | None = None
    best_step: int | None = None


def save_adapter(model: Any, folder: Path) -> None:
    """Write the adapter alone to `folder`, replacing what was there."""
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(str(folder), safe_serialization=True)


def save_checkpoint(model: Any, folder: Path, state: TrainerState, optimizer: Any, scheduler: Any) -> None:
    """An adapter folder plus the optimizer, scheduler and random state needed to continue from it.

    Tensors go to safetensors and everything else to JSON, so resuming never unpickles anything.
    """
    save_adapter(model, folder)
    (folder / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=2))
    optim = optimizer.state_dict()
    tensors = {"torch_rng": torch.get_rng_state()}
    for index, slots in optim["state"].items():
        for name, value in slots.items():
            tensors[f"state.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(tensors, str(folder / OPTIMIZER_TENSORS))
    plain = {"param_groups": optim["param_groups"], "scheduler": scheduler.state_dict()}
    (folder / OPTIMIZER_STATE).write_text(json.dumps(plain, indent=2))


def load_checkpoint(folder: Path, optimizer: Any, scheduler: Any) -> TrainerState:
    """Restore optimizer, scheduler and random state from `folder`; returns the saved progress."""
    needed = [folder / TRAINER_STATE, folder / OPTIMIZER_TENSORS, folder / OPTIMIZER_STATE]
    if not all(path.is_file() for path in needed):
        names = ", ".join(path.name for path in needed)
        raise InputError(f"{folder} is not a resumable checkpoint (needs {names})")
    tensors = load_file(str(folder / OPTIMIZER_TENSORS))
    plain = json.loads((folder / OPTIMIZER_STATE).read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for group in plain["param_groups"]:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})
    scheduler.load_state_dict(plain["scheduler"])
    torch.set_rng_state(tensors["torch_rng"])
    return TrainerState(**json.loads((folder / TRAINER_STATE).read_text()))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_training_config(args: TrainingArgs, base_config_sha256: str, extra: dict[str, Any]) -> Path:
    """training_config.json: everything needed to know what produced the adapters next to it."""
    config = {
        "training_type": args.training_type,
        "hyperparameters": hparams_dict(args.hparams),
        "base_model": {"id": args.base_model, "config_sha256": base_config_sha256},
        "dataset": {"path": str(args.data.resolve()), "sha256": file_sha256(args.data)},
        "resume_from": str(args.resume_from) if args.resume_from else None,
        "library_versions": {name: _version(name) for name in _LIBRARIES} | {"python": platform.python_version()},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
    path = args.output_dir / "training_config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
