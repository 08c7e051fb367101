"""``padellm eval``: every chosen system on the same sentences, then results.json, predictions.jsonl,
report.md and PNG figures in one folder."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

from padellm.data.datasets import available_splits, load_dataset
from padellm.errors import ConfigError
from padellm.baselines.token_exit import TokenExitConfig
from padellm.evaluation.config import TAGGERS, EvalConfig, split_list
from padellm.evaluation.environment import environment
from padellm.evaluation.report import write_report
from padellm.evaluation.runner import SystemRun, run_systems
from padellm.evaluation.summary import summarize
from padellm.evaluation.systems import (adapter_labels, check_labels, close_engines, fastner_labels, fastner_systems,
                                        llm_systems, run_name, tagger_labels, tagger_systems)
from padellm.ner import entity_record
from padellm.types import Example

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.jsonl"


def sample_indices(size: int, sample: int, seed: int) -> list[int]:
    """Which sentences of a split of ``size`` are measured: a seeded permutation's first ``sample`` (all of them,
    in order, for 0)."""
    if sample == 0:
        return list(range(size))
    if sample > size:
        raise ConfigError(f"sample {sample} exceeds the {size} sentences of the split")
    order = list(range(size))
    random.Random(seed).shuffle(order)
    return order[:sample]


def warmup_examples(config: EvalConfig, splits: dict[str, list[Example]], measured: set[int]) -> tuple[list[Example], str]:
    """(warm-up sentences, where they came from): from ``warmup_split`` when the dataset has it, else sentences
    of the measured split outside the sample, else the sample itself."""
    if config.warmup == 0:
        return [], "none"
    if config.warmup_split in splits and config.warmup_split != config.split:
        pool, source = splits[config.warmup_split], f"{config.warmup_split} split"
    else:
        pool = [ex for i, ex in enumerate(splits[config.split]) if i not in measured]
        source = f"{config.split} sentences outside the sample"
        if not pool:
            pool, source = splits[config.split], f"{config.split} (the measured sentences: there are no others)"
    return random.Random(config.seed).sample(pool, min(config.warmup, len(pool))), source


def artifacts(config: EvalConfig, dataset_name: str) -> dict[str, Path | tuple[Path, ...]]:
    """The trained artifact of every chosen system (default adapters: the shipped ones for the dataset); a tagger
    system may name several folders (a tuple)."""
    from padellm.adapters import shipped_adapter

    chosen = {}
    for system in config.system_names:
        given = getattr(config, system)
        if system in TAGGERS:
            chosen[system] = tuple(Path(folder) for folder in split_list(given))
            continue
        if given:
            chosen[system] = Path(given)
            continue
        try:
            chosen[system] = shipped_adapter(system, dataset_name)
        except ConfigError as err:
            raise ConfigError(f"{system}: no adapter given and none shipped for {dataset_name}; pass "
                              f"--{system} ADAPTER_DIR") from err
    return chosen


def check_artifacts(config: EvalConfig, chosen: dict[str, Path], data: str, data_labels: list[str]) -> None:
    """Modes and label sets of every artifact against the data, before any model is loaded."""
    for system, folder in chosen.items():
        if system in TAGGERS:
            for one in folder:
                check_labels(f"{system} ({one})", tagger_labels(system, one), data, data_labels,
                             config.allow_label_subset)
            continue
        if system == "fastner":
            labels = fastner_labels(folder)
        else:
            kind, labels = adapter_labels(folder)
            if kind != system:
                raise ConfigError(f"{system}: adapter {folder} was trained for {kind} decoding")
        check_labels(f"{system} ({folder})", labels, data, data_labels, config.allow_label_subset)


def write_predictions(path: Path, examples: list[Example], indices: list[int], runs: dict[str, SystemRun]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row, (index, example) in enumerate(zip(indices, examples)):
            record = {"index": index, "text": example.text,
                      "gold": [entity_record(example.text, e) for e in example.entities],
                      "predictions": {name: [entity_record(example.text, e) for e in run.predictions[row]]
                                      for name, run in runs.items()},
                      "latency_ms": {name: round(1000 * run.latencies_s[row], 3) for name, run in runs.items()}}
            print(json.dumps(record, ensure_ascii=False), file=out)


def draw_plots(summary: dict, runs: dict[str, SystemRun], out_dir: Path, title: str) -> list[str]:
    from padellm.evaluation.plots import plot_f1_latency, plot_latencies, plot_stages

    written = [plot_f1_latency(summary, out_dir / "f1_latency.png", title).name]
    if any(entry.get("stage_mean_ms") for entry in summary["systems"].values()):
        written.append(plot_stages(summary, out_dir / "stages.png", title).name)
    latencies = {name: [1000 * s for s in run.latencies_s] for name, run in runs.items()}
    written.append(plot_latencies(latencies, out_dir / "latency.png", title).name)
    return written


def evaluate(config: EvalConfig, out_dir: str | Path, decode_config=None, vllm_config=None, progress: bool = True,
             command: str = "") -> dict:
    """Run the comparison ``config`` describes and write its outputs into ``out_dir``; returns results.json's
    content. ``decode_config``: as ``padellm.load`` takes it (None: each adapter's tuned settings; a mapping:
    fields set on top of them; a ``DecodeConfig``: for every system as it is)."""
    import torch

    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig

    started, clock = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    vllm_config = vllm_config or VLLMConfig()
    available = available_splits(config.dataset)
    if config.split not in available:
        raise ConfigError(f"split: {config.dataset} has no {config.split!r} split (it has: {', '.join(available)})")
    wanted = [config.split] + ([config.warmup_split] if config.warmup_split in available
                               and config.warmup_split != config.split else [])
    dataset = load_dataset(config.dataset, wanted)
    split = dataset.split(config.split)
    if not split:
        raise ConfigError(f"split: {dataset.name} {config.split} has no sentences")
    data_labels = sorted({e.label for example in split for e in example.entities})
    data = f"{dataset.name} {config.split}"
    chosen = artifacts(config, dataset.name)
    check_artifacts(config, chosen, data, data_labels)
    out_dir = Path(out_dir)
    if (out_dir / RESULTS_FILE).exists():
        raise ConfigError(f"out: {out_dir} holds the results of an earlier run; choose another folder or remove it")
    out_dir.mkdir(parents=True, exist_ok=True)  # now: a folder that cannot be made fails before the measurements

    indices = sample_indices(len(split), config.sample, config.seed)
    examples = [split[i] for i in indices]
    warmup, warmup_source = warmup_examples(config, dataset.splits, set(indices))
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    llm = {system: folder for system, folder in chosen.items() if system not in ("fastner", *TAGGERS)}
    texts = [example.text for example in examples + warmup]  # checked before any engine starts
    systems = llm_systems(llm, config.backend, decode_config, vllm_config, config.oracle_counts, texts) if llm else []
    try:
        if "fastner" in chosen:
            systems += fastner_systems(chosen["fastner"], config.exit_configs, config.fastner_batch_size, examples, data)
        for tagger in TAGGERS:
            folders = chosen.get(tagger, ())
            points = config.token_exit_configs if tagger == "earlyexit" else (TokenExitConfig(),)
            for folder in folders:
                systems += tagger_systems(tagger, folder, points, config.fastner_batch_size, examples, data,
                                          run_name(folder) if len(folders) > 1 else "")
        runs = run_systems(systems, examples, warmup, config.batch_mode, progress, config.settle_ms / 1000)
    finally:
        close_engines(systems)
    summary = summarize(runs, {s.name: s.kind for s in systems}, examples)

    results = {
        "command": command, "started": started, "seed": config.seed,
        "config": dataclasses.asdict(config),
        "decode_overrides": (dataclasses.asdict(decode_config) if isinstance(decode_config, DecodeConfig)
                             else dict(decode_config or {})),
        **({"vllm_config": dataclasses.asdict(vllm_config)} if llm and config.backend == "vllm" else {}),
        "data": {"dataset": dataset.name, "split": config.split, "split_sentences": len(split),
                 "labels": data_labels, "sample_indices": indices},
        "warmup": {"sentences": len(warmup), "source": warmup_source},
        "environment": environment(),
        "systems": {s.name: {"kind": s.kind, "artifact": s.artifact, "labels": list(s.labels),
                             "settings": s.settings()} for s in systems},
        "summary": summary,
        "latencies_ms": {name: [1000 * s for s in run.latencies_s] for name, run in runs.items()},
    }
    write_predictions(out_dir / PREDICTIONS_FILE, examples, indices, runs)
    hardware = results["environment"]["gpu"] or f"{results['environment']['cpus_available']} CPU cores"
    plots = draw_plots(summary, runs, out_dir, f"{data}, {len(examples)} sentences ({hardware})")
    results["wall_time_s"] = time.perf_counter() - clock
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_report(results, out_dir, plots)
    return results
