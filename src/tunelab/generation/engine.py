"""The base model loaded once, with LoRA adapters cached beside it, making clips for batches of requests.

A batch may mix adapters and the base model: PEFT's `adapter_names` routes each row through its own adapter (the
base model's rows through `__base__`) in one forward pass, with no weights merged. Classifier-free guidance doubles
MusicGen's batch (conditional rows, then unconditional), so the names are given twice in that order. Requests of
one batch share a length and a guidance scale (the worker groups them so); each draws from its own seed.

Adapters live in PEFT under slot names, not their ids. Making an adapter's layers (`load_adapter`) is PEFT walking
every module of the model: ~250 ms at musicgen-small size on a CPU, whatever the adapter's size. So the layers of
an unloaded adapter are kept as a spare (up to `SPARES_PER_SHAPE` per LoRA shape: rank, alpha, targets...), and
the next adapter of that shape is copied into them (~10 ms); while idle, the worker also prepares one spare slot for
the shape last loaded (`prepare_spare`), when the cache budget leaves room for it.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.generation.cache import AdapterCache
from tunelab.musicgen.loading import BaseModel, autocast, load_base_model, pick_device

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
SPARES_PER_SHAPE = 2
# adapter_config.json fields that decide a LoRA adapter's layers and scaling: adapters equal in all of them fit the
# same slot (fields a config lacks count as equal only to the same absence)
_SHAPE_FIELDS = ("peft_type", "r", "lora_alpha", "use_rslora", "target_modules", "exclude_modules",
                 "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "fan_in_fan_out",
                 "lora_dropout", "target_parameters")  # fmt: skip


@dataclass(frozen=True)
class Request:
    id: str
    prompt: str
    duration_s: float
    seed: int
    guidance_scale: float | None = None
    adapter_id: str | None = None
    adapter_path: str | None = None

    def batch_key(self, frames: int) -> tuple[int, float | None]:
        return frames, self.guidance_scale


@dataclass
class BatchResult:
    audio: list[Any]  # one float32 numpy array per request, mono
    load_s: float  # adapters loaded for this batch
    generate_s: float
    loaded: list[str] = field(default_factory=list)


class Engine:
    def __init__(self, model: Any, processor: Any, cache_bytes: int, device: Any = None) -> None:
        """A loaded MusicgenForConditionalGeneration and its processor, moved to `device` (default: the best)."""
        self.device = device or pick_device()
        self.model: Any = model.to(self.device).eval()
        self.processor: Any = processor
        self.sample_rate = int(self.model.config.audio_encoder.sampling_rate)
        self.frame_rate = int(self.model.config.audio_encoder.frame_rate)
        self.num_codebooks = int(self.model.decoder.num_codebooks)
        self.peft: Any = None  # the PeftModel, once the first adapter is loaded
        self.cache = AdapterCache(cache_bytes, self._load_adapter, self._unload_adapter)
        self.load_s = 0.0
        self.slot_reuses = 0  # loads that refilled an existing slot instead of making one
        self._slot_of: dict[str, str] = {}  # adapter id -> the PEFT adapter name (slot) it is loaded in
        self._spares: dict[str, list[str]] = {}  # LoRA shape -> slots free to refill
        self._shape_of: dict[str, str | None] = {}  # slot -> its LoRA shape (None: never refilled)
        self._params: dict[str, dict[str, Any]] = {}  # slot -> adapter file key -> the parameter it fills
        self._last: tuple[str, str] | None = None  # (shape, path) of the last adapter loaded in a new slot
        self._slot_names = (f"slot-{n}" for n in itertools.count())

    @classmethod
    def load(cls, model_path: str, cache_bytes: int, device: Any = None) -> Engine:
        """The base model at `model_path` (safetensors only, checked as training checks it)."""
        started = time.perf_counter()
        loaded: BaseModel = load_base_model(model_path)
        engine = cls(loaded.model, loaded.processor, cache_bytes, device)
        engine.load_s = time.perf_counter() - started
        return engine

    def frames(self, duration_s: float) -> int:
        return max(1, round(duration_s * self.frame_rate))

    def _load_adapter(self, adapter_id: str, path: str) -> int:
        shape = lora_shape(path)
        slot = self._refill(shape, path) if shape is not None else None
        if slot is None:
            slot = self._new_slot(path)
            self._shape_of[slot] = shape
            if shape is not None:
                self._last = (shape, path)
        self._slot_of[adapter_id] = slot
        return self._slot_bytes(slot)

    def _new_slot(self, path: str) -> str:
        from peft import PeftModel

        slot = next(self._slot_names)
        # low_cpu_mem_usage: the adapter's layers are made empty and filled from the file, not initialised first
        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, path, adapter_name=slot, is_trainable=False,
                                                  low_cpu_mem_usage=True)  # fmt: skip
            self.peft.eval()
        else:
            self.peft.load_adapter(path, adapter_name=slot, is_trainable=False, low_cpu_mem_usage=True)
        return slot

    def _refill(self, shape: str, path: str) -> str | None:
        """A spare slot of `shape` holding the adapter at `path` now, or None (no spare, or the file does not fit)."""
        import torch
        from safetensors.torch import load_file

        spares = self._spares.get(shape)
        if not spares:
            return None
        slot = spares[-1]
        params = self._slot_params(slot)
        try:
            tensors = load_file(str(Path(path) / "adapter_model.safetensors"))
        except (OSError, ValueError):
            return None  # the PEFT load reports what is wrong with the file
        if tensors.keys() != params.keys() or any(t.shape != params[k].shape for k, t in tensors.items()):
            return None
        with torch.no_grad():
            for key, tensor in tensors.items():
                params[key].copy_(tensor)
        spares.pop()
        self.slot_reuses += 1
        return slot

    def _slot_params(self, slot: str) -> dict[str, Any]:
        """The parameters of `slot`, by the key each has in an adapter file (the name without the slot)."""
        if slot not in self._params:
            marker = f".{slot}."
            self._params[slot] = {name.replace(marker, "."): param for name, param in self.peft.named_parameters()
                                  if marker in name}  # fmt: skip
        return self._params[slot]

    def _slot_bytes(self, slot: str) -> int:
        return sum(p.numel() * p.element_size() for p in self._slot_params(slot).values())

    def _own_memory(self, slot: str) -> None:
        """Give the slot's parameters memory of their own, ready to be written: PEFT's low-memory load leaves them
        mapped from the adapter's file, where the first write of every page is a copy-on-write fault (a refill
        then took 60-170 ms instead of 10 ms at musicgen-small size). Also finds the slot's parameters now."""
        import torch

        with torch.no_grad():
            for param in self._slot_params(slot).values():
                param.data = param.data.clone()

    def _unload_adapter(self, adapter_id: str) -> None:
        slot = self._slot_of.pop(adapter_id)
        shape = self._shape_of.get(slot)
        if shape is not None and len(self._spares.setdefault(shape, [])) < SPARES_PER_SHAPE:
            self._own_memory(slot)
            self._spares[shape].append(slot)  # its layers stay, for the next adapter of this shape
            return
        self._delete_slot(slot)

    def _delete_slot(self, slot: str) -> None:
        self.peft.delete_adapter(slot)
        self._shape_of.pop(slot, None)
        self._params.pop(slot, None)

    def prepare_spare(self) -> bool:
        """Make one spare slot for the shape last loaded, when there is none and the cache budget has room for it
        beside the loaded adapters and the spares; whether one was made (the worker calls this while idle)."""
        if self._last is None or self.peft is None:
            return False
        shape, path = self._last
        if self._spares.get(shape) or not Path(path).is_dir():
            return False
        size = (Path(path) / "adapter_model.safetensors").stat().st_size
        spare_bytes = sum(self._slot_bytes(slot) for slots in self._spares.values() for slot in slots)
        if self.cache.used_bytes + spare_bytes + size > self.cache.budget_bytes:
            return False
        slot = self._new_slot(path)
        self._shape_of[slot] = shape
        self._own_memory(slot)
        self._spares.setdefault(shape, []).append(slot)
        return True

    @property
    def spare_slots(self) -> int:
        return sum(len(slots) for slots in self._spares.values())

    def slot(self, adapter_id: str) -> str:
        """The PEFT adapter name a loaded adapter is routed by."""
        return self._slot_of[adapter_id]

    def preload(self, adapter_id: str, path: str) -> tuple[bool, float]:
        """Load an adapter before it is asked for, when the cache has room; (loaded, seconds)."""
        started = time.perf_counter()
        size = (Path(path) / "adapter_model.safetensors").stat().st_size
        return self.cache.preload(adapter_id, path, size), time.perf_counter() - started

    def generate(self, requests: list[Request]) -> BatchResult:
        """Clips for `requests` (same length and guidance scale) in one `generate` call."""
        import torch
        from transformers import LogitsProcessorList

        from tunelab.generation.sampling import SeededSampler

        frames = self.frames(requests[0].duration_s)
        guidance = requests[0].guidance_scale
        started = time.perf_counter()
        loaded = self.cache.use((r.adapter_id, r.adapter_path) for r in requests if r.adapter_id and r.adapter_path)
        load_s = time.perf_counter() - started
        inputs = self.processor(text=[r.prompt for r in requests], padding=True, return_tensors="pt").to(self.device)
        sampler = SeededSampler([r.seed for r in requests], self.num_codebooks, guidance)
        options: dict[str, Any] = {"do_sample": False, "max_new_tokens": frames + self.num_codebooks - 1,
                                   "guidance_scale": guidance, "logits_processor": LogitsProcessorList([sampler])}  # fmt: skip
        model = self.model
        if self.peft is not None:
            model = self.peft
            names = [self._slot_of[r.adapter_id] if r.adapter_id and r.adapter_path else BASE for r in requests]
            options["adapter_names"] = names * 2 if guidance and guidance > 1 else names
        started = time.perf_counter()
        # inference mode for this call only: a process that also trains (tests, benches) keeps its gradients
        with torch.inference_mode(), autocast(self.device):
            audio = model.generate(**inputs, **options)
        generate_s = time.perf_counter() - started
        clips = [row[0].float().cpu().numpy() for row in audio]
        return BatchResult(audio=clips, load_s=load_s, generate_s=generate_s, loaded=loaded)


def lora_shape(path: str) -> str | None:
    """What decides the layers a LoRA adapter takes, as a key: adapters with the same key fit the same slot. None
    for anything but plain LoRA (DoRA, trained biases, modules to save...), which always gets layers of its own."""
    try:
        config = json.loads((Path(path) / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return None  # the PEFT load reports what is wrong with the folder
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        return None
    if config.get("use_dora") or config.get("bias", "none") != "none" or config.get("modules_to_save"):
        return None
    if config.get("lora_bias") or config.get("trainable_token_indices"):
        return None
    fields = {name: config.get(name) for name in _SHAPE_FIELDS}
    if isinstance(fields["target_modules"], list):
        fields["target_modules"] = sorted(fields["target_modules"])
    return json.dumps(fields, sort_keys=True)
