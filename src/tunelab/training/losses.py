"""Losses: token log-probabilities of delayed code sequences, supervised cross-entropy and DPO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tunelab.training.codes import Batch


@dataclass(frozen=True)
class SequenceScores:
    """Per example: summed log-probability of its real (non-pad) codes, and how many there are."""

    logp: torch.Tensor  # (B,)
    tokens: torch.Tensor  # (B,)


def sequence_scores(model: Any, batch: Batch, pad: int) -> SequenceScores:
    """Score every code of every codebook under `model`, skipping the pad positions of the delay pattern."""
    outputs = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        decoder_input_ids=batch.decoder_input_ids,
    )
    batch_size, num_codebooks, length = batch.targets.shape
    logits = outputs.logits.float().reshape(batch_size, num_codebooks, length, -1)  # (B, K, S, V)
    keep = batch.targets != pad
    targets = batch.targets.masked_fill(~keep, -100)
    nll = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100, reduction="none")
    logp = -nll.view(batch_size, num_codebooks, length).sum(dim=(1, 2))
    return SequenceScores(logp=logp, tokens=keep.sum(dim=(1, 2)))


def supervised_loss(model: Any, batch: Batch, pad: int, weighted: bool = True) -> torch.Tensor:
    """Mean cross-entropy per code of each example, averaged over the batch.

    With `weighted`, each example's term is scaled by its weight (rating / 5) before averaging over the
    batch size, so a 3-star clip pulls on the adapter 0.6 times as hard as a 5-star clip wherever it sits.
    (Dividing by the sum of the weights instead would cancel that in a batch of equal ratings.)
    """
    scores = sequence_scores(model, batch, pad)
    per_example = -scores.logp / scores.tokens.clamp(min=1)
    if not weighted:
        return per_example.mean()
    return (per_example * batch.weights).sum() / len(batch.weights)


@dataclass(frozen=True)
class DpoOutput:
    """The DPO loss and what it says about the pairs, averaged over the batch."""

    loss: torch.Tensor
    reward_margin: float
    reward_accuracy: float
    chosen_logp: float
    rejected_logp: float


def dpo_loss(
    chosen: SequenceScores,
    rejected: SequenceScores,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> DpoOutput:
    """Direct Preference Optimisation (Rafailov et al., 2023).

    The implicit reward of a clip is beta * (log pi(clip) - log ref(clip)): how much more likely the adapted
    model makes it than the base model does. The loss -log sigmoid(reward_chosen - reward_rejected) pushes
    the chosen clip's reward above the rejected one's while the log-ratio keeps the adapter near the base.
    """
    chosen_reward = beta * (chosen.logp - ref_chosen)
    rejected_reward = beta * (rejected.logp - ref_rejected)
    margin = chosen_reward - rejected_reward
    return DpoOutput(
        loss=-F.logsigmoid(margin).mean(),
        reward_margin=margin.mean().item(),
        reward_accuracy=(margin > 0).float().mean().item(),
        chosen_logp=chosen.logp.mean().item(),
        rejected_logp=rejected.logp.mean().item(),
    )
