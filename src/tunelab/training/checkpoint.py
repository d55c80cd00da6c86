"""What a run leaves in --output-dir: adapter folders, resumable checkpoints, training_config.json, metrics.

final/ best/ checkpoint-N/   PEFT adapters (adapter_config.json + adapter_model.safetensors)
checkpoint-N/ also holds     trainer_state.json, optimizer.safetensors and optimizer_state.json (no pickle),
                             enough for --resume-from
best/ also holds             best.json: the step and eval loss it was saved at
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
BEST_MARKER = "best.json"
_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "soundfile", "scipy", "numpy")


@dataclass
class TrainerState:
    """Progress that --resume-from restores."""

    step: int = 0
    best_eval_loss: float | None = None
    best_step: int | None = None


@dataclass(frozen=True)
class Checkpoint:
    """What load_checkpoint restored: the progress, and what the checkpoint was trained with."""

    state: TrainerState
    identity: dict[str, Any]


def save_adapter(model: Any, folder: Path, marker: dict[str, Any] | None = None) -> None:
    """Write the adapter alone to `folder`, replacing what was there (see _replace_folder)."""

    def write(target: Path) -> None:
        model.save_pretrained(str(target), safe_serialization=True)
        if marker is not None:
            (target / BEST_MARKER).write_text(json.dumps(marker, indent=2))

    _replace_folder(folder, write)


def save_checkpoint(
    model: Any,
    folder: Path,
    state: TrainerState,
    optimizer: Any,
    scheduler: Any,
    param_names: list[str],
    identity: dict[str, Any],
) -> None:
    """An adapter folder plus the optimizer, scheduler and random state needed to continue from it.

    Tensors go to safetensors and everything else to JSON, so resuming never unpickles anything. The
    optimizer state is keyed by parameter name, not position, and `identity` (training type, the
    hyperparameters, base model and dataset hashes) lets a resumed run check it continues the same job.
    """

    def write(target: Path) -> None:
        model.save_pretrained(str(target), safe_serialization=True)
        optim = optimizer.state_dict()
        tensors = {"rng/torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            for index, rng in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng/cuda/{index}"] = rng
        for index, slots in optim["state"].items():
            for slot, value in slots.items():
                tensors[f"optimizer/{param_names[index]}/{slot}"] = torch.as_tensor(value).detach().cpu().contiguous()
        save_file(tensors, str(target / OPTIMIZER_TENSORS))
        plain = {"param_names": param_names, "param_groups": optim["param_groups"], "scheduler": scheduler.state_dict()}
        (target / OPTIMIZER_STATE).write_text(json.dumps(plain, indent=2))
        # written last: a folder with trainer_state.json is complete
        (target / TRAINER_STATE).write_text(json.dumps(asdict(state) | {"identity": identity}, indent=2))

    _replace_folder(folder, write)


def _replace_folder(folder: Path, write: Any) -> None:
    """Write into `folder`.partial, then swap it in, so an interrupted save never leaves a half folder
    under the real name (the previous one stays until the new one is complete)."""
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    write(partial)
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)


def load_checkpoint(folder: Path, optimizer: Any, scheduler: Any, param_names: list[str]) -> Checkpoint:
    """Restore optimizer, scheduler and random state from `folder`; returns the saved progress.

    `folder`'s files were checked by args.resume_problems before the model was loaded.
    """
    tensors = load_file(str(folder / OPTIMIZER_TENSORS))
    plain = json.loads((folder / OPTIMIZER_STATE).read_text())
    saved_names: list[str] = plain["param_names"]
    if sorted(saved_names) != sorted(param_names):
        raise InputError(
            f"cannot resume from {folder}: its adapter has other trainable parameters than this run's "
            f"({len(saved_names)} saved, {len(param_names)} here); lora_target_modules must match"
        )
    position = {name: index for index, name in enumerate(param_names)}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            name, slot = key.removeprefix("optimizer/").rsplit("/", 1)
            state.setdefault(position[name], {})[slot] = value
    for group in plain["param_groups"]:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})
    scheduler.load_state_dict(plain["scheduler"])
    torch.set_rng_state(tensors["rng/torch"])
    cuda_states = [tensors[f"rng/cuda/{i}"] for i in range(sum(key.startswith("rng/cuda/") for key in tensors))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    saved = json.loads((folder / TRAINER_STATE).read_text())
    identity = saved.pop("identity", {})
    return Checkpoint(TrainerState(**saved), identity)


def identity_changes(saved: dict[str, Any], current: dict[str, Any], free: frozenset[str]) -> list[str]:
    """How `current` differs from the `saved` identity of a checkpoint, ignoring hyperparameters in `free`."""
    changes = []
    for key in sorted(saved.keys() | current.keys()):
        before, after = saved.get(key), current.get(key)
        if key == "hyperparameters" and isinstance(before, dict) and isinstance(after, dict):
            for name in sorted(before.keys() | after.keys()):
                if name not in free and before.get(name) != after.get(name):
                    changes.append(f"{name} {before.get(name)!r} -> {after.get(name)!r}")
        elif before != after:
            changes.append(f"{key} {_short(before)} -> {_short(after)}")
    return changes


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def read_best_marker(folder: Path) -> dict[str, Any] | None:
    """The step and eval loss a best/ folder was saved at, if it says so."""
    try:
        marker = json.loads((folder / BEST_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_training_config(
    args: TrainingArgs, base_model_id: str, base_config_sha256: str, dataset_sha256: str, extra: dict[str, Any]
) -> Path:
    """training_config.json: everything needed to know what produced the adapters next to it."""
    config = {
        "training_type": args.training_type,
        "hyperparameters": hparams_dict(args.hparams),
        "base_model": {"id": base_model_id, "config_sha256": base_config_sha256},
        "dataset": {"path": str(args.data.resolve()), "sha256": dataset_sha256},
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
