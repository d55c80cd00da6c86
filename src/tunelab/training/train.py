"""The training recipe: arguments -> data -> base model -> LoRA -> loop -> save."""

from __future__ import annotations

import math
import random
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tunelab.training.args import TrainingArgs, parse_args
from tunelab.training.checkpoint import (
    TrainerState,
    load_checkpoint,
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
)
from tunelab.training.objectives import Objective, PreferenceObjective, SupervisedObjective, evaluate


def main(argv: list[str] | None = None) -> int:
    """Run one training job; returns the exit status (0 done, 2 bad input, 1 failed)."""
    console = Console()
    try:
        train(parse_args(argv), console)
    except TrainingError as error:
        console.fail(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        console.fail("interrupted; checkpoints written so far are kept")
        return 130
    except Exception as error:  # a traceback helps whoever debugs it; the last line still says what broke
        traceback.print_exc(file=console.out)
        console.fail(f"training failed: {type(error).__name__}: {error}")
        return 1
    return 0


def train(args: TrainingArgs, console: Console) -> None:
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
    args.output_dir.mkdir(parents=True, exist_ok=True)

    # 2. base model, audio codes, adapter
    _seed_everything(hp.seed)
    device = pick_device()
    console.info(f"loading {args.base_model} on {device}")
    base = load_base_model(args.base_model)
    base.model.to(device)
    cache = CodeCache(base.model, hp.max_audio_seconds, device)
    for example in examples:
        for path in _audio_paths(example):
            cache.sequence(path)
    console.info(f"encoded {len(cache)} audio files with EnCodec")
    model = add_lora(base.model, hp, args.resume_from).to(device)
    if args.training_type == "preference":
        disable_dropout(model)
    model.train()
    trainable, total = trainable_parameters(model)
    console.info(f"LoRA: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")

    objective: Objective
    if args.training_type == "supervised":
        objective = SupervisedObjective(base.processor, cache, device)
    else:
        objective = PreferenceObjective(base.processor, cache, device, hp.beta)
        with autocast(device):
            objective.score_reference(model, examples, hp.batch_size)

    # 3. optimizer and schedule; one optimizer step per `gradient_accumulation_steps` batches
    batches_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / hp.gradient_accumulation_steps)
    total_steps = steps_per_epoch * hp.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    warmup = int(round(total_steps * hp.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_cosine(s, warmup, total_steps))
    state = TrainerState()
    if args.resume_from is not None:
        state = load_checkpoint(args.resume_from, optimizer, scheduler)
        console.info(f"resuming at step {state.step} of {total_steps}")
    write_training_config(
        args,
        base.config_sha256,
        {"device": str(device), "train_examples": len(train_set), "eval_examples": len(eval_set)},
    )
    metrics = MetricsLog(args.output_dir / "metrics.jsonl", console, append=args.resume_from is not None)

    # 4. the loop
    last_loss: float | None = None
    last_eval = math.nan
    for epoch in range(state.step // steps_per_epoch, hp.epochs):
        batches = _epoch_batches(train_set, hp.batch_size, hp.seed, epoch)
        done = state.step - epoch * steps_per_epoch
        bar = console.progress(steps_per_epoch, f"epoch {epoch + 1}/{hp.epochs}", initial=done)
        for first in range(done * hp.gradient_accumulation_steps, len(batches), hp.gradient_accumulation_steps):
            group = batches[first : first + hp.gradient_accumulation_steps]
            group_size = sum(len(batch) for batch in group)
            loss_value, values = 0.0, dict[str, float]()
            for batch in group:
                with autocast(device):
                    loss, extra = objective(model, batch)
                # each batch's gradient counts by its share of the examples in this optimizer step
                share = len(batch) / group_size
                (loss * share).backward()
                loss_value += float(loss.item()) * share
                values = {key: values.get(key, 0.0) + value * share for key, value in extra.items()}
            grad_norm = torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm or math.inf)
            learning_rate = float(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            last_loss = loss_value
            if not math.isfinite(loss_value):
                raise TrainingError(f"loss became {loss_value} at step {state.step}; try a lower learning rate")
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{learning_rate:.2e}")
            bar.update(1)

            record = {"loss": loss_value, "learning_rate": learning_rate, "grad_norm": float(grad_norm)} | values
            end_of_epoch = first + hp.gradient_accumulation_steps >= len(batches)
            if end_of_epoch:
                with autocast(device):
                    last_eval, _ = evaluate(model, objective, eval_set, hp.batch_size)
                record["eval_loss"] = last_eval
                if state.best_eval_loss is None or last_eval < state.best_eval_loss:
                    state.best_eval_loss, state.best_step = last_eval, state.step
                    save_adapter(model, args.output_dir / "best")
            if end_of_epoch or state.step % hp.log_every == 0:
                metrics.step(state.step, state.step / steps_per_epoch, record)
            if hp.save_every and state.step % hp.save_every == 0:
                save_checkpoint(model, args.output_dir / f"checkpoint-{state.step}", state, optimizer, scheduler)
        bar.close()
        console.info(f"epoch {epoch + 1}: loss {last_loss:.4f}, eval loss {last_eval:.4f}")

    # 5. save and summarise
    save_adapter(model, args.output_dir / "final")
    with autocast(device):
        train_loss, train_values = evaluate(model, objective, train_set, hp.batch_size)
    summary: dict[str, Any] = {
        "final_loss": last_loss if last_loss is not None else train_loss,
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
    metrics.summary(summary)
    console.ok(
        f"{state.step} steps; final loss {summary['final_loss']:.4f}, best eval loss "
        f"{state.best_eval_loss:.4f} at step {state.best_step}; adapters in {args.output_dir}"
    )


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
