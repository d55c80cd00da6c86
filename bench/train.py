"""Benchmark LoRA training steps of MusicGen and print JSON.

    python bench/train.py                     # CPU: tiny MusicGen, then a random musicgen-small-sized model
    python bench/train.py --which tiny --steps 20
    python bench/train.py --gpu-compare       # GPU: musicgen-small size, fp32 eager vs bf16 + SDPA + compile
    python bench/train.py --which small --device cuda --dtype bf16 --attn sdpa --compile

Each measurement runs in its own subprocess so that its peak memory is its own. Figures: optimizer steps
per second, decoder tokens per second (one token = one code of one codebook; a step of B examples of S
delayed positions and K codebooks is B*K*S tokens), seconds of training audio per second, peak resident
memory and, on CUDA, peak GPU memory allocated by PyTorch.

Precision: fp32 is full float32 (no TF32 matmuls); bf16 is the trainer's own path, float32 weights under
torch.autocast(bfloat16). Attention: eager is the plain softmax(QK^T)V of transformers, sdpa is PyTorch's
scaled_dot_product_attention (flash / memory-efficient kernels on GPUs). --compile wraps the whole PEFT
model in torch.compile; its compilation happens in the untimed warm-up steps and is reported apart.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# (autocast dtype, frozen base weights dtype, attention, compile); the first is the baseline
_GPU_VARIANTS = (
    ("fp32", "fp32", "eager", False),
    ("bf16", "fp32", "eager", False),
    ("bf16", "fp32", "sdpa", False),
    ("bf16", "fp32", "sdpa", True),
    ("bf16", "bf16", "sdpa", False),
    ("bf16", "bf16", "sdpa", True),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--which", choices=("tiny", "small", "both"), default="both")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 tiny, 3 small on CPU)")
    parser.add_argument("--seconds", type=float, default=None, help="audio per example (default: 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per step (default: 2 CPU, 8 CUDA)")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA, MPS, CPU")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default=None, help="default: the trainer's choice")
    parser.add_argument(
        "--weights",
        choices=("fp32", "bf16"),
        default="fp32",
        help="dtype of the frozen base weights (the LoRA weights stay fp32); bf16 needs --dtype bf16",
    )
    parser.add_argument("--attn", choices=("eager", "sdpa"), default="sdpa", help="attention implementation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--profile", action="store_true", help="also profile 3 steps; top operators go to stderr")
    parser.add_argument(
        "--gpu-compare",
        action="store_true",
        help="musicgen-small size on CUDA in every variant of precision x attention x compile, with speed-ups "
        "over fp32 eager (default batch 8 x 30 s, musicgen's training segment, 20 steps)",
    )
    args = parser.parse_args(argv)
    if args.gpu_compare:
        print(json.dumps(gpu_compare(args), indent=2))
        return 0
    if args.which == "both":
        results = [_in_subprocess(args, which=name) for name in ("tiny", "small")]
        print(json.dumps({"results": results}, indent=2))
        return 0
    print(json.dumps(bench(args.which, args)))
    return 0


def gpu_compare(args: argparse.Namespace) -> dict[str, Any]:
    """Each variant in its own process; the speed-up of each over plain fp32 eager attention."""
    args.which, args.device = "small", "cuda"
    args.batch_size = args.batch_size or 8
    args.seconds = args.seconds or 30.0
    args.steps = args.steps or 20
    results = []
    for dtype, weights, attn, compiled in _GPU_VARIANTS:
        try:
            results.append(_in_subprocess(args, dtype=dtype, weights=weights, attn=attn, compile=compiled))
        except subprocess.CalledProcessError as error:
            tail = error.stderr.strip().splitlines()[-5:]
            results.append({"dtype": dtype, "weights": weights, "attn": attn, "compile": compiled, "error": tail})
    baseline = results[0]
    table = {}
    for result in results:
        name = f"{result['dtype']} autocast, {result['weights']} weights, {result['attn']}"
        name += ", compile" if result["compile"] else ""
        if "error" in result or "error" in baseline:
            table[name] = result.get("error", "baseline failed")
            continue
        result["speedup_over_fp32_eager"] = round(result["tokens_per_s"] / baseline["tokens_per_s"], 2)
        table[name] = {
            "tokens_per_s": result["tokens_per_s"],
            "steps_per_s": result["steps_per_s"],
            "peak_gpu_mib": result["peak_gpu_mib"],
            "speedup": result["speedup_over_fp32_eager"],
        }
    return {"summary": table, "results": results}


def _in_subprocess(args: argparse.Namespace, **override: Any) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (its own peak memory, its own compile caches)."""
    values = vars(args) | override
    command = [sys.executable, __file__, "--which", values["which"]]
    command += ["--batch-size", str(values["batch_size"])] if values["batch_size"] else []
    command += ["--lora-r", str(values["lora_r"]), "--device", values["device"], "--attn", values["attn"]]
    command += ["--steps", str(values["steps"])] if values["steps"] else []
    command += ["--seconds", str(values["seconds"])] if values["seconds"] else []
    command += ["--dtype", values["dtype"]] if values["dtype"] else []
    command += ["--weights", values["weights"]]
    command += ["--compile"] if values["compile"] else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench(which: str, args: argparse.Namespace) -> dict[str, Any]:
    import contextlib

    import torch
    from transformers.utils import logging as hf_logging

    from tunelab.training.args import Hyperparameters
    from tunelab.training.codes import CodeCache, make_batch
    from tunelab.training.losses import supervised_loss
    from tunelab.training.model import add_lora, pick_device, training_mode

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.manual_seed(0)
    device = pick_device() if args.device == "auto" else torch.device(args.device)
    on_gpu = device.type == "cuda"
    steps = args.steps or (20 if which == "tiny" or on_gpu else 3)
    seconds = args.seconds or 5.0
    batch_size = args.batch_size or (8 if on_gpu else 2)
    if args.dtype is None:
        args.dtype = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
    if args.dtype == "bf16" and not on_gpu:
        raise SystemExit("--dtype bf16 is measured on CUDA only (the trainer uses bf16 autocast on GPUs alone)")
    if args.weights == "bf16" and args.dtype != "bf16":
        raise SystemExit("--weights bf16 needs --dtype bf16")
    precision = torch.autocast("cuda", dtype=torch.bfloat16) if args.dtype == "bf16" else contextlib.nullcontext()
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32 means no TF32 shortcuts
        torch.backends.cudnn.allow_tf32 = False
    started = time.perf_counter()
    model, processor, notes = _tiny() if which == "tiny" else _small()
    model.set_attn_implementation({"": args.attn, "decoder": args.attn, "text_encoder": args.attn})
    model.to(device, dtype=torch.bfloat16 if args.weights == "bf16" else torch.float32)
    build_seconds = time.perf_counter() - started
    cache = CodeCache(model, seconds, device)
    frames = int(seconds * model.config.audio_encoder.frame_rate)
    num_codebooks = int(model.config.decoder.num_codebooks)
    # random codes: the benchmark measures the decoder step, and a random EnCodec's codebooks are empty anyway
    codes = torch.randint(0, model.config.decoder.vocab_size, (batch_size, num_codebooks, frames))
    sequences = [cache._delayed(c) for c in codes]
    model = add_lora(model, Hyperparameters(lora_r=args.lora_r, lora_alpha=2 * args.lora_r), None).to(device)
    training_mode(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    prompts = ["upbeat electronic music with drums"] * batch_size
    batch = make_batch(processor, prompts, sequences, [1.0] * batch_size, device)
    forward = torch.compile(model) if args.compile else model
    positions = int(batch.targets.shape[-1])

    def step() -> None:
        with precision:
            loss = supervised_loss(forward, batch, cache.pad)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def synchronize() -> None:
        if on_gpu:
            torch.cuda.synchronize()

    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    warm = time.perf_counter()
    for _ in range(3 if args.compile else 1):  # warm-up (and compilation), not timed
        step()
    synchronize()
    warmup_seconds = time.perf_counter() - warm
    timed = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    elapsed = time.perf_counter() - timed
    if args.profile:
        _profile(step, synchronize, on_gpu)
    tokens_per_step = batch_size * num_codebooks * positions
    result = {
        "model": which,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if on_gpu else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "weights": args.weights,
        "attn": args.attn,
        "compile": args.compile,
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in params),
        "batch_size": batch_size,
        "audio_seconds_per_example": seconds,
        "decoder_positions": positions,
        "tokens_per_step": tokens_per_step,
        "timed_steps": steps,
        "seconds_per_step": round(elapsed / steps, 4),
        "steps_per_s": round(steps / elapsed, 3),
        "tokens_per_s": round(steps * tokens_per_step / elapsed, 1),
        "audio_seconds_per_s": round(steps * batch_size * seconds / elapsed, 3),
        "warmup_seconds": round(warmup_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_build_seconds": round(build_seconds, 2),
        **notes,
    }
    if on_gpu:
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def _profile(step: Any, synchronize: Any, on_gpu: bool) -> None:
    """Where three steps spend their time, by operator: device time first on a GPU, else CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        for _ in range(3):
            step()
        synchronize()
    table = profiler.key_averages().table
    if on_gpu:
        print(table(sort_by="cuda_time_total", row_limit=25), file=sys.stderr)
    print(table(sort_by="cpu_time_total", row_limit=25), file=sys.stderr)
    del torch


def _tiny() -> tuple[Any, Any, dict[str, Any]]:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from tunelab.musicgen.tiny import create_tiny_musicgen

    folder = create_tiny_musicgen(Path(tempfile.mkdtemp()) / "tiny")
    model = MusicgenForConditionalGeneration.from_pretrained(folder, use_safetensors=True)
    return model, AutoProcessor.from_pretrained(folder), {"architecture": "tunelab tiny MusicGen"}


def _small() -> tuple[Any, Any, dict[str, Any]]:
    """Random weights in facebook/musicgen-small's shapes (no download); the tiny model's tokenizer."""
    from transformers import (
        AutoProcessor,
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    from tunelab.musicgen.tiny import create_tiny_musicgen

    folder = create_tiny_musicgen(Path(tempfile.mkdtemp()) / "tokenizer-source")
    processor = AutoProcessor.from_pretrained(folder)
    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    audio = EncodecConfig(
        sampling_rate=32000,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048,
        target_bandwidths=[2.2],
        hidden_size=128,
        num_filters=64,
        num_lstm_layers=2,
        use_causal_conv=False,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048,
        num_codebooks=4,
        hidden_size=1024,
        ffn_dim=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        max_position_embeddings=2048,
        pad_token_id=2048,
        bos_token_id=2048,
        decoder_start_token_id=2048,
    )
    config = MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)
    notes = {
        "architecture": "facebook/musicgen-small shapes, random init: decoder 24x1024 (16 heads, ffn 4096), "
        "4 codebooks x 2048, T5-base-size text encoder (full size, not shrunk), 32 kHz EnCodec",
        "tokenizer": "tiny model's (prompts are short either way)",
    }
    return MusicgenForConditionalGeneration(config), processor, notes


if __name__ == "__main__":
    sys.exit(main())
