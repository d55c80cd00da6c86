"""An adapter's training config as people read it: grouped (Model, LoRA, Training, Hardware, Checkpointing and, for
preference training only, DPO), each value formatted (1e-4, Yes/No, comma-separated lists, Not set) with a label and
an explanation of the parameter and its typical range. The adapter page and `tunelab adapters show` both use it."""

from __future__ import annotations

import math
from typing import Any

from tunelab.domain.adapters import ConfigEntry, ConfigGroup, flatten

NOT_SET = "Not set"
# group -> (dotted key in training_config.json, label, explanation with typical values)
GROUPS: dict[str, list[tuple[str, str, str]]] = {
    "Model": [
        (
            "training_type",
            "Training type",
            "supervised: imitate rated clips; preference: DPO on chosen/rejected pairs.",
        ),
        (
            "base_model.id",
            "Base model",
            "The MusicGen checkpoint the adapter was trained on; it only fits that model's layer shapes.",
        ),
        (
            "base_model.config_sha256",
            "Base model config hash",
            "sha256 of the base model's config.json: the same hash means the same architecture.",
        ),
        (
            "hyperparameters.max_audio_seconds",
            "Max audio length (s)",
            "Clips are cut to this length. Typical: 5–30 s; longer clips cost memory quadratically in attention.",
        ),
    ],
    "LoRA": [
        (
            "hyperparameters.lora_r",
            "Rank (r)",
            "Size of the low-rank update of each adapted projection. Typical: "
            "4–64; higher learns more and takes more memory.",
        ),
        ("hyperparameters.lora_alpha", "Alpha", "Scales the update by alpha / r. Typical: 1–2× the rank (16–128)."),
        ("hyperparameters.lora_dropout", "Dropout", "Dropout on the adapter's input while training. Typical: 0–0.1."),
        (
            "hyperparameters.lora_target_modules",
            "Target modules",
            "The decoder attention projections that get an "
            "adapter (self- and cross-attention). Typical: q_proj, v_proj, or all four.",
        ),
    ],
    "Training": [
        (
            "hyperparameters.epochs",
            "Epochs",
            "Passes over the dataset. Typical: 1–10; small datasets overfit after a few.",
        ),
        ("hyperparameters.batch_size", "Batch size", "Examples per step. Typical: 1–16, as memory allows."),
        (
            "hyperparameters.gradient_accumulation_steps",
            "Gradient accumulation",
            "Steps whose gradients add up before an update: the effective batch is batch size × this. Typical: 1–8.",
        ),
        (
            "hyperparameters.learning_rate",
            "Learning rate",
            "Step size of the optimiser (AdamW). Typical for LoRA: 1e-5–5e-4.",
        ),
        (
            "hyperparameters.warmup_ratio",
            "Warmup ratio",
            "Share of the steps over which the learning rate ramps up. Typical: 0–0.1.",
        ),
        ("hyperparameters.weight_decay", "Weight decay", "L2 penalty on the adapter weights. Typical: 0–0.1."),
        ("hyperparameters.max_grad_norm", "Max gradient norm", "Gradients are clipped to this norm. Typical: 0.5–1."),
        (
            "hyperparameters.eval_fraction",
            "Eval fraction",
            "Share of the dataset held out to measure eval loss. Typical: 0.05–0.2.",
        ),
        (
            "hyperparameters.min_rating",
            "Min rating",
            "Supervised only: clips rated below this (1–5) are left out. Typical: 3–4.",
        ),
        ("hyperparameters.seed", "Seed", "Random seed of the split, the initialisation and the shuffling."),
        ("train_examples", "Training examples", "Examples the adapter was trained on."),
        ("eval_examples", "Eval examples", "Examples its eval loss was measured on."),
    ],
    "Hardware": [
        ("device", "Device", "Where it trained: cuda (a GPU), mps or cpu."),
        ("library_versions.torch", "PyTorch", "The PyTorch version it trained with."),
        ("library_versions.transformers", "Transformers", "The transformers version (MusicGen's code)."),
        ("library_versions.peft", "PEFT", "The PEFT version that saved the adapter."),
        ("library_versions.python", "Python", "The Python version."),
    ],
    "Checkpointing": [
        (
            "hyperparameters.save_every",
            "Save every (steps)",
            "A checkpoint every N steps, to resume from; 0 saves only the best and final adapters. Typical: 100–1000.",
        ),
        ("hyperparameters.log_every", "Log every (steps)", "Metrics are reported every N steps. Typical: 1–50."),
        ("resume_from", "Resumed from", "The checkpoint this training continued, if any."),
    ],
    "DPO": [
        (
            "hyperparameters.beta",
            "Beta",
            "DPO temperature: how far the adapter may move from the base model. "
            "Typical: 0.05–0.5; lower lets it move further.",
        ),
    ],
}


def present(config: dict[str, Any]) -> list[ConfigGroup] | None:
    """The groups of `config` for display; None when there is no training config. A key is found by its dotted
    name in training_config.json or, for a config written elsewhere, by its last part (`learning_rate`); options the
    catalog does not know are shown under Training, bookkeeping (data paths and hashes, dates) is left out."""
    if not config:
        return None
    flat = flatten(config)
    preference = flat.get("training_type") == "preference"
    found_as = {
        key: key if key in flat else key.rsplit(".", 1)[-1] for entries in GROUPS.values() for key, _, _ in entries
    }
    used = set(found_as.values())
    groups = []
    for name, entries in GROUPS.items():
        if name == "DPO" and not preference:
            continue
        shown = []
        for key, label, help_ in entries:
            if preference and key.endswith(".min_rating"):
                continue
            value = flat.get(found_as[key])
            shown.append(ConfigEntry(key=key, label=label, value=value, display=display(value), help=help_))
        if name == "Training":
            extra = sorted(k for k in flat if k not in used and not k.startswith(_BOOKKEEPING))
            shown += [ConfigEntry(key=k, label=k.rsplit(".", 1)[-1].replace("_", " ").capitalize(), value=flat[k],
                                  display=display(flat[k]), help="A training option.") for k in extra]  # fmt: skip
        groups.append(ConfigGroup(name=name, entries=shown))
    return groups


_BOOKKEEPING = ("dataset.", "base_model.", "library_versions.", "created_at", "beta", "hyperparameters.beta")


def display(value: Any) -> str:
    """1e-4 for small or large numbers, up to 4 significant digits otherwise; Yes/No; comma-separated lists."""
    if value is None or value == "" or value == []:
        return NOT_SET
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            mantissa, exponent = f"{value:.3e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(display(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {display(v)}" for k, v in value.items())
    return str(value)
