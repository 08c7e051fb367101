"""Training FastNER: all exits at once, a weighted sum of their losses (deeper exits weigh more), seeded,
resumable from checkpoints, bounded in wall time; at the end, the dev F1 of every exit and the exit gates
(``fastner_gates``) fitted on the dev split.

    padellm finetune --config finetune/configs/conll2003-fastner.yaml
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from padellm.baselines.fastner import FastNER
from padellm.baselines.fastner_data import check_vocabulary, collate, encode_example
from padellm.data.datasets import load_dataset
from padellm.errors import ConfigError
from padellm.models import resolve_model
from padellm.training.batching import epoch_batches
from padellm.training.checkpoints import checkpoint_to_resume, discard_checkpoints, save_checkpoint
from padellm.training.fastner_config import FastNERTrainingConfig
from padellm.training.fastner_gates import fit_exit_gates
from padellm.training.loop import Schedule, StepOutcome, begin_run, cosine_with_warmup, loop_metrics, run_loop, update
from padellm.types import Example

logger = logging.getLogger(__name__)

MODEL_DIR = "model"


def exit_weights(kind: str, layers: int) -> list[float]:
    return [float(layer) if kind == "linear" else 1.0 for layer in range(1, layers + 1)]


def load_examples(config: FastNERTrainingConfig) -> tuple[list[Example], list[Example], tuple[str, ...]]:
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
    return keep_labels(train, labels), keep_labels(dev, labels), labels


def keep_labels(examples, labels) -> list[Example]:
    """``examples`` with only the gold mentions of ``labels`` (a model's spans cannot express the others)."""
    allowed = set(labels)
    return [replace(ex, entities=tuple(e for e in ex.entities if e.label in allowed)) for ex in examples]


def prepare_encoder_run(config, encoder_dir: Path | None = None
                        ) -> tuple[list[Example], list[Example], tuple[str, ...], Path, object]:
    """What every encoder trainer (FastNER, the BIO taggers) starts from: seeds set, the examples and labels, the
    encoder's folder (``encoder_dir``, else ``model.encoder``) and its tokenizer, checked to see the training
    text."""
    from transformers import AutoTokenizer

    t = config.train
    random.seed(t.seed), np.random.seed(t.seed), torch.manual_seed(t.seed)
    train_examples, dev_examples, labels = load_examples(config)
    folder = encoder_dir or resolve_model(config.model.encoder, "model.encoder")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    check_vocabulary(tokenizer, train_examples, f"model.encoder {config.model.encoder}",
                     f"{config.data.dataset} {config.data.train_split}")
    return train_examples, dev_examples, labels, folder, tokenizer


def train_fastner(config: FastNERTrainingConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train, write ``output_dir`` (model/, config.yaml, train_log.jsonl, metrics.json) and return the metrics."""
    from padellm.training.dev_scoring import exit_f1

    output_dir = Path(config.output_dir)
    checkpoint = checkpoint_to_resume(output_dir, resume, output_dir / MODEL_DIR, "model")
    t = config.train
    train_examples, dev_examples, labels, folder, tokenizer = prepare_encoder_run(config)
    model = FastNER.from_encoder(folder, config.model_config(labels))
    encoded = [encode_example(ex, tokenizer, model.config) for ex in train_examples]
    lost = sum(e.lost_entities for e in encoded)
    lengths = [len(e.input_ids) for e in encoded]
    steps_per_epoch = math.ceil(len(encoded) / t.batch_size)
    total_steps = t.max_steps or t.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW([{"params": list(model.encoder.parameters()), "lr": t.lr},
                                   {"params": list(model.heads.parameters()), "lr": t.head_lr}],
                                  weight_decay=t.weight_decay)
    scheduler = cosine_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    weights = exit_weights(t.exit_weights, model.num_layers)

    state, log_path = begin_run(output_dir, config, checkpoint, model.load_state_dict, optimizer, scheduler,
                                {"step": 0, "elapsed_s": 0.0, "sentences": 0}, resume)
    if lost:
        logger.warning("%d training entities cannot be word spans (inside a word, over %d words, or truncated)",
                       lost, config.model.max_width)

    # Recomputed from (seed, epoch) rather than stored: a resumed run gets the same order.
    batches_of = functools.lru_cache(maxsize=1)(
        lambda epoch: epoch_batches(lengths, t.batch_size, t.bucket_batches, t.seed, epoch))

    def step(state: dict, epoch: int, step_in_epoch: int) -> StepOutcome:
        indices = batches_of(epoch)[step_in_epoch]
        loss, per_exit = model.loss(collate([encoded[i] for i in indices], tokenizer.pad_token_id), weights)
        loss.backward()
        update(optimizer, scheduler, model.parameters(), t.max_grad_norm)
        state["sentences"] += len(indices)
        return StepOutcome(float(loss.detach()), postfix={"last_exit": f"{per_exit[-1]:.4f}"}, log={"exit_losses": per_exit})

    def save(state: dict) -> None:
        save_checkpoint(output_dir, model.state_dict(), optimizer, scheduler, state)

    model.train()
    schedule = Schedule(total_steps, steps_per_epoch, t.checkpoint_every, t.log_every, t.max_minutes, "sentences")
    stopped_early = run_loop(schedule, state, step, save, log_path, scheduler, "finetune fastner", progress)
    model.eval()
    model.save(output_dir / MODEL_DIR)
    tokenizer.save_pretrained(output_dir / MODEL_DIR / "encoder")
    metrics = {"mode": "fastner", "encoder": config.model.encoder, "labels": list(labels),
               "train_sentences": len(encoded), "lost_train_entities": lost,
               **loop_metrics(state, schedule, stopped_early)}
    if not stopped_early:
        discard_checkpoints(output_dir)
    if dev_examples:
        metrics["dev"] = {"sentences": len(dev_examples),
                          "f1_per_exit": exit_f1(model, tokenizer, dev_examples, progress=progress)}
        gates = fit_exit_gates(model, tokenizer, dev_examples, f"{config.data.dataset} {config.data.dev_split}",
                               progress=progress)
        gates.save(output_dir / MODEL_DIR)
        metrics["exit_gates"] = gates.report
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
