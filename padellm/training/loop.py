"""The optimizer-step loop every trainer runs: epochs and steps, a progress bar, ``train_log.jsonl``, checkpoints
every N steps, and a wall-time bound that checkpoints and stops so that ``--resume`` continues.

A trainer supplies one function that performs an optimizer step (forward, backward, update) and reports its loss;
the loop owns the bookkeeping, so every trainer logs, checkpoints, resumes and stops the same way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from padellm.errors import ConfigError

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"


@dataclass(frozen=True)
class Schedule:
    """How long the loop runs and how often it logs and checkpoints."""

    total_steps: int
    steps_per_epoch: int
    checkpoint_every: int = 0
    """Checkpoint every N steps (0: only when stopped by ``max_minutes``)."""
    log_every: int = 10
    max_minutes: float = 0.0
    """Checkpoint and stop after this much wall time (0: no limit)."""
    throughput: str = "tokens"
    """The state counter (``tokens``, ``sentences``, ...) reported per second in the log and the progress bar."""

    def __post_init__(self) -> None:
        problems = [f"{name} must be >= 1; got {getattr(self, name)}"
                    for name in ("total_steps", "steps_per_epoch", "log_every") if getattr(self, name) < 1]
        problems += [f"{name} must be >= 0; got {getattr(self, name)}"
                     for name in ("checkpoint_every", "max_minutes") if getattr(self, name) < 0]
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class StepOutcome:
    """What one optimizer step reports to the loop."""

    loss: float
    """The step's mean loss."""
    weight: float = 1.0
    """What the mean is over (e.g. loss tokens): the log averages a window of steps by it."""
    postfix: dict[str, str] = field(default_factory=dict)
    """Extra fields for the progress bar."""
    log: dict = field(default_factory=dict)
    """Extra fields for the log line of a step that is logged."""


def cosine_with_warmup(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def start_log(output_dir: Path, resume: bool, step: int) -> Path:
    """``train_log.jsonl``, emptied; a resumed run keeps the lines up to its checkpoint's ``step``, so that the
    log reads like one uninterrupted run."""
    log_path = output_dir / LOG_FILE
    kept = [line for line in (log_path.read_text().splitlines() if resume and log_path.exists() else [])
            if json.loads(line)["step"] <= step]
    log_path.write_text("".join(line + "\n" for line in kept))
    return log_path


def run_loop(schedule: Schedule, state: dict, step: Callable[[dict, int, int], StepOutcome],
             save: Callable[[dict], None], log_path: Path, scheduler, desc: str, progress: bool = True,
             main: bool = True, agree: Callable[[bool], bool] = bool) -> bool:
    """Run ``step(state, epoch, step_in_epoch)`` until ``schedule.total_steps``; return True when the wall-time
    bound stopped the run early (after a checkpoint), False when it completed.

    ``state`` is the loop's checkpointed state (``step``, ``elapsed_s``, the loss history and the log window, plus
    whatever counters ``step`` keeps in it); ``save(state)`` writes a checkpoint. In a multi-process run only the
    ``main`` process writes the log, and ``agree(flag)`` makes every process take the same decision (out of time:
    stop) so that none waits for the others for ever.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    elapsed_before = state["elapsed_s"]
    rate_name = f"{schedule.throughput}_per_s"
    bar = tqdm(total=schedule.total_steps, initial=state["step"], disable=not progress, desc=desc, unit="step",
               dynamic_ncols=True)
    try:
        while state["step"] < schedule.total_steps:
            epoch, step_in_epoch = divmod(state["step"], schedule.steps_per_epoch)
            outcome = step(state, epoch, step_in_epoch)
            state["step"] += 1
            state["elapsed_s"] = elapsed_before + time.perf_counter() - started
            state.setdefault("losses", []).append(outcome.loss)
            # The log window lives in the checkpointed state, so a resumed run logs what an uninterrupted one would.
            state["window_loss"] = state.get("window_loss", 0.0) + outcome.loss * outcome.weight
            state["window_weight"] = state.get("window_weight", 0.0) + outcome.weight
            rate = state.get(schedule.throughput, 0) / max(1e-9, state["elapsed_s"])
            bar.update(1)
            bar.set_postfix(loss=f"{outcome.loss:.4f}", **outcome.postfix, **{rate_name: f"{rate:.0f}"})
            done = state["step"] == schedule.total_steps
            if state["step"] % schedule.log_every == 0 or done:
                if main:
                    record = {"step": state["step"], "epoch": epoch,
                              "loss": state["window_loss"] / max(1e-9, state["window_weight"]),
                              "lr": scheduler.get_last_lr()[0], **outcome.log, rate_name: rate,
                              "elapsed_s": round(state["elapsed_s"], 2)}
                    with open(log_path, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                state["window_loss"], state["window_weight"] = 0.0, 0.0
            out_of_time = agree(bool(schedule.max_minutes) and time.perf_counter() - started > 60 * schedule.max_minutes)
            if not done and (out_of_time or (schedule.checkpoint_every
                                             and state["step"] % schedule.checkpoint_every == 0)):
                save(state)
            if out_of_time and not done:
                logger.warning("stopped after max_minutes=%s at step %d of %d; --resume continues",
                               schedule.max_minutes, state["step"], schedule.total_steps)
                return True
        return False
    finally:
        bar.close()


def begin_run(output_dir: Path, config, checkpoint: Path | None, load_weights: Callable[[dict], object], optimizer,
              scheduler, state: dict, resume: bool, main: bool = True) -> tuple[dict, Path]:
    """What every trainer does before its first step: restore ``checkpoint`` (weights through ``load_weights``,
    optimizer, scheduler, RNG, the loop state) or start from ``state``, write ``config.yaml`` and (re)start the log.
    Returns the loop state and the log's path."""
    from padellm.training.checkpoints import restore_checkpoint
    from padellm.training.config_files import save_config

    if checkpoint is not None:
        state = restore_checkpoint(checkpoint, load_weights, optimizer, scheduler)
        logger.info("resuming from %s (step %d)", checkpoint, state["step"])
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / LOG_FILE
    if main:
        save_config(config, output_dir / "config.yaml")
        start_log(output_dir, resume, state["step"])
    return state, log_path


def update(optimizer, scheduler, parameters, max_grad_norm: float, clip=None) -> None:
    """The end of every optimizer step, after the backward pass: clip the gradients (``clip``: the trainer's own
    clipping, e.g. accelerate's; torch's by default), step the optimizer and the schedule, drop the gradients."""
    if max_grad_norm:
        (clip or torch.nn.utils.clip_grad_norm_)(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def loop_metrics(state: dict, schedule: Schedule, stopped_early: bool) -> dict:
    """The figures every trainer's metrics.json has about its loop."""
    rate = f"{schedule.throughput}_per_s"
    return {"steps": state["step"], "total_steps": schedule.total_steps, "completed": not stopped_early,
            "epochs_seen": state["step"] / schedule.steps_per_epoch,
            "final_loss": state["losses"][-1] if state.get("losses") else None,
            rate: state.get(schedule.throughput, 0) / max(1e-9, state["elapsed_s"]),
            "wall_time_s": state["elapsed_s"], "losses": state.get("losses", [])}
