"""Sampling with one random generator per request, so a seed makes a clip reproducible whatever it is batched with.

`generate(do_sample=True)` draws every row of a batch from one global generator: a request's clip would depend on
what else shared its batch. `SeededSampler` is a logits processor that draws each request's next tokens from its own
`torch.Generator` (top-k, temperature, MusicGen's defaults) and returns scores whose maximum is the drawn token, so
greedy decoding (`do_sample=False`) keeps exactly those draws.

With classifier-free guidance MusicGen doubles the batch (conditional rows, then unconditional) and appends its
guidance processor after the processors it is given, so this one sees the doubled scores: it applies the guidance
itself and writes the same one-hot scores into both halves, which the guidance processor then leaves as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

TOP_K = 250  # MusicGen's default
_OTHER = -1e4  # finite, so that guidance's cond - uncond stays 0 for tokens that were not drawn


class SeededSampler(LogitsProcessor):
    def __init__(self, seeds: Sequence[int], num_codebooks: int, guidance_scale: float | None = None,
                 top_k: int = TOP_K, temperature: float = 1.0) -> None:  # fmt: skip
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.num_codebooks = num_codebooks
        self.guidance_scale = guidance_scale if guidance_scale and guidance_scale > 1 else None
        self.top_k = top_k
        self.temperature = temperature

    def __call__(self, input_ids: Any, scores: torch.Tensor) -> torch.Tensor:
        rows = len(self.generators) * self.num_codebooks
        doubled = scores.shape[0] == 2 * rows
        logits = scores[:rows].float()
        if doubled and self.guidance_scale is not None:
            unconditional = scores[rows:].float()
            logits = unconditional + (logits - unconditional) * self.guidance_scale
        logits = logits / self.temperature
        k = min(self.top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        probs = torch.softmax(logits.masked_fill(logits < kth, float("-inf")), dim=-1).cpu()
        k_rows = self.num_codebooks
        picks = torch.cat([torch.multinomial(probs[i * k_rows : (i + 1) * k_rows], 1, generator=generator)
                           for i, generator in enumerate(self.generators)]).to(scores.device)  # fmt: skip
        chosen = torch.full_like(scores, _OTHER)
        chosen.scatter_(1, picks.repeat(2, 1) if doubled else picks, 0.0)
        return chosen
