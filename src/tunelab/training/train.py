"""The training recipe: arguments -> data -> base model -> LoRA -> loop -> save."""

from __future__ import annotations

import math
import random
import shutil
import signal
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.training.args import TrainingArgs, hparams_dict, parse_args
from tunelab.training.checkpoint import (
    TrainerState,
    file_sha256,
    identity_changes,
    load_checkpoint,
    read_best_marker,
    save_adapter,
    save_checkpoint,
    write_training_config,
)
from tunelab.training.codes import CodeCache
from tunelab.training.console import Console
from tunelab.training.data import Example, PreferenceExample, SupervisedExample, read_dataset, split_examples
from tunelab.training.errors import InputError, TrainingError
from tunelab.training.metrics import MetricsLog
from tunelab.training.model import (
    add_lora,
    autocast,
    disable_dropout,
    load_base_model,
    pick_device,
    trainable_parameters,
    training_mode,
)
from tunelab.training.objectives import Objective, PreferenceObjective, SupervisedObjective, evaluate


def main(argv: list[str] | None = None) -> int:
    """Run one training job; returns the exit status (0 done, 2 bad input, 1 failed, 130 interrupted, 143
    stopped by SIGTERM)."""
    console = Console()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        train(parse_args(argv), console)
    except TrainingError as error:
        console.fail(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        console.fail("interrupted; checkpoints written so far are kept")
        return 130
    except _Terminated:
        console.fail("stopped by SIGTERM; checkpoints written so far are kept")
        return 128 + signal.SIGTERM
    except Exception as error:  # a traceback helps whoever debugs it; the last line still says what broke
        traceback.print_exc(file=console.out)
        console.fail(f"training failed: {type(error).__name__}: {error}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class _Terminated(BaseException):
    """SIGTERM (how a server cancels a run), raised in the main thread like KeyboardInterrupt."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


# hyperparameters a resumed run may change; any other difference from the checkpoint is refused
_FREE_ON_RESUME = frozenset({"epochs", "save_every", "log_every"})


def train(args: TrainingArgs, console: Console) -> None:
    """Train one adapter as `args` says, reporting to `console`; raises TrainingError on failure."""
    hp = args.hparams
    started = time.monotonic()
    _quiet_libraries()
    console.header(
        f"TuneLab {args.training_type} training",
        {"data": args.data, "base model": args.base_model, "output": args.output_dir}
        | {name: getattr(hp, name) for name in hp.__dataclass_fields__}
        | ({"resume from": args.resume_from} if args.resume_from else {}),
    )

    # 1. data: every line checked (and every audio file opened) before a model is loaded
    examples = _rated(read_dataset(args.data, args.training_type), hp.min_rating)
    train_set, eval_set = split_examples(examples, hp.eval_fraction, hp.seed)
    if not eval_set:
        console.warn("too few examples to hold any out: eval loss is measured on the training examples")
        eval_set = train_set
    console.info(f"{len(train_set)} training and {len(eval_set)} eval examples from {args.data}")

    # 2. base model, audio codes, adapter
    _seed_everything(hp.seed)
    device = pick_device()
    console.info(f"loading {args.base_model} on {device}")
    base = load_base_model(args.base_model)
    base.model.to(device)
    cache = CodeCache(base.model, hp.max_audio_seconds, device)
    _encode_all(cache, examples)
    console.info(f"encoded {len(cache)} audio files with EnCodec")
    model = add_lora(base.model, hp, args.resume_from).to(device)
    if args.training_type == "preference":
        disable_dropout(model)
    training_mode(model)
    trainable, total = trainable_parameters(model)
    console.info(f"LoRA: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")

    objective: Objective
    if args.training_type == "supervised":
        objective = SupervisedObjective(base.processor, cache, device)
    else:
        objective = PreferenceObjective(base.processor, cache, device, hp.beta)
        with autocast(device):
            objective.score_reference(model, examples, hp.batch_size)

    dataset_sha256 = file_sha256(args.data)
    identity = {
        "training_type": args.training_type,
        "hyperparameters": hparams_dict(hp),
        "base_model_config_sha256": base.config_sha256,
        "dataset_sha256": dataset_sha256,
    }
    loop = _Loop(args, console, model, objective, device, train_set, eval_set, identity)
    if args.resume_from is not None:
        loop.resume(args.resume_from)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_training_config(
        args,
        base.model_id,
        base.config_sha256,
        dataset_sha256,
        {"device": str(device), "train_examples": len(train_set), "eval_examples": len(eval_set)},
    )
    loop.run()

    # 3. save and summarise
    state = loop.state
    save_adapter(model, args.output_dir / "final")
    with autocast(device):
        train_loss, train_values = evaluate(model, objective, train_set, hp.batch_size)
    summary: dict[str, Any] = {
        "final_loss": loop.last_loss if loop.last_loss is not None else train_loss,
        "best_eval_loss": state.best_eval_loss,
        "best_step": state.best_step,
        "train_loss": train_loss,
        **{f"train_{key}": value for key, value in train_values.items()},
        "steps": state.step,
        "epochs": hp.epochs,
        "train_examples": len(train_set),
        "eval_examples": len(eval_set),
        "runtime_seconds": round(time.monotonic() - started, 2),
    }
    loop.metrics.summary(summary)
    console.ok(
        f"{state.step} steps; final loss {summary['final_loss']:.4f}, best eval loss "
        f"{state.best_eval_loss:.4f} at step {state.best_step}; adapters in {args.output_dir}"
    )


class _Loop:
    """The optimisation loop: AdamW with warmup and cosine decay, gradient accumulation and clipping,
    an evaluation at the end of every epoch that keeps best/, and checkpoints every save_every steps."""

    def __init__(
        self,
        args: TrainingArgs,
        console: Console,
        model: Any,
        objective: Objective,
        device: torch.device,
        train_set: list[Example],
        eval_set: list[Example],
        identity: dict[str, Any],
    ) -> None:
        hp = args.hparams
        self.args, self.hp, self.console, self.model, self.objective = args, hp, console, model, objective
        self.device, self.train_set, self.eval_set, self.identity = device, train_set, eval_set, identity
        # one optimizer step per `gradient_accumulation_steps` batches
        batches_per_epoch = math.ceil(len(train_set) / hp.batch_size)
        self.steps_per_epoch = math.ceil(batches_per_epoch / hp.gradient_accumulation_steps)
        self.total_steps = self.steps_per_epoch * hp.epochs
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.param_names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.optimizer = torch.optim.AdamW(self.params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        warmup, total = int(round(self.total_steps * hp.warmup_ratio)), self.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: _warmup_cosine(s, warmup, total))
        self.state = TrainerState()
        self.last_loss: float | None = None
        self.last_eval = math.nan
        self.metrics: MetricsLog

    def resume(self, folder: Path) -> None:
        """Continue from checkpoint-N/: the same job (refused otherwise), its optimizer, schedule,
        random state and progress, and the best/ adapter it knew of."""
        checkpoint = load_checkpoint(folder, self.optimizer, self.scheduler, self.param_names)
        changes = identity_changes(checkpoint.identity, self.identity, _FREE_ON_RESUME)
        if changes:
            raise InputError(
                f"cannot resume from {folder}: it was trained with other settings ({'; '.join(changes)}); "
                f"only {', '.join(sorted(_FREE_ON_RESUME))} may change"
            )
        self.state = checkpoint.state
        if self.state.step >= self.total_steps:
            raise InputError(
                f"{folder} is at step {self.state.step} and this run ends at step {self.total_steps}; "
                "raise --epochs to train further"
            )
        self._restore_best(folder)
        self.console.info(f"resuming at step {self.state.step} of {self.total_steps}")

    def _restore_best(self, folder: Path) -> None:
        """Bring the checkpoint's best/ into this output dir, or forget it when it cannot be found."""
        state, best = self.state, self.args.output_dir / "best"
        if state.best_step is None:
            return
        for candidate in (best, folder.parent / "best"):
            marker = read_best_marker(candidate)
            if marker is not None and marker.get("step") == state.best_step:
                if candidate != best:
                    if best.exists():
                        shutil.rmtree(best)
                    shutil.copytree(candidate, best)
                return
        self.console.warn(
            f"the best adapter of step {state.best_step} is not beside {folder}; best/ will be chosen among "
            "the evaluations from here on"
        )
        state.best_eval_loss = state.best_step = None

    def run(self) -> None:
        hp, state = self.hp, self.state
        resumed = self.args.resume_from is not None
        self.metrics = MetricsLog(
            self.args.output_dir / "metrics.jsonl", self.console, keep_until_step=state.step if resumed else None
        )
        for epoch in range(state.step // self.steps_per_epoch, hp.epochs):
            batches = _epoch_batches(self.train_set, hp.batch_size, hp.seed, epoch)
            done = state.step - epoch * self.steps_per_epoch
            bar = self.console.progress(self.steps_per_epoch, f"epoch {epoch + 1}/{hp.epochs}", initial=done)
            accumulate = hp.gradient_accumulation_steps
            for first in range(done * accumulate, len(batches), accumulate):
                record = self._step(batches[first : first + accumulate])
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['learning_rate']:.2e}")
                bar.update(1)
                end_of_epoch = first + accumulate >= len(batches)
                if end_of_epoch:
                    record["eval_loss"] = self._evaluate()
                if end_of_epoch or state.step % hp.log_every == 0:
                    self.metrics.step(state.step, state.step / self.steps_per_epoch, record)
                if hp.save_every and state.step % hp.save_every == 0:
                    save_checkpoint(
                        self.model,
                        self.args.output_dir / f"checkpoint-{state.step}",
                        state,
                        self.optimizer,
                        self.scheduler,
                        self.param_names,
                        self.identity,
                    )
            bar.close()
            self.console.info(f"epoch {epoch + 1}: loss {self.last_loss:.4f}, eval loss {self.last_eval:.4f}")

    def _step(self, group: list[list[Example]]) -> dict[str, float]:
        """One optimizer step over a group of batches; each batch's gradient counts by its share of the
        group's examples. A non-finite loss or gradient stops the run before it can reach the weights."""
        group_size = sum(len(batch) for batch in group)
        loss_value, values = 0.0, dict[str, float]()
        for batch in group:
            with autocast(self.device):
                loss, extra = self.objective(self.model, batch)
            share = len(batch) / group_size
            (loss * share).backward()
            loss_value += float(loss.item()) * share
            values = {key: values.get(key, 0.0) + value * share for key, value in extra.items()}
        step = self.state.step + 1
        if not math.isfinite(loss_value):
            raise TrainingError(f"loss became {loss_value} at step {step}; try a lower learning rate")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.hp.max_grad_norm or math.inf))
        if not math.isfinite(grad_norm):
            raise TrainingError(f"gradient norm became {grad_norm} at step {step}; try a lower learning rate")
        learning_rate = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step = step
        self.last_loss = loss_value
        return {"loss": loss_value, "learning_rate": learning_rate, "grad_norm": grad_norm} | values

    def _evaluate(self) -> float:
        """Eval loss on the held-out examples; a new lowest one replaces best/."""
        state = self.state
        with autocast(self.device):
            self.last_eval, _ = evaluate(self.model, self.objective, self.eval_set, self.hp.batch_size)
        if state.best_eval_loss is None or self.last_eval < state.best_eval_loss:
            state.best_eval_loss, state.best_step = self.last_eval, state.step
            marker = {"step": state.step, "eval_loss": self.last_eval}
            save_adapter(self.model, self.args.output_dir / "best", marker)
        return self.last_eval


def _encode_all(cache: CodeCache, examples: list[Example]) -> None:
    """Encode every clip once up front; a clip that fails to decode is reported with its dataset line."""
    for example in examples:
        for path in _audio_paths(example):
            try:
                cache.sequence(path)
            except InputError as error:
                raise InputError(f"line {example.line}: {error}") from None


def _rated(examples: list[Example], min_rating: int) -> list[Example]:
    """Supervised examples rated at least `min_rating`; preference pairs pass through."""
    kept = [e for e in examples if not isinstance(e, SupervisedExample) or e.rating >= min_rating]
    if not kept:
        raise InputError(f"no example is rated {min_rating} or more (min_rating); nothing to train on")
    return kept


def _audio_paths(example: Example) -> list[Any]:
    if isinstance(example, PreferenceExample):
        return [example.chosen, example.rejected]
    return [example.audio]


def _epoch_batches(examples: Sequence[Example], batch_size: int, seed: int, epoch: int) -> list[list[Example]]:
    """The epoch's shuffled batches; the same for a seed and epoch, so a resumed run skips exactly what ran."""
    order = np.random.default_rng([seed, epoch]).permutation(len(examples)).tolist()
    shuffled = [examples[i] for i in order]
    return [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warmup to 1, then a cosine down to 0.1 at the last step."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, config notes) out of the person's view and of stderr."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
