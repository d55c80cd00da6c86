"""The base model loaded once, with LoRA adapters cached beside it, making clips for batches of requests.

A batch may mix adapters and the base model: PEFT's `adapter_names` routes each row through its own adapter (the
base model's rows through `__base__`) in one forward pass, with no weights merged. Classifier-free guidance doubles
MusicGen's batch (conditional rows, then unconditional), so the names are given twice in that order. Requests of
one batch share a length and a guidance scale (the worker groups them so); each draws from its own seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.generation.cache import AdapterCache
from tunelab.musicgen.loading import BaseModel, autocast, load_base_model, pick_device

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


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
        from peft import PeftModel

        # low_cpu_mem_usage: the adapter's layers are made empty and filled from the file, not initialised first
        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, path, adapter_name=adapter_id, is_trainable=False,
                                                  low_cpu_mem_usage=True)  # fmt: skip
            self.peft.eval()
        else:
            self.peft.load_adapter(path, adapter_name=adapter_id, is_trainable=False, low_cpu_mem_usage=True)
        return sum(p.numel() * p.element_size() for n, p in self.peft.named_parameters() if f".{adapter_id}." in n)

    def _unload_adapter(self, adapter_id: str) -> None:
        self.peft.delete_adapter(adapter_id)

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
            names = [r.adapter_id or BASE for r in requests]
            options["adapter_names"] = names * 2 if guidance and guidance > 1 else names
        started = time.perf_counter()
        # inference mode for this call only: a process that also trains (tests, benches) keeps its gradients
        with torch.inference_mode(), autocast(self.device):
            audio = model.generate(**inputs, **options)
        generate_s = time.perf_counter() - started
        clips = [row[0].float().cpu().numpy() for row in audio]
        return BatchResult(audio=clips, load_s=load_s, generate_s=generate_s, loaded=loaded)
