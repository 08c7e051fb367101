"""One checkpoint format for every trainer: the trained weights, optimizer, scheduler, RNG states and the loop's
state, written atomically under ``output_dir/checkpoints/step-N``; ``--resume`` continues from the newest."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from padellm.errors import ConfigError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    folders = sorted((output_dir / CHECKPOINTS).glob("step-*"))
    return folders[-1] if folders else None


def checkpoint_to_resume(output_dir: Path, resume: bool, finished: Path, what: str) -> Path | None:
    """The checkpoint a run continues from (``None`` for a fresh run). Refuses ``--resume`` without a checkpoint,
    and a fresh run into a folder that already holds ``finished`` (a trained ``what``)."""
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            raise ConfigError(f"--resume: no checkpoint in {output_dir / CHECKPOINTS}")
        return checkpoint
    if finished.exists():
        raise ConfigError(f"output_dir {str(output_dir)!r} already holds a trained {what}; choose another or delete it")
    return None


def save_checkpoint(output_dir: Path, weights: dict, optimizer, scheduler, state: dict) -> None:
    """A resumable checkpoint: ``weights`` (what is trained), optimizer, scheduler, RNG states and the loop's
    ``state``; written to a staging folder and renamed, so a crash never leaves half a checkpoint."""
    folder = output_dir / CHECKPOINTS / f"step-{state['step']:07d}"
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.save(
        {"weights": weights, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
         "rng": rng_state()},
        staging / "state.pt",
    )
    (staging / STATE_FILE).write_text(json.dumps(state, indent=2))
    staging.rename(folder)
    # Keep the newest checkpoint only: it is all --resume needs.
    for old in (output_dir / CHECKPOINTS).glob("step-*"):
        if old != folder:
            shutil.rmtree(old)


def restore_checkpoint(checkpoint: Path, load_weights, optimizer, scheduler) -> dict:
    """Load a checkpoint written by ``save_checkpoint`` (weights through ``load_weights``, optimizer, scheduler,
    RNG states) and return the loop state it saved."""
    saved = torch.load(checkpoint / "state.pt", weights_only=False)
    load_weights(saved.get("weights", saved.get("adapter")))  # "adapter": checkpoints of earlier versions
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    return json.loads((checkpoint / STATE_FILE).read_text())


def discard_checkpoints(output_dir: Path) -> None:
    """After a completed run: the final weights are saved, the checkpoints are not needed any more."""
    shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
