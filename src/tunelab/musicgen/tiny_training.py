"""How the tiny MusicGen learns to make sound: its codec, its codebooks and its language model, on synthetic clips.

A randomly initialised MusicGen decodes every code sequence to the same noise. `train_tiny_musicgen` teaches the
tiny one, in a few minutes on a CPU, with the melodic clips of `synth`:

1. codec: EnCodec's encoder and decoder as a continuous autoencoder (the quantizer is skipped: HF's has no
   straight-through estimator, so no gradient would pass it), on multi-resolution log-STFT, mel and loudness losses;
2. codebooks: k-means (64 entries) on the encoder's frames, level by level on what the previous levels leave;
3. decoder tune: the codec's decoder once more, now on quantised latents, so that codes decode well;
4. language model: the T5 text encoder and the MusicGen decoder on (prompt, codes) pairs with MusicGen's loss:
   cross-entropy over the codebooks laid out in the delay pattern, so that the prompt's words steer the codes.

Everything is seeded: the same seed on the same machine gives the same weights.
"""

from __future__ import annotations

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

    codec_steps: int = 700
    codec_batch: int = 8
    codec_crop_frames: int = 14  # 0.28 s crops
    codec_lr: float = 3e-3
    codec_clips: int = 192
    stft_sizes: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    kmeans_clips: int = 256
    kmeans_iterations: int = 20
    decoder_tune_steps: int = 150
    lm_clips: int = 768
    lm_steps: int = 900
    lm_batch: int = 32
    lm_lr: float = 3e-3
    lm_text_dropout: float = 0.1  # share of prompts emptied, so that the model also knows the unconditional case

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

    losses = SpectralLosses(recipe.stft_sizes, encodec.config.sampling_rate)
    params = [*encodec.encoder.parameters(), *encodec.decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=recipe.codec_lr)
    encodec.train()
    for step in range(recipe.codec_steps):
        _set_lr(optimizer, recipe.codec_lr, step, recipe.codec_steps)
        target = _crops(clips, recipe.codec_batch, recipe.codec_crop_frames * _hop(encodec), generator)
        output = encodec.decoder(encodec.encoder(target[:, None]))[:, 0, : target.shape[-1]]
        _step(optimizer, params, losses(output, target))
        advance(1)
    encodec.eval()


def tune_decoder(
    encodec: Any, clips: torch.Tensor, recipe: Recipe, generator: torch.Generator, advance: Advance
) -> None:
    """The codec's decoder alone, on the quantised latents of the (frozen) encoder."""
    import torch

    losses = SpectralLosses(recipe.stft_sizes, encodec.config.sampling_rate)
    params = list(encodec.decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=recipe.codec_lr / 3)
    bandwidth = float(encodec.config.target_bandwidths[0])
    encodec.decoder.train()
    for step in range(recipe.decoder_tune_steps):
        _set_lr(optimizer, recipe.codec_lr / 3, step, recipe.decoder_tune_steps)
        target = _crops(clips, recipe.codec_batch, recipe.codec_crop_frames * _hop(encodec), generator)
        with torch.no_grad():
            latents = encodec.encoder(target[:, None])
            codes = encodec.quantizer.encode(latents, bandwidth)
            quantised = encodec.quantizer.decode(codes)
        output = encodec.decoder(quantised)[:, 0, : target.shape[-1]]
        _step(optimizer, params, losses(output, target))
        advance(1)
    encodec.eval()


class SpectralLosses:
    """L1 distance of log STFT magnitudes at several resolutions, of log mel bands, and of log frame loudness.

    The log-STFT terms shape the harmonics; the coarse ones (64 and 128 points) give a gradient toward the right
    register even when the pitch is still far off; the loudness term keeps silence from being the easy answer.
    """

    def __init__(self, sizes: tuple[int, ...], sampling_rate: int) -> None:
        import torch

        self.sizes = sizes
        self.windows = {size: torch.hann_window(size) for size in sizes}
        self.mel = {size: _mel_filters(size, size // 16, sampling_rate) for size in sizes if size >= 512}

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch

        total = _log_l1(_frame_power(output), _frame_power(target), 1e-4)
        for size in self.sizes:
            spec_out, spec_target = self._magnitudes(output, size), self._magnitudes(target, size)
            total = total + _log_l1(spec_out, spec_target, 0.1) / len(self.sizes)
            total = total + (spec_out - spec_target).abs().mean() / len(self.sizes)
            if size in self.mel:
                filters = self.mel[size]
                total = total + _log_l1(filters @ spec_out, filters @ spec_target, 1e-2) / len(self.mel)
        return torch.as_tensor(total)

    def _magnitudes(self, audio: torch.Tensor, size: int) -> torch.Tensor:
        import torch

        return torch.stft(audio, size, size // 4, window=self.windows[size], return_complex=True).abs()


def _log_l1(a: torch.Tensor, b: torch.Tensor, floor: float) -> torch.Tensor:
    return ((a + floor).log() - (b + floor).log()).abs().mean()


def _frame_power(audio: torch.Tensor, frame: int = 320) -> torch.Tensor:
    usable = audio.shape[-1] // frame * frame
    return audio[..., :usable].reshape(*audio.shape[:-1], -1, frame).pow(2).mean(-1)


def _mel_filters(n_fft: int, bands: int, sampling_rate: int) -> torch.Tensor:
    """(bands, n_fft // 2 + 1) triangular filters evenly spaced on the mel scale from 30 Hz to 12 kHz."""
    import torch

    def mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(np.array(30.0)), mel(np.array(12_000.0)), bands + 2) / 2595.0) - 1.0)
    frequencies = np.fft.rfftfreq(n_fft, 1.0 / sampling_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    filters = np.clip(
        np.minimum((frequencies - lower) / (centre - lower), (upper - frequencies) / (upper - centre)), 0, None
    )
    filters /= np.maximum(filters.sum(axis=1, keepdims=True), 1e-9)
    return torch.tensor(filters, dtype=torch.float32)


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
        _step(optimizer, params, code_loss(model, tokenizer, batch_prompts, sequences[picks], pad))
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


def _crops(clips: torch.Tensor, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random clips cut at one random frame-aligned offset to `length` samples."""
    import torch

    picks = torch.randint(len(clips), (count,), generator=generator)
    frames = (clips.shape[1] - length) // 640
    offset = int(torch.randint(frames + 1, (1,), generator=generator)) * 640
    return clips[picks, offset : offset + length]


def _set_lr(optimizer: torch.optim.Optimizer, peak: float, step: int, total: int) -> None:
    """Linear warmup over the first 5% (at least 10 steps), then cosine decay to zero."""
    warmup = max(10, total // 20)
    factor = min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * step / total))
    for group in optimizer.param_groups:
        group["lr"] = peak * factor


def _step(optimizer: torch.optim.Optimizer, params: list[Any], loss: torch.Tensor) -> None:
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
