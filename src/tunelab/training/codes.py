"""Turn audio into MusicGen decoder sequences: EnCodec codes laid out in the codebook delay pattern.

MusicGen predicts K codebooks per audio frame in one decoder step by delaying codebook k by k steps, so
codebook k at frame t is predicted together with (and conditioned on) codebooks < k of the same frame:

    position   0  1   2   3   4  ...            (P = pad/start token, cN = code of frame N)
    book 0     P  c0  c1  c2  c3 ...  cT-1  P   P   P
    book 1     P  P   c0  c1  c2 ...  cT-2 cT-1 P   P
    book 2     P  P   P   c0  c1 ...  cT-3 cT-2 cT-1 P
    book 3     P  P   P   P   c0 ...  cT-4 cT-3 cT-2 cT-1

The decoder reads positions 0..S-2 and is trained to predict positions 1..S-1; every P target is ignored.
Frames that only cover zero padding are turned into P as well, so padding never counts in the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunelab.training.data import Clip, load_clip
from tunelab.training.errors import InputError


@dataclass(frozen=True)
class Batch:
    """One forward pass worth of examples, already on the device."""

    input_ids: torch.Tensor  # (B, text_len) prompt tokens
    attention_mask: torch.Tensor  # (B, text_len)
    decoder_input_ids: torch.Tensor  # (B * K, S) delayed codes the decoder reads
    targets: torch.Tensor  # (B, K, S) delayed codes it must predict; pad where ignored
    weights: torch.Tensor  # (B,) per-example loss weights


class CodeCache:
    """Encodes each audio file once with the model's EnCodec and keeps its delayed sequence."""

    def __init__(self, model: Any, max_seconds: float, device: torch.device) -> None:
        self.encodec = model.audio_encoder
        self.decoder = model.decoder
        self.pad = int(model.config.decoder.pad_token_id)
        self.num_codebooks = int(model.config.decoder.num_codebooks)
        self.sampling_rate = int(model.config.audio_encoder.sampling_rate)
        self.frame_rate = float(model.config.audio_encoder.frame_rate)
        self.bandwidth = _bandwidth_for(self.encodec, self.num_codebooks)
        self.max_seconds = max_seconds
        self.device = device
        self._sequences: dict[Path, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._sequences)

    def sequence(self, path: Path) -> torch.Tensor:
        """The (K, S) delayed sequence for the audio at `path`, encoded on first use."""
        key = path.resolve()
        if key not in self._sequences:
            clip = load_clip(path, self.sampling_rate, self.max_seconds)
            self._sequences[key] = self._delayed(self._encode(clip)).cpu()
        return self._sequences[key]

    def _encode(self, clip: Clip) -> torch.Tensor:
        """(K, T) codes, with frames past the end of the real audio replaced by pad."""
        audio = torch.from_numpy(clip.samples).to(self.device).view(1, 1, -1)
        with torch.no_grad():
            codes = self.encodec.encode(audio, bandwidth=self.bandwidth).audio_codes[0, 0]
        valid_frames = math.ceil(clip.valid * self.frame_rate / self.sampling_rate)
        codes[:, valid_frames:] = self.pad
        return codes

    def _delayed(self, codes: torch.Tensor) -> torch.Tensor:
        """Prepend the start column and apply MusicGen's own delay pattern (see module docstring)."""
        num_codebooks, frames = codes.shape
        start = torch.full((num_codebooks, 1), self.pad, dtype=codes.dtype, device=codes.device)
        with_start = torch.cat([start, codes], dim=1)
        _, pattern = self.decoder.build_delay_pattern_mask(
            with_start, pad_token_id=self.pad, max_length=frames + 1 + num_codebooks
        )
        # -1 marks the slot after each codebook's last code, left open for generation; nothing to learn there
        return pattern.masked_fill(pattern == -1, self.pad)


def _bandwidth_for(encodec: Any, num_codebooks: int) -> float:
    """The EnCodec bandwidth that yields exactly as many codebooks as the decoder predicts."""
    for bandwidth in encodec.config.target_bandwidths:
        if encodec.quantizer.get_num_quantizers_for_bandwidth(bandwidth) == num_codebooks:
            return float(bandwidth)
    raise InputError(f"the model's EnCodec has no bandwidth giving {num_codebooks} codebooks")


def make_batch(
    processor: Any,
    prompts: list[str],
    sequences: list[torch.Tensor],
    weights: list[float],
    device: torch.device,
) -> Batch:
    """Tokenise the prompts and stack the delayed sequences into decoder inputs and targets."""
    text = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    stacked = torch.stack(sequences)  # (B, K, S + 1)
    batch_size, num_codebooks, length = stacked.shape
    return Batch(
        input_ids=text["input_ids"].to(device),
        attention_mask=text["attention_mask"].to(device),
        decoder_input_ids=stacked[:, :, :-1].reshape(batch_size * num_codebooks, length - 1).to(device),
        targets=stacked[:, :, 1:].to(device),
        weights=torch.tensor(weights, dtype=torch.float32, device=device),
    )
