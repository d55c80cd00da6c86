"""What a PEFT LoRA adapter folder is, and whether it fits a base model, read from `adapter_config.json` and the
safetensors headers alone: no torch, nothing loaded, nothing unpickled (a 25 MB adapter checks in milliseconds).

- `read_adapter`: the folder holds a LoRA config and safetensors weights whose tensors are LoRA A/B pairs with the
  ranks the config gives; returns its facts (rank, alpha, the modules it adapts with their shapes, size).
- `base_tensors`: a base model folder's tensor shapes (name -> shape), from its safetensors headers.
- `misfits`: why an adapter does not fit a base model's modules (empty when it fits).

PEFT saves a LoRA on a module `m` of the wrapped model as `base_model.model.{m}.lora_A.weight` ([r, in_features])
and `…lora_B.weight` ([out_features, r]); an embedding's pair is `lora_embedding_A` ([r, num_embeddings]) and
`lora_embedding_B` ([embedding_dim, r]). The base model keeps `{m}.weight` as [out_features, in_features] (an
embedding: [num_embeddings, embedding_dim]).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.musicgen.describe import json_file, read_header
from tunelab.musicgen.weights import PICKLE_SUFFIXES, ModelError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_PAIR = re.compile(r"(?P<module>.+)\.lora_(?P<embedding>embedding_)?(?P<side>[AB])(?:\.weight)?")
_FLOATS = {"F64", "F32", "F16", "BF16"}


class AdapterError(Exception):
    """An adapter folder TuneLab will not register or load, with the reason as a sentence."""


@dataclass(frozen=True)
class LoraModule:
    name: str  # the module's name in the wrapped model (without PEFT's base_model.model. prefix)
    rank: int
    in_features: int  # an embedding: its number of embeddings
    out_features: int  # an embedding: its dimension
    embedding: bool = False


@dataclass(frozen=True)
class AdapterFacts:
    rank: int
    alpha: float
    base_model_name: str | None  # adapter_config.json's base_model_name_or_path
    modules: tuple[LoraModule, ...]
    size_bytes: int
    config: dict[str, Any] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """What the registry keeps of it: rank, alpha, the modules adapted, their parameter count and file size."""
        targets = sorted({module.name.rsplit(".", 1)[-1] for module in self.modules})
        params = sum(m.rank * (m.in_features + m.out_features) for m in self.modules)
        return {"r": self.rank, "lora_alpha": self.alpha, "target_modules": targets, "modules": len(self.modules),
                "parameters": params, "size_bytes": self.size_bytes, "use_dora": bool(self.config.get("use_dora"))}  # fmt: skip


def read_adapter(folder: Path) -> AdapterFacts:
    """The facts of the PEFT LoRA adapter in `folder`, or AdapterError saying why it is not one."""
    if not folder.is_dir():
        raise AdapterError(f"{folder} is not a folder")
    config = _config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise AdapterError(f"the weights are pickle files ({', '.join(pickles)}); TuneLab loads safetensors only "
                               "(save the adapter with save_pretrained(safe_serialization=True))")  # fmt: skip
        raise AdapterError(f"the folder has no {WEIGHTS_FILE}")
    try:
        header = read_header(weights)
    except ModelError as error:
        raise AdapterError(str(error)) from None
    if not header:
        raise AdapterError(f"{WEIGHTS_FILE} holds no tensors")
    rank, rank_pattern = config["r"], config.get("rank_pattern") or {}
    halves: dict[tuple[str, bool], dict[str, tuple[str, list[int]]]] = {}
    for name, (dtype, shape) in header.items():
        match = _PAIR.fullmatch(name.removeprefix(_PREFIX))
        if match is None:
            raise AdapterError(f"tensor {name!r} is not a LoRA A or B matrix (only LoRA adapters are supported)")
        if dtype not in _FLOATS or len(shape) != 2:
            raise AdapterError(f"tensor {name!r} is a {dtype} tensor of shape {shape}, not a matrix of floats")
        halves.setdefault((match["module"], bool(match["embedding"])), {})[match["side"]] = (name, shape)
    modules = []
    for (module, embedding), sides in sorted(halves.items()):
        if set(sides) != {"A", "B"}:
            missing = ({"A", "B"} - set(sides)).pop()
            raise AdapterError(f"module {module!r} has a LoRA {'B' if missing == 'A' else 'A'} matrix but no {missing}")
        (_, a_shape), (_, b_shape) = sides["A"], sides["B"]
        expected = _rank_for(module, rank, rank_pattern)
        if a_shape[0] != b_shape[1]:
            raise AdapterError(f"module {module!r}: its A matrix has rank {a_shape[0]} and its B matrix rank "
                               f"{b_shape[1]}")  # fmt: skip
        if a_shape[0] != expected:
            raise AdapterError(f"module {module!r} has rank {a_shape[0]}, but adapter_config.json says r = {expected}")
        modules.append(LoraModule(module, expected, a_shape[1], b_shape[0], embedding))
    base = config.get("base_model_name_or_path")
    return AdapterFacts(rank=rank, alpha=float(config.get("lora_alpha") or rank), modules=tuple(modules),
                        base_model_name=base if isinstance(base, str) and base else None,
                        size_bytes=weights.stat().st_size, config=config)  # fmt: skip


def base_tensors(model_folder: Path) -> dict[str, list[int]]:
    """A base model's tensor name -> shape, from every safetensors file in its folder (headers only)."""
    tensors: dict[str, list[int]] = {}
    for weights in sorted(model_folder.glob("*.safetensors")):
        tensors |= {name: shape for name, (_, shape) in read_header(weights).items()}
    return tensors


def misfits(facts: AdapterFacts, tensors: dict[str, list[int]], limit: int = 3) -> list[str]:
    """Why the adapter's modules do not fit a base model with `tensors` (at most `limit` reasons; empty: it fits).

    A module of an adapter saved from the whole MusicGen is found by its name; one saved from the decoder alone
    (MusicgenForCausalLM) under `decoder.`."""
    reasons = []
    for module in facts.modules:
        shape = tensors.get(f"{module.name}.weight") or tensors.get(f"decoder.{module.name}.weight")
        if shape is None:
            reasons.append(f"the base model has no module {module.name!r}")
        else:
            expected = [module.in_features, module.out_features] if module.embedding else [module.out_features,
                                                                                           module.in_features]  # fmt: skip
            if list(shape) != expected:
                reasons.append(f"module {module.name!r} is {shape[0]}×{shape[1] if len(shape) > 1 else 1} in the base "
                               f"model; the adapter was made for {expected[0]}×{expected[1]}")  # fmt: skip
        if len(reasons) >= limit:
            break
    return reasons


def _config(folder: Path) -> dict[str, Any]:
    try:
        config = json_file(folder / CONFIG_FILE)
    except ModelError as error:
        raise AdapterError(str(error)) from None
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{CONFIG_FILE} describes a {config.get('peft_type')!r} adapter, not LoRA "
                           "(peft_type 'LORA')")  # fmt: skip
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise AdapterError(f"{CONFIG_FILE} has no LoRA rank r (a positive integer), found {rank!r}")
    alpha = config.get("lora_alpha")
    if alpha is not None and (not isinstance(alpha, int | float) or isinstance(alpha, bool)):
        raise AdapterError(f"{CONFIG_FILE}: lora_alpha {alpha!r} is not a number")
    pattern = config.get("rank_pattern")
    if pattern is not None and not (isinstance(pattern, dict) and all(isinstance(v, int) for v in pattern.values())):
        raise AdapterError(f"{CONFIG_FILE}: rank_pattern is not a map of module patterns to ranks")
    return config


def _rank_for(module: str, rank: int, rank_pattern: dict[str, int]) -> int:
    """The rank PEFT gives `module`: the first rank_pattern key that matches the end of its name, else r."""
    for pattern, value in rank_pattern.items():
        try:
            matches = re.fullmatch(rf"(.*\.)?{pattern}", module) is not None
        except re.error:
            matches = module.endswith(pattern)
        if matches:
            return value
    return rank
