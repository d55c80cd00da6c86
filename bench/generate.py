"""Generation figures, printed as JSON: the adapter cache, mixed-adapter batches, and a job's overhead.

    python bench/generate.py                 # tiny MusicGen, then a random model of musicgen-small's size (CPU)
    python bench/generate.py --which tiny    # one of them
    python bench/generate.py --device cuda   # on a GPU: also seconds of audio per second at batch 1 and 8

For each model (medians over repeats):
- `adapter_switch_ms`: what changing adapters between two batches costs the engine (it routes each batch by
  `adapter_names`, so a switch is a different name in the next call; target ≤ 5 ms), and apart, for reference,
  `peft_set_adapter_ms`, PEFT's `set_adapter`, which the engine does not call;
- `adapter_first_load_ms`: loading an adapter not yet in the cache (target ≤ 100 ms at musicgen-small size), as
  the worker does after a moment idle: copied into a spare slot (see generation/engine.py); apart,
  `adapter_first_load_new_layers_ms` when PEFT must make its layers (`load_adapter`: no spare of its shape, or no
  room for one in the budget), and `first_adapter_wrap_ms` for the very first, which wraps the model;
- `mixed_batch_ratio`: tokens/s of a batch of 8 requests on 8 different adapters over 8 requests on the base model
  (target ≥ 0.8);
- tiny only, `job_overhead_ms`: a job's latency through the server's service and the worker process (queue, the
  worker's batching window, pipes, writing the WAV, the database) beyond its `generate` call (target ≤ 20 ms).
Adapters are LoRA r=16 on every decoder attention projection (self and cross), random weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from train import _small, _tiny  # bench/ is on sys.path when this file runs
from tunelab.generation.engine import Engine, Request

ADAPTERS = 8
PROMPTS = ["upbeat electronic music", "calm piano melody", "dark ambient pad", "fast drums and bass",
           "warm jazz guitar", "bright synth chord", "slow sad strings", "happy pop groove"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", choices=("tiny", "small", "both"), default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    names = ("tiny", "small") if args.which == "both" else (args.which,)
    print(json.dumps({"figures": [bench(name, args) for name in names]}, indent=2))
    return 0


def bench(which: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    root = Path(tempfile.mkdtemp(prefix=f"bench-generate-{which}-"))
    try:
        model, processor, notes = _tiny() if which == "tiny" else _small()
        folders = [write_lora(model, root / f"adapter-{i}", seed=i) for i in range(ADAPTERS)]
        engine = Engine(model, processor, cache_bytes=1 << 40, device=torch.device(args.device))
        started = time.perf_counter()
        engine.cache.use([("a0", str(folders[0]))])
        wrap_ms = (time.perf_counter() - started) * 1000
        loads, new_layers = [], []  # into a spare slot the idle worker prepared / PEFT making the adapter's layers
        for i, folder in enumerate(folders[1:], start=1):
            spare = i % 2 == 0 and engine.prepare_spare()  # what the worker does when left idle a moment
            started = time.perf_counter()
            engine.cache.use([(f"a{i}", str(folder))])
            (loads if spare else new_layers).append((time.perf_counter() - started) * 1000)
        switches = []
        for i in range(40):
            started = time.perf_counter()
            engine.peft.set_adapter(engine.slot(f"a{i % ADAPTERS}"))
            switches.append((time.perf_counter() - started) * 1000)
        switch_ms = engine_switch_ms(engine, folders, repeats=10 * args.repeats)
        frames = 50 if which == "tiny" else 4
        base = [Request(f"b{i}", PROMPTS[i], frames / engine.frame_rate, seed=i) for i in range(ADAPTERS)]
        mixed = [Request(f"m{i}", PROMPTS[i], frames / engine.frame_rate, seed=i, adapter_id=f"a{i}",
                         adapter_path=str(folders[i])) for i in range(ADAPTERS)]  # fmt: skip
        engine.generate(base[:2])  # warm up
        base_s = _median(lambda: engine.generate(base).generate_s, args.repeats)
        mixed_s = _median(lambda: engine.generate(mixed).generate_s, args.repeats)
        tokens = ADAPTERS * (frames + engine.num_codebooks - 1)
        figures: dict[str, Any] = {
            "model": which, **notes, "device": str(engine.device), "adapters": ADAPTERS,
            "adapter_bytes": (folders[1] / "adapter_model.safetensors").stat().st_size,
            "adapter_switch_ms": round(switch_ms, 3),
            "peft_set_adapter_ms": round(statistics.median(switches), 3),
            "adapter_first_load_ms": round(statistics.median(loads), 2),
            "adapter_first_load_ms_max": round(max(loads), 2),
            "adapter_first_load_new_layers_ms": round(statistics.median(new_layers), 2),
            "first_adapter_wrap_ms": round(wrap_ms, 2),
            "batch": ADAPTERS, "tokens_per_request": frames + engine.num_codebooks - 1,
            "base_batch_tokens_per_s": round(tokens / base_s, 2),
            "mixed_batch_tokens_per_s": round(tokens / mixed_s, 2),
            "mixed_batch_ratio": round(base_s / mixed_s, 3),
        }  # fmt: skip
        if args.device.startswith("cuda"):
            figures.update(_audio_speed(engine, which))
        if which == "tiny":
            figures.update(job_overhead(root, args.repeats * 4))
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)


def engine_switch_ms(engine: Engine, folders: list[Path], repeats: int) -> float:
    """What a change of adapter between two batches costs the engine: one-frame, one-request batches alternating
    between two loaded adapters, minus the same batches all on one adapter (medians of interleaved rounds).

    The engine routes each batch by `adapter_names`, so it never calls `set_adapter` (whose cost the bench prints
    apart as `peft_set_adapter_ms`): a switch is only a different name in the next call."""

    def one(adapter: int) -> float:
        request = Request("s", PROMPTS[0], 1 / engine.frame_rate, seed=0, adapter_id=f"a{adapter}",
                          adapter_path=str(folders[adapter]))  # fmt: skip
        return engine.generate([request]).generate_s

    one(0), one(1)  # warm up
    same, alternating = [], []
    for _ in range(repeats):
        same.append(one(0) + one(0))
        alternating.append(one(1) + one(0))
    return max(0.0, (statistics.median(alternating) - statistics.median(same)) / 2 * 1000)


def write_lora(model: Any, folder: Path, seed: int, rank: int = 16) -> Path:
    """A PEFT LoRA folder for every decoder attention projection of `model`, with random A and B."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors, modules = {}, set()
    for name, module in model.named_modules():
        if ".decoder.layers." in name and name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "out_proj"):
            prefix = f"base_model.model.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) * 0.01
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) * 0.01
            modules.add(name.rsplit(".", 1)[-1])
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": sorted(modules),
              "lora_dropout": 0.0, "bias": "none", "task_type": None, "base_model_name_or_path": "bench"}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def job_overhead(root: Path, jobs: int) -> dict[str, Any]:
    """Jobs one at a time through GenerationService and a real worker process: latency beyond `generate`."""
    from tunelab.config import Settings
    from tunelab.domain.generations import GenerationCreate
    from tunelab.domain.models import BaseModelCreate
    from tunelab.musicgen.tiny import create_tiny_musicgen
    from tunelab.services import Services
    from tunelab.store import Database

    settings = Settings(data_dir=root / "data", warm_worker=False, bootstrap_model=False)
    settings.ensure_dirs()
    folder = create_tiny_musicgen(settings.data_dir / "models" / "tiny")
    services = Services.build(Database(settings.db_path), settings)
    services.models.add(BaseModelCreate(path=str(folder), id="tiny"))
    services.generations.begin()
    overheads, totals = [], []
    try:
        request = GenerationCreate(prompt="calm piano melody", duration_s=0.5, seed=1)
        services.generations.create(request)  # starts the worker and warms it up
        assert services.generations.wait_idle(300)
        for _ in range(jobs):
            job = services.generations.create(request)
            assert services.generations.wait_idle(120)
            done = services.generations.get(job.id)
            assert done.completed_at is not None, done.error
            total = (done.completed_at - done.created_at).total_seconds()
            totals.append(total * 1000)
            overheads.append((total - done.timings["generate_s"]) * 1000)
    finally:
        services.generations.stop()
        services.db.close()
    return {"job_overhead_ms": round(statistics.median(overheads), 2), "job_latency_ms": round(statistics.median(totals), 2),
            "jobs": jobs}  # fmt: skip


def _audio_speed(engine: Engine, which: str) -> dict[str, Any]:
    """Seconds of audio per second of generation at batch 1 and 8 (GPU runs)."""
    out = {}
    seconds = 5.0 if which == "small" else 2.0
    for batch in (1, 8):
        requests = [Request(f"s{i}", PROMPTS[i], seconds, seed=i) for i in range(batch)]
        elapsed = _median(lambda requests=requests: engine.generate(requests).generate_s, 2)
        out[f"audio_s_per_s_batch{batch}"] = round(batch * seconds / elapsed, 2)
    return out


def _median(action: Callable[[], float], repeats: int) -> float:
    return statistics.median(action() for _ in range(repeats))


if __name__ == "__main__":
    sys.exit(main())
