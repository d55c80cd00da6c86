"""How the tiny MusicGen learns to make sound: its codec, its codebooks and its language model, on synthetic clips.

A randomly initialised MusicGen decodes every code sequence to the same noise. `train_tiny_musicgen` teaches the
tiny one, in a few minutes on a CPU, with the melodic clips of `synth`:

1. codec: EnCodec's encoder and decoder as a continuous autoencoder (the quantizer is skipped: HF's has no
   straight-through estimator, so no gradient would pass it), on STFT magnitude losses at two resolutions;
2. codebooks: k-means (64 entries) on the encoder's frames, level by level on what the previous levels leave;
3. decoder tune: the codec's decoder once more, now on quantised latents, so that codes decode well;
4. language model: the T5 text encoder and the MusicGen decoder on (prompt, codes) pairs with MusicGen's loss:
   cross-entropy over the codebooks laid out in the delay pattern, so that the prompt's words steer the codes.

Everything is seeded: the same seed on the same machine gives the same weights.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunelab.musicgen import synth

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Advance = Callable[[int], None]  # reports that n more training steps are done


@dataclass(frozen=True)
class Recipe:
    """The training budget and settings; `tiny.RECIPE_VERSION` names one set of them (change both together)."""

    codec_steps: int = 500
    codec_batch: int = 8
    codec_crop_frames: int = 14  # 0.28 s crops
    codec_lr: float = 3e-3
    encoder_input_gain: float = 10.0
    codec_clips: int = 192
    stft_sizes: tuple[int, ...] = (256, 1024)
    # added to STFT magnitudes before the log (0.01 kept brightness a little better, pitch worse)
    log_floor: float = 0.1
    kmeans_clips: int = 256
    kmeans_iterations: int = 20
    decoder_tune_steps: int = 100
    lm_clips: int = 512
    lm_steps: int = 600
    lm_batch: int = 32
    lm_lr: float = 3e-3
    lm_text_dropout: float = 0.1  # share of prompts emptied, so that the model also knows the unconditional case
    reseed_clips: int = 96  # another seed: its own clips and batches, a short stretch at a low rate
    reseed_steps: int = 40
    reseed_lr: float = 5e-4

    @property
    def total_steps(self) -> int:
        return self.codec_steps + self.decoder_tune_steps + self.lm_steps


def train_tiny_musicgen(model: Any, tokenizer: Any, seed: int, recipe: Recipe, advance: Advance) -> None:
    """Train every part of `model` (a freshly initialised tiny MusicGen) in place; see the module docstring."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    encodec = model.audio_encoder
    log.info("tiny MusicGen: training the codec (%d steps)", recipe.codec_steps)
    codec_clips = _clips(synth.random_pairs(int(rng.integers(2**31))), recipe.codec_clips)
    train_codec(encodec, codec_clips, recipe, _generator(rng), advance)
    log.info("tiny MusicGen: fitting the codebooks")
    fit_codebooks(encodec, codec_clips[: recipe.kmeans_clips], recipe.kmeans_iterations, _generator(rng))
    log.info("tiny MusicGen: tuning the codec's decoder on codes (%d steps)", recipe.decoder_tune_steps)
    tune_decoder(encodec, codec_clips, recipe, _generator(rng), advance)
    log.info("tiny MusicGen: training the language model (%d steps)", recipe.lm_steps)
    pairs = synth.pairs(recipe.lm_clips, int(rng.integers(2**31)))
    train_language_model(model, tokenizer, pairs, recipe, _generator(rng), advance)
    model.eval()


def reseed_tiny_musicgen(model: Any, tokenizer: Any, seed: int, recipe: Recipe, advance: Advance) -> None:
    """Make a trained tiny MusicGen the model of another `seed`: its language model trains a little more on clips
    and batches drawn from that seed, so the weights differ, deterministically, while the sound stays as good."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pairs = synth.pairs(recipe.reseed_clips, int(rng.integers(2**31)))
    short = dataclasses.replace(recipe, lm_steps=recipe.reseed_steps, lm_lr=recipe.reseed_lr)
    train_language_model(model, tokenizer, pairs, short, _generator(rng), advance)


def _generator(rng: np.random.Generator) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def _clips(stream: Iterator[tuple[str, np.ndarray]], count: int) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.stack([next(stream)[1] for _ in range(count)]))


# --- 1. codec --------------------------------------------------------------------------------------------------


def train_codec(
    encodec: Any, clips: torch.Tensor, recipe: Recipe, generator: torch.Generator, advance: Advance
) -> None:
    """Encoder -> decoder on random crops of `clips` (N, samples), Adam with warmup and cosine decay."""
    import torch

    amplify_input(encodec, recipe.encoder_input_gain)
    losses = SpectralLosses(recipe.stft_sizes, recipe.log_floor)
    params = [*encodec.encoder.parameters(), *encodec.decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=recipe.codec_lr)
    encodec.train()
    for step in range(recipe.codec_steps):
        _set_lr(optimizer, recipe.codec_lr, step, recipe.codec_steps)
        target = _crops(clips, recipe.codec_batch, recipe.codec_crop_frames, _hop(encodec), generator)
        output = encodec.decoder(encodec.encoder(target[:, None]))[:, 0, : target.shape[-1]]
        _step(optimizer, params, losses(output, target), "codec", step)
        advance(1)
    encodec.eval()


def tune_decoder(
    encodec: Any, clips: torch.Tensor, recipe: Recipe, generator: torch.Generator, advance: Advance
) -> None:
    """The codec's decoder alone, on the quantised latents of the (frozen) encoder."""
    import torch

    losses = SpectralLosses(recipe.stft_sizes, recipe.log_floor)
    params = list(encodec.decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=recipe.codec_lr / 3)
    bandwidth = float(encodec.config.target_bandwidths[0])
    encodec.decoder.train()
    for step in range(recipe.decoder_tune_steps):
        _set_lr(optimizer, recipe.codec_lr / 3, step, recipe.decoder_tune_steps)
        target = _crops(clips, recipe.codec_batch, recipe.codec_crop_frames, _hop(encodec), generator)
        with torch.no_grad():
            latents = encodec.encoder(target[:, None])
            codes = encodec.quantizer.encode(latents, bandwidth)
            quantised = encodec.quantizer.decode(codes)
        output = encodec.decoder(quantised)[:, 0, : target.shape[-1]]
        _step(optimizer, params, losses(output, target), "decoder tune", step)
        advance(1)
    encodec.eval()


def amplify_input(encodec: Any, gain: float) -> None:
    """Scale the encoder's first convolution by `gain`, as if its input were that much louder.

    At audio levels (|x| < 1) a freshly initialised encoder is nearly linear: its ELUs barely bend, so its strided
    convolutions average the oscillating waveform away and the 50 Hz latents hardly vary (std 0.01 over time). It
    then learns little, and in some seeds nothing. Louder, the ELUs rectify from the first step, the latents carry
    each frame's spectrum, and the codec trains reliably.
    """
    import torch

    conv = encodec.encoder.layers[0].conv
    with torch.no_grad():
        if hasattr(conv, "parametrizations"):  # weight norm: weight = original0 (magnitude) * original1 / |original1|
            conv.parametrizations.weight.original0.mul_(gain)
        else:
            conv.weight.mul_(gain)


class SpectralLosses:
    """L1 distances of STFT magnitudes and of their logs (floored at `floor`), averaged over a few resolutions.

    Magnitudes only: the decoder may choose its own phases. (Also matching frame loudness, octave-band energies,
    mel bands or a pre-emphasised signal trained this tiny codec worse in the same number of steps.)
    """

    def __init__(self, sizes: tuple[int, ...], floor: float) -> None:
        import torch

        self.windows = {size: torch.hann_window(size) for size in sizes}
        self.floor = floor

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch

        total = torch.zeros(())
        for size, window in self.windows.items():
            out = torch.stft(output, size, size // 4, window=window, return_complex=True).abs()
            ref = torch.stft(target, size, size // 4, window=window, return_complex=True).abs()
            log_distance = ((out + self.floor).log() - (ref + self.floor).log()).abs().mean()
            total = total + log_distance + (out - ref).abs().mean()
        return total / len(self.windows)


# --- 2. codebooks ----------------------------------------------------------------------------------------------


def fit_codebooks(encodec: Any, clips: torch.Tensor, iterations: int, generator: torch.Generator) -> None:
    """k-means on the encoder's frames for the first codebook, then on what it leaves for the next, and so on."""
    import torch

    with torch.no_grad():
        latents = torch.cat([encodec.encoder(batch[:, None]) for batch in clips.split(32)])  # (N, dim, frames)
        residual = latents.transpose(1, 2).reshape(-1, latents.shape[1])
        for layer in encodec.quantizer.layers:
            codebook = layer.codebook
            centres = kmeans(residual, codebook.codebook_size, iterations, generator)
            codebook.embed.copy_(centres)
            codebook.embed_avg.copy_(centres)
            codebook.cluster_size.fill_(1.0)
            residual = residual - codebook.decode(codebook.encode(residual))


def kmeans(points: torch.Tensor, count: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """`count` centres of `points` (N, dim): k-means++ seeding, then Lloyd iterations; an empty cluster is re-seeded."""
    import torch

    centres = _kmeans_plus_plus(points, count, generator)
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        sizes = torch.bincount(assignment, minlength=count).to(points.dtype)
        empty = sizes == 0
        centres = torch.where(empty[:, None], centres, sums / sizes.clamp(min=1)[:, None])
        if empty.any():
            picks = torch.randint(len(points), (int(empty.sum()),), generator=generator)
            centres[empty] = points[picks]
    return centres


def _kmeans_plus_plus(points: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    import torch

    chosen = [int(torch.randint(len(points), (1,), generator=generator))]
    distance = (points - points[chosen[0]]).pow(2).sum(dim=1)
    for _ in range(count - 1):
        weights = distance / distance.sum() if distance.sum() > 0 else torch.ones_like(distance)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
        distance = torch.minimum(distance, (points - points[chosen[-1]]).pow(2).sum(dim=1))
    return points[chosen].clone()


# --- 4. language model -----------------------------------------------------------------------------------------


def train_language_model(
    model: Any, tokenizer: Any, pairs: list[tuple[str, np.ndarray]], recipe: Recipe, generator: torch.Generator,
    advance: Advance,
) -> None:  # fmt: skip
    """Text encoder and decoder on (prompt, clip) pairs: MusicGen's cross-entropy over delayed codes."""
    import torch

    sequences = delayed_codes(model, torch.from_numpy(np.stack([clip for _, clip in pairs])))
    prompts = [prompt for prompt, _ in pairs]
    params = [p for name, p in model.named_parameters() if not name.startswith("audio_encoder.")]
    optimizer = torch.optim.AdamW(params, lr=recipe.lm_lr, weight_decay=0.01)
    pad = int(model.config.decoder.pad_token_id)
    model.train()
    model.audio_encoder.eval()
    for step in range(recipe.lm_steps):
        _set_lr(optimizer, recipe.lm_lr, step, recipe.lm_steps)
        picks = torch.randint(len(pairs), (recipe.lm_batch,), generator=generator)
        drop = torch.rand(recipe.lm_batch, generator=generator) < recipe.lm_text_dropout
        batch_prompts = [
            "" if dropped else prompts[i] for i, dropped in zip(picks.tolist(), drop.tolist(), strict=True)
        ]
        loss = code_loss(model, tokenizer, batch_prompts, sequences[picks], pad)
        _step(optimizer, params, loss, "language model", step)
        advance(1)
    model.eval()


def delayed_codes(model: Any, clips: torch.Tensor) -> torch.Tensor:
    """(N, K, frames + K + 1) decoder sequences of `clips` (N, samples): start column, codes, delay pattern."""
    import torch

    encodec, decoder = model.audio_encoder, model.decoder
    pad = int(model.config.decoder.pad_token_id)
    bandwidth = float(encodec.config.target_bandwidths[0])
    with torch.no_grad():
        codes = torch.cat(
            [encodec.encode(batch[:, None], bandwidth=bandwidth).audio_codes[0] for batch in clips.split(64)]
        )
    count, books, frames = codes.shape
    start = torch.full((count, books, 1), pad, dtype=codes.dtype)
    with_start = torch.cat([start, codes], dim=2).reshape(count * books, frames + 1)
    _, pattern = decoder.build_delay_pattern_mask(with_start, pad_token_id=pad, max_length=frames + 1 + books)
    return pattern.masked_fill(pattern == -1, pad).reshape(count, books, -1)


def code_loss(model: Any, tokenizer: Any, prompts: list[str], sequences: torch.Tensor, pad: int) -> torch.Tensor:
    """Mean cross-entropy of every non-pad code of `sequences` (B, K, S) given the prompts (reads 0..S-2)."""
    import torch.nn.functional as F

    text = tokenizer(prompts, padding=True, return_tensors="pt")
    batch, books, length = sequences.shape
    logits = model(
        input_ids=text["input_ids"],
        attention_mask=text["attention_mask"],
        decoder_input_ids=sequences[:, :, :-1].reshape(batch * books, length - 1),
    ).logits.reshape(batch, books, length - 1, -1)
    targets = sequences[:, :, 1:]
    targets = targets.masked_fill(targets == pad, -100)
    return F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100)


# --- shared ----------------------------------------------------------------------------------------------------


def _hop(encodec: Any) -> int:
    return int(np.prod(encodec.config.upsampling_ratios))


def _crops(clips: torch.Tensor, count: int, frames: int, hop: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random clips, each cut to `frames` codec frames from one random frame boundary."""
    import torch

    picks = torch.randint(len(clips), (count,), generator=generator)
    offset = int(torch.randint((clips.shape[1] - frames * hop) // hop + 1, (1,), generator=generator)) * hop
    return clips[picks, offset : offset + frames * hop]


def _set_lr(optimizer: torch.optim.Optimizer, peak: float, step: int, total: int) -> None:
    """Linear warmup over the first 5% (at least 10 steps), then cosine decay to zero."""
    warmup = max(10, total // 20)
    factor = min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * step / total))
    for group in optimizer.param_groups:
        group["lr"] = peak * factor


def _step(optimizer: torch.optim.Optimizer, params: list[Any], loss: torch.Tensor, stage: str, step: int) -> None:
    import torch

    if step % 100 == 0:
        log.debug("tiny MusicGen: %s step %d loss %.4f", stage, step, loss.item())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
