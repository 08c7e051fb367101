"""Measure systems on the same sentences in one run.

Every system first decodes the warm-up sentences (never measured). Single-request mode then sends one sentence
at a time, as an interactive user does: for each sentence every system runs once, the order rotating from
sentence to sentence so that no system always goes first and machine drift hits all of them alike. Batch mode
hands each system the whole sample in one call and reports sentences per second.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from padellm.evaluation.systems import System
from padellm.types import Entity, Example


@dataclass
class SystemRun:
    """What one system did on the sample: per sentence in single-request mode, then one batch call."""

    latencies_s: list[float] = field(default_factory=list)
    predictions: list[list[Entity]] = field(default_factory=list)
    stage_s: list[dict[str, float]] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    exits: list[int] = field(default_factory=list)
    counts: list[dict[str, int]] = field(default_factory=list)
    token_layers: list[int] = field(default_factory=lambda: [0, 0])
    """Encoder token-layers computed and the full model's, summed over single requests (BIO taggers)."""
    batch_s: float | None = None
    batch_predictions: list[list[Entity]] | None = None


def rotation(names: list[str], index: int) -> list[str]:
    """The order systems run on sentence ``index``: each system goes first on every n-th sentence."""
    shift = index % len(names) if names else 0
    return names[shift:] + names[:shift]


def run_systems(systems: list[System], examples: list[Example], warmup: list[Example], batch_mode: bool = True,
                progress: bool = True, settle_s: float = 0.0) -> dict[str, SystemRun]:
    """``settle_s``: an untimed pause before each single request, so that what the previous call left running
    (vLLM's processes busy-poll for a second after each request) does not slow the next system down."""
    from tqdm.auto import tqdm

    by_name = {system.name: system for system in systems}
    names = list(by_name)
    for example in tqdm(warmup, desc="warm-up", unit="sentence", disable=not progress or not warmup):
        for name in names:
            by_name[name].run([example])
    runs = {name: SystemRun() for name in names}
    for index, example in enumerate(tqdm(examples, desc="single-request mode", unit="sentence", disable=not progress)):
        for name in rotation(names, index):
            if settle_s:
                time.sleep(settle_s)
            started = time.perf_counter()
            output = by_name[name].run([example])
            elapsed = time.perf_counter() - started
            run = runs[name]
            run.latencies_s.append(elapsed)
            run.predictions.append(output.entities[0])
            run.stage_s.append(output.stage_s)
            run.stats.update(output.stats)
            run.exits += output.exits
            run.counts += output.counts
            run.token_layers = [a + b for a, b in zip(run.token_layers, output.token_layers)]
    if batch_mode:
        for name in tqdm(names, desc="batch mode", unit="system", disable=not progress):
            started = time.perf_counter()
            output = by_name[name].run(examples)
            runs[name].batch_s = time.perf_counter() - started
            runs[name].batch_predictions = output.entities
    return runs
