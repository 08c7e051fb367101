"""Training FastNER: all exits at once, a weighted sum of their losses (deeper exits weigh more), seeded,
resumable from checkpoints, bounded in wall time; the dev F1 of every exit at the end.

    padellm finetune --config finetune/configs/conll2003-fastner.yaml
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from padellm.baselines.early_exit import ExitConfig
from padellm.baselines.fastner import FastNER, FastNERConfig, SpanModelConfig
from padellm.baselines.fastner_data import Encoded, collate, encode_example
from padellm.errors import ConfigError
from padellm.types import Example

logger = logging.getLogger(__name__)

EXIT_WEIGHTS = ("linear", "uniform")
MODEL_DIR = "model"


@dataclass(frozen=True)
class FastNERData:
    dataset: str = "conll2003"
    """A shared dataset name, a folder with split files, or a file."""
    train_split: str = "train"
    """Split to train on (GENIA: dev, as the issue's protocol asks)."""
    dev_split: str = "dev"
    """Split for the per-exit F1 at the end; empty for none."""
    labels: str = ""
    """Comma-separated labels (default: every label in the training data)."""
    max_train_examples: int = 0
    """Train on the first N examples after a seeded shuffle (0: all)."""

    def problems(self) -> list[str]:
        out = []
        if not self.dataset:
            out.append("data.dataset must name a dataset or a file; got ''")
        if self.max_train_examples < 0:
            out.append(f"data.max_train_examples must be >= 0; got {self.max_train_examples}")
        return out


@dataclass(frozen=True)
class FastNERModel(SpanModelConfig):
    encoder: str = "minilm-l6"
    """A packaged encoder name (padellm models prepare) or a BERT-like Hugging Face folder."""


@dataclass(frozen=True)
class FastNERTrain:
    lr: float = 5e-5
    """Peak learning rate of the encoder (AdamW; linear warm-up, then cosine decay)."""
    head_lr: float = 1e-3
    """Peak learning rate of the exit heads."""
    epochs: int = 3
    max_steps: int = 0
    """Stop after this many steps (0: run all epochs)."""
    max_minutes: float = 0.0
    """Stop (and checkpoint) after this much wall time (0: no limit); --resume continues."""
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bucket_batches: int = 64
    """Length bucketing: batches are cut from length-sorted chunks of this many batches."""
    seed: int = 0
    exit_weights: str = "linear"
    """Loss weight of exit l: linear (l, deeper exits weigh more) or uniform."""
    checkpoint_every: int = 200
    log_every: int = 20

    def problems(self) -> list[str]:
        out = []
        for name in ("lr", "head_lr"):
            if getattr(self, name) <= 0:
                out.append(f"train.{name} must be > 0; got {getattr(self, name)}")
        for name in ("epochs", "batch_size", "bucket_batches", "log_every"):
            if getattr(self, name) < 1:
                out.append(f"train.{name} must be >= 1; got {getattr(self, name)}")
        for name in ("max_steps", "max_minutes", "weight_decay", "max_grad_norm", "checkpoint_every"):
            if getattr(self, name) < 0:
                out.append(f"train.{name} must be >= 0; got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"train.warmup_ratio must be in [0, 1); got {self.warmup_ratio}")
        if self.exit_weights not in EXIT_WEIGHTS:
            out.append(f"train.exit_weights must be one of {', '.join(EXIT_WEIGHTS)}; got {self.exit_weights!r}")
        return out


@dataclass(frozen=True)
class FastNERTrainingConfig:
    mode: str = "fastner"
    """Always fastner: this is how padellm finetune tells this config from an LLM one."""
    output_dir: str = ""
    """Where the model, logs, metrics and checkpoints go."""
    data: FastNERData = field(default_factory=FastNERData)
    model: FastNERModel = field(default_factory=FastNERModel)
    train: FastNERTrain = field(default_factory=FastNERTrain)

    def __post_init__(self) -> None:
        problems = []
        if self.mode != "fastner":
            problems.append(f"mode must be fastner for this config; got {self.mode!r}")
        if not self.output_dir:
            problems.append("output_dir must be set")
        problems += self.data.problems() + [f"model.{p}" for p in self.model.problems()] + self.train.problems()
        if problems:
            raise ConfigError(problems)

    def model_config(self, labels: tuple[str, ...]) -> FastNERConfig:
        settings = {f.name: getattr(self.model, f.name) for f in fields(SpanModelConfig)}
        return FastNERConfig(labels=labels, **settings)


def exit_weights(kind: str, layers: int) -> list[float]:
    return [float(layer) if kind == "linear" else 1.0 for layer in range(1, layers + 1)]


def encoder_folder(spec: str) -> Path:
    """A packaged encoder name (converted into the cache once) or a folder."""
    from padellm.models import PACKAGED_MODELS, prepare_model

    if spec in PACKAGED_MODELS:
        return prepare_model(spec)
    folder = Path(spec)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model.encoder {spec!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
                          f"nor a Hugging Face model folder")
    return folder


def load_examples(config: FastNERTrainingConfig) -> tuple[list[Example], list[Example], tuple[str, ...]]:
    from padellm.datasets import load_dataset

    splits = [config.data.train_split] + ([config.data.dev_split] if config.data.dev_split else [])
    dataset = load_dataset(config.data.dataset, splits)
    train = list(dataset.split(config.data.train_split))
    if not train:
        raise ConfigError(f"data.train_split {config.data.train_split!r} of {config.data.dataset} has no sentences")
    if config.data.max_train_examples:
        random.Random(config.train.seed).shuffle(train)
        train = train[: config.data.max_train_examples]
    dev = list(dataset.split(config.data.dev_split)) if config.data.dev_split else []
    found = sorted({e.label for ex in train for e in ex.entities})
    labels = tuple(sorted(x.strip() for x in config.data.labels.split(",") if x.strip())) or tuple(found)
    if not labels:
        raise ConfigError(f"no entity in the training data of {config.data.dataset}; nothing to learn")
    allowed = set(labels)
    train = [replace(ex, entities=tuple(e for e in ex.entities if e.label in allowed)) for ex in train]
    dev = [replace(ex, entities=tuple(e for e in ex.entities if e.label in allowed)) for ex in dev]
    return train, dev, labels


def train_fastner(config: FastNERTrainingConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train, write ``output_dir`` (model/, config.yaml, train_log.jsonl, metrics.json) and return the metrics."""
    from transformers import AutoTokenizer
    from tqdm.auto import tqdm

    from padellm.batching import epoch_batches
    from padellm.finetune_config import save_config
    from padellm.training import (CHECKPOINTS, cosine_with_warmup, latest_checkpoint, restore_checkpoint,
                                  save_checkpoint, start_log)

    output_dir = Path(config.output_dir)
    checkpoint = latest_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {output_dir / CHECKPOINTS}")
    if not resume and (output_dir / MODEL_DIR).exists():
        raise ConfigError(f"output_dir {str(output_dir)!r} already holds a trained model; choose another or delete it")
    t = config.train
    random.seed(t.seed), np.random.seed(t.seed), torch.manual_seed(t.seed)
    train_examples, dev_examples, labels = load_examples(config)
    folder = encoder_folder(config.model.encoder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = FastNER.from_encoder(folder, config.model_config(labels))
    encoded = [encode_example(ex, tokenizer, model.config) for ex in train_examples]
    lost = sum(e.lost_entities for e in encoded)
    lengths = [len(e.input_ids) for e in encoded]
    steps_per_epoch = math.ceil(len(encoded) / t.batch_size)
    total_steps = t.max_steps or t.epochs * steps_per_epoch
    encoder_params = list(model.encoder.parameters())
    optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": t.lr},
                                   {"params": list(model.heads.parameters()), "lr": t.head_lr}],
                                  weight_decay=t.weight_decay)
    scheduler = cosine_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    weights = exit_weights(t.exit_weights, model.num_layers)

    state = {"step": 0, "elapsed_s": 0.0, "sentences": 0}
    if checkpoint is not None:
        state = restore_checkpoint(checkpoint, model.load_state_dict, optimizer, scheduler)
        logger.info("resuming from %s (step %d of %d)", checkpoint, state["step"], total_steps)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir / "config.yaml")
    log_path = start_log(output_dir, resume, state["step"])
    if lost:
        logger.warning("%d training entities cannot be word spans (inside a word, over %d words, or truncated)",
                       lost, config.model.max_width)

    model.train()
    started, elapsed_before = time.perf_counter(), state["elapsed_s"]
    bar = tqdm(total=total_steps, initial=state["step"], disable=not progress, desc="finetune fastner", unit="step",
               dynamic_ncols=True)
    stopped_early, batches, batches_epoch = False, [], -1
    while state["step"] < total_steps:
        epoch, step_in_epoch = divmod(state["step"], steps_per_epoch)
        if epoch != batches_epoch:
            batches, batches_epoch = epoch_batches(lengths, t.batch_size, t.bucket_batches, t.seed, epoch), epoch
        indices = batches[step_in_epoch]
        batch = collate([encoded[i] for i in indices], tokenizer.pad_token_id)
        loss, per_exit = model.loss(batch, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
        optimizer.step()
        scheduler.step()
        state["step"] += 1
        state["sentences"] += len(indices)
        state["elapsed_s"] = elapsed_before + time.perf_counter() - started
        state.setdefault("losses", []).append(float(loss))
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss):.4f}", last_exit=f"{per_exit[-1]:.4f}")
        if state["step"] % t.log_every == 0 or state["step"] == total_steps:
            record = {"step": state["step"], "epoch": epoch, "loss": float(loss), "exit_losses": per_exit,
                      "lr": scheduler.get_last_lr()[0], "sentences_per_s": state["sentences"] / state["elapsed_s"],
                      "elapsed_s": round(state["elapsed_s"], 2)}
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        out_of_time = t.max_minutes and time.perf_counter() - started > 60 * t.max_minutes
        if state["step"] < total_steps and ((t.checkpoint_every and state["step"] % t.checkpoint_every == 0)
                                            or out_of_time):
            save_checkpoint(output_dir, model.state_dict(), optimizer, scheduler, state)
        if out_of_time and state["step"] < total_steps:
            logger.warning("stopped after train.max_minutes=%s at step %d of %d; --resume continues",
                           t.max_minutes, state["step"], total_steps)
            stopped_early = True
            break
    bar.close()
    model.eval()
    model.save(output_dir / MODEL_DIR)
    tokenizer.save_pretrained(output_dir / MODEL_DIR / "encoder")
    metrics = {"mode": "fastner", "encoder": config.model.encoder, "labels": list(labels), "steps": state["step"],
               "total_steps": total_steps, "completed": not stopped_early, "train_sentences": len(encoded),
               "lost_train_entities": lost, "epochs_seen": state["step"] / steps_per_epoch,
               "final_loss": state["losses"][-1] if state.get("losses") else None,
               "sentences_per_s": state["sentences"] / max(1e-9, state["elapsed_s"]),
               "wall_time_s": state["elapsed_s"], "losses": state.get("losses", [])}
    if not stopped_early:
        shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
    if dev_examples:
        metrics["dev"] = {"sentences": len(dev_examples),
                          "f1_per_exit": exit_f1(model, tokenizer, dev_examples, progress=progress)}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def predict_examples(model: FastNER, tokenizer, examples: list[Example], exit_config: ExitConfig = ExitConfig(),
                     layers: int | None = None, batch_size: int = 32):
    """(entities per example, exit layer per example), in the examples' order."""
    from padellm.baselines.spans import to_entities

    entities, exits = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        encoded: list[Encoded] = [encode_example(ex, tokenizer, model.config) for ex in chunk]
        predictions = model.predict(collate(encoded, tokenizer.pad_token_id, with_gold=False), exit_config, layers)
        for example, prediction in zip(chunk, predictions):
            entities.append(to_entities(prediction.spans, example.token_spans, model.config.labels))
            exits.append(prediction.exit_layer)
    return entities, exits


def exit_f1(model: FastNER, tokenizer, examples: list[Example], progress: bool = False) -> list[float]:
    """Micro span F1 (%) of every exit without early exit, shallowest first."""
    from tqdm.auto import tqdm

    from padellm.metrics import score

    texts, gold = [ex.text for ex in examples], [list(ex.entities) for ex in examples]
    f1 = []
    for layers in tqdm(range(1, model.num_layers + 1), desc="dev F1 per exit", disable=not progress):
        predicted, _ = predict_examples(model, tokenizer, examples, layers=layers)
        f1.append(round(100 * score(texts, gold, predicted, "span").micro.f1, 2))
    return f1
