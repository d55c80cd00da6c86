"""Command-line arguments and hyperparameters of `python -m tunelab.training` (no torch import here)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from tunelab.musicgen.weights import pickle_files
from tunelab.training.errors import InputError

TrainingType = Literal["supervised", "preference"]
TRAINING_TYPES: tuple[str, ...] = ("supervised", "preference")
_TARGET = re.compile(r"((self_attn|encoder_attn)\.)?(q_proj|k_proj|v_proj|out_proj)")
RESUMABLE_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "trainer_state.json",
    "optimizer.safetensors",
    "optimizer_state.json",
)


@dataclass(frozen=True)
class Hyperparameters:
    """What a training run may tune; defaults follow the design document's table."""

    epochs: int = 3
    """Passes over the training examples."""
    batch_size: int = 2
    """Examples (supervised) or preference pairs per forward pass."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate, reached after warmup and then decayed along a cosine to a tenth of it."""
    lora_r: int = 16
    """LoRA rank: size of the low-rank update of each target projection."""
    lora_alpha: int = 32
    """LoRA scaling numerator; the update is scaled by lora_alpha / lora_r."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch during supervised training (preference training turns all dropout off)."""
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
    """Decoder attention projections that get adapters: q_proj, k_proj, v_proj, out_proj for both
    self and cross attention, or prefixed with self_attn. / encoder_attn. for one of them."""
    max_audio_seconds: float = 10.0
    """Audio is cropped to this length; shorter clips are padded and the padding is left out of the loss."""
    warmup_ratio: float = 0.1
    """Fraction of the optimizer steps spent ramping the learning rate up linearly from zero."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients are summed before each optimizer step."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global L2 norm; 0 turns clipping off."""
    weight_decay: float = 0.0
    """AdamW weight decay on the LoRA weights."""
    eval_fraction: float = 0.1
    """Share of examples held out (chosen by the seed) for the eval loss that picks best/; at least one
    example when above 0. With 0, or fewer than two examples, the training set is evaluated instead."""
    save_every: int = 500
    """Write checkpoint-N/ every this many optimizer steps; 0 writes none."""
    log_every: int = 1
    """Emit a metrics event every this many optimizer steps (and at every evaluation)."""
    seed: int = 42
    """Seed for the held-out split, batch order, LoRA initialisation and dropout."""
    beta: float = 0.1
    """DPO temperature (preference only): how far the adapter may move from the base model."""
    min_rating: int = 3
    """Supervised only: examples rated below this (1..5) are dropped; the rest are weighted by rating / 5,
    so a 5-star clip counts fully in the loss and a 3-star clip 0.6 of that."""

    def problems(self) -> list[str]:
        """Every invalid setting, described; empty when all are fine."""
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (0 < self.learning_rate < 1, "learning_rate must be between 0 and 1"),
            (self.lora_r >= 1, "lora_r must be at least 1"),
            (self.lora_alpha >= 1, "lora_alpha must be at least 1"),
            (0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)"),
            (len(self.lora_target_modules) > 0, "lora_target_modules must name at least one projection"),
            (self.max_audio_seconds > 0, "max_audio_seconds must be positive"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1"),
            (self.max_grad_norm >= 0, "max_grad_norm must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.eval_fraction < 1, "eval_fraction must be in [0, 1)"),
            (self.save_every >= 0, "save_every must be >= 0"),
            (self.log_every >= 1, "log_every must be at least 1"),
            (self.beta > 0, "beta must be positive"),
            (1 <= self.min_rating <= 5, "min_rating must be between 1 and 5"),
        ]
        found = [message for ok, message in checks if not ok]
        bad_targets = [name for name in self.lora_target_modules if not _TARGET.fullmatch(name)]
        if bad_targets:
            found.append(f"unknown lora_target_modules {bad_targets} (use q_proj, k_proj, v_proj, out_proj)")
        return found


@dataclass(frozen=True)
class TrainingArgs:
    """One training run: what to train, on what, from which base model, and where to write it."""

    training_type: TrainingType
    data: Path
    base_model: str
    output_dir: Path
    resume_from: Path | None = None
    hparams: Hyperparameters = field(default_factory=Hyperparameters)


def parse_args(argv: list[str] | None = None) -> TrainingArgs:
    """Parse and validate the command line; every problem is reported at once as an InputError."""
    namespace = build_parser().parse_args(argv)
    values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(Hyperparameters)}
    hparams = Hyperparameters(**values)
    problems = hparams.problems()
    if namespace.resume_from is not None:
        problems.extend(resume_problems(Path(namespace.resume_from)))
    if problems:
        raise InputError("invalid hyperparameters: " + "; ".join(problems))
    return TrainingArgs(
        training_type=namespace.type,
        data=Path(namespace.data),
        base_model=namespace.base_model,
        output_dir=Path(namespace.output_dir),
        resume_from=Path(namespace.resume_from) if namespace.resume_from else None,
        hparams=hparams,
    )


def resume_problems(folder: Path) -> list[str]:
    """Why `folder` cannot be resumed from; checked before a model is loaded, so PEFT never falls back to
    a pickled adapter_model.bin."""
    if not folder.is_dir():
        return [f"--resume-from {folder} is not a checkpoint folder"]
    missing = [name for name in RESUMABLE_FILES if not (folder / name).is_file()]
    if not missing:
        return []
    pickles = pickle_files(folder)
    found = f"; it has pickle files ({', '.join(pickles)}), which TuneLab never loads" if pickles else ""
    return [f"--resume-from {folder} is not a resumable checkpoint: missing {', '.join(missing)}{found}"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser; each hyperparameter's help is its docstring in `Hyperparameters`."""
    parser = argparse.ArgumentParser(
        prog="python -m tunelab.training",
        description="Train a MusicGen LoRA adapter from rated clips (supervised) or preference pairs (DPO).",
        epilog=(
            "Writes final/, best/, checkpoint-N/ (PEFT adapters), training_config.json and metrics.jsonl "
            "to --output-dir. Exit status: 0 done, 2 bad input (nothing trained), 1 training failed, 130 interrupted, "
            "143 stopped by SIGTERM (checkpoints written so far are kept); "
            "the reason is the last line of output."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--type", required=True, choices=TRAINING_TYPES, help="training type")
    parser.add_argument(
        "--data",
        required=True,
        help='JSONL file: supervised lines {"prompt", "audio_path", "rating"}, preference lines '
        '{"prompt", "chosen_path", "rejected_path"}; relative paths are relative to the file',
    )
    parser.add_argument("--base-model", required=True, help="MusicGen folder (safetensors) or hub id")
    parser.add_argument("--output-dir", required=True, help="where adapters, config and metrics go")
    parser.add_argument("--resume-from", default=None, help="checkpoint-N/ folder to continue from")
    docs = field_docs()
    for f in dataclasses.fields(Hyperparameters):
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, "").replace("%", "%%")
        if f.name == "lora_target_modules":
            parser.add_argument(flag, type=_comma_list, default=f.default, help=help_text + " (comma-separated)")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=help_text)
    return parser


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@cache
def field_docs() -> dict[str, str]:
    """The docstring under each field of `Hyperparameters`, read from its source."""
    tree = ast.parse(inspect.getsource(Hyperparameters))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:], strict=False):
        documented = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and documented:
            docs[node.target.id] = " ".join(str(following.value.value).split())  # type: ignore[attr-defined]
    return docs


def hparams_dict(hparams: Hyperparameters) -> dict[str, Any]:
    """Hyperparameters as plain JSON values."""
    values = dataclasses.asdict(hparams)
    values["lora_target_modules"] = list(hparams.lora_target_modules)
    return values
