"""What one batch of examples costs: supervised cross-entropy or DPO against the frozen base model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from tunelab.training.codes import CodeCache, make_batch
from tunelab.training.data import Example, PreferenceExample, SupervisedExample
from tunelab.training.losses import SequenceScores, dpo_loss, sequence_scores, supervised_loss
from tunelab.training.model import evaluating


class Objective(Protocol):
    def __call__(
        self, model: Any, examples: Sequence[Example], weighted: bool = True
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise and extra values to log for `examples`; `weighted=False` measures the
        plain loss (evaluation), without the per-example training weights."""
        ...


class SupervisedObjective:
    """Cross-entropy of the clip's codes given its prompt; in training, weighted by rating / 5."""

    def __init__(self, processor: Any, cache: CodeCache, device: torch.device) -> None:
        self.processor, self.cache, self.device = processor, cache, device

    def __call__(
        self, model: Any, examples: Sequence[Example], weighted: bool = True
    ) -> tuple[torch.Tensor, dict[str, float]]:
        rated = [example for example in examples if isinstance(example, SupervisedExample)]
        batch = make_batch(
            self.processor,
            [example.prompt for example in rated],
            [self.cache.sequence(example.audio) for example in rated],
            [example.rating / 5 for example in rated],
            self.device,
        )
        return supervised_loss(model, batch, self.cache.pad, weighted), {}


class PreferenceObjective:
    """DPO; the reference is the base model (adapter disabled), scored once per pair up front."""

    def __init__(self, processor: Any, cache: CodeCache, device: torch.device, beta: float) -> None:
        self.processor, self.cache, self.device, self.beta = processor, cache, device, beta
        self.reference: dict[int, tuple[float, float]] = {}

    def score_reference(self, model: Any, examples: Sequence[Example], batch_size: int) -> None:
        """Log-probabilities of every pair under the base model; it never changes, so once is enough."""
        with evaluating(model), model.disable_adapter():
            for start in range(0, len(examples), batch_size):
                pairs = _pairs(examples[start : start + batch_size])
                chosen, rejected = self._scores(model, pairs)
                for pair, c, r in zip(pairs, chosen.logp.tolist(), rejected.logp.tolist(), strict=True):
                    self.reference[pair.line] = (c, r)

    def __call__(
        self, model: Any, examples: Sequence[Example], weighted: bool = True
    ) -> tuple[torch.Tensor, dict[str, float]]:
        pairs = _pairs(examples)
        chosen, rejected = self._scores(model, pairs)
        ref = torch.tensor([self.reference[pair.line] for pair in pairs], device=self.device)
        out = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], self.beta)
        values = {
            "reward_margin": out.reward_margin,
            "reward_accuracy": out.reward_accuracy,
            "chosen_logp": out.chosen_logp,
            "rejected_logp": out.rejected_logp,
        }
        return out.loss, values

    def _scores(self, model: Any, pairs: list[PreferenceExample]) -> tuple[SequenceScores, SequenceScores]:
        """Chosen and rejected clips in one forward pass of 2B sequences."""
        prompts = [pair.prompt for pair in pairs]
        sequences = [self.cache.sequence(p.chosen) for p in pairs] + [self.cache.sequence(p.rejected) for p in pairs]
        batch = make_batch(self.processor, prompts + prompts, sequences, [1.0] * len(sequences), self.device)
        scores = sequence_scores(model, batch, self.cache.pad)
        half = len(pairs)
        return (
            SequenceScores(scores.logp[:half], scores.tokens[:half]),
            SequenceScores(scores.logp[half:], scores.tokens[half:]),
        )


def _pairs(examples: Sequence[Example]) -> list[PreferenceExample]:
    return [example for example in examples if isinstance(example, PreferenceExample)]


def evaluate(
    model: Any, objective: Objective, examples: Sequence[Example], batch_size: int
) -> tuple[float, dict[str, float]]:
    """Mean unweighted loss and mean extra values over `examples`, without dropout or gradients."""
    totals: dict[str, float] = {}
    loss_total = 0.0
    with evaluating(model):
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            loss, values = objective(model, chunk, weighted=False)
            loss_total += loss.item() * len(chunk)
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value * len(chunk)
    count = max(1, len(examples))
    return loss_total / count, {key: value / count for key, value in totals.items()}
