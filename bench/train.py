"""Benchmark LoRA training steps on the CPU (or whatever device is found) and print JSON.

    python bench/train.py                     # tiny MusicGen, then a random musicgen-small-sized model
    python bench/train.py --which tiny --steps 20

Each model runs in its own subprocess so that its peak RSS is its own. Figures: optimizer steps per second,
seconds of training audio per second, peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--which", choices=("tiny", "small", "both"), default="both")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 tiny, 3 small)")
    parser.add_argument("--seconds", type=float, default=None, help="audio per example (default: 5 tiny, 5 small)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=16)
    args = parser.parse_args(argv)
    if args.which == "both":
        results = [_in_subprocess(name, args) for name in ("tiny", "small")]
        print(json.dumps({"results": results}, indent=2))
        return 0
    print(json.dumps(bench(args.which, args)))
    return 0


def _in_subprocess(which: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--which", which, "--batch-size", str(args.batch_size)]
    command += ["--lora-r", str(args.lora_r)]
    command += ["--steps", str(args.steps)] if args.steps else []
    command += ["--seconds", str(args.seconds)] if args.seconds else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench(which: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers.utils import logging as hf_logging

    from tunelab.training.args import Hyperparameters
    from tunelab.training.codes import CodeCache, make_batch
    from tunelab.training.losses import supervised_loss
    from tunelab.training.model import add_lora, autocast, pick_device

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.manual_seed(0)
    steps = args.steps or (20 if which == "tiny" else 3)
    seconds = args.seconds or 5.0
    device = pick_device()
    started = time.perf_counter()
    model, processor, notes = _tiny() if which == "tiny" else _small()
    model.to(device)
    build_seconds = time.perf_counter() - started
    cache = CodeCache(model, seconds, device)
    frames = int(seconds * model.config.audio_encoder.frame_rate)
    # random codes: the benchmark measures the decoder step, and a random EnCodec's codebooks are empty anyway
    codes = torch.randint(0, model.config.decoder.vocab_size, (args.batch_size, 4, frames))
    sequences = [cache._delayed(c) for c in codes]
    model = add_lora(model, Hyperparameters(lora_r=args.lora_r, lora_alpha=2 * args.lora_r), None).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    prompts = ["upbeat electronic music with drums"] * args.batch_size
    batch = make_batch(processor, prompts, sequences, [1.0] * args.batch_size, device)

    def step() -> None:
        with autocast(device):
            loss = supervised_loss(model, batch, cache.pad)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up step, not timed
    timed = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - timed
    return {
        "model": which,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in params),
        "batch_size": args.batch_size,
        "audio_seconds_per_example": seconds,
        "timed_steps": steps,
        "seconds_per_step": round(elapsed / steps, 4),
        "steps_per_s": round(steps / elapsed, 3),
        "audio_seconds_per_s": round(steps * args.batch_size * seconds / elapsed, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_build_seconds": round(build_seconds, 2),
        **notes,
    }


def _tiny() -> tuple[Any, Any, dict[str, Any]]:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from tunelab.training.tiny import create_tiny_musicgen

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

    from tunelab.training.tiny import create_tiny_musicgen

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
