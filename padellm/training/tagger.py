"""Training the BIO taggers (``padellm finetune`` mode tagger): the early-exit tagger on all its off-ramps, a CRF
tagger on the gold tags (the distillation teacher), or a CRF student distilled from a teacher at the sequence and
token grains. Seeded, resumable from checkpoints, bounded in wall time; the dev F1 of every off-ramp (or of the
CRF) at the end.

    padellm finetune --config finetune/configs/conll2003-tagger-earlyexit.yaml
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from pathlib import Path

import torch

from padellm.baselines.distillation import TeacherTargets, multi_grained_loss, teacher_targets
from padellm.baselines.tagger import CONFIG_FILE, Tagger, encode, layer_entities
from padellm.errors import ConfigError
from padellm.metrics import score
from padellm.training.batching import epoch_batches
from padellm.training.checkpoints import checkpoint_to_resume, discard_checkpoints, save_checkpoint
from padellm.training.fastner import exit_weights, prepare_encoder_run
from padellm.training.loop import Schedule, StepOutcome, begin_run, cosine_with_warmup, loop_metrics, run_loop, update
from padellm.training.tagger_config import TaggerTrainingConfig
from padellm.types import Example

logger = logging.getLogger(__name__)

MODEL_DIR = "model"


def model_folder(path: str | Path) -> Path:
    """A tagger's model folder: ``path`` itself, or the ``model/`` a training run wrote into it."""
    path = Path(path)
    return path / MODEL_DIR if (path / MODEL_DIR / CONFIG_FILE).is_file() else path


def load_teacher(config: TaggerTrainingConfig, labels: tuple[str, ...], vocabulary: int) -> Tagger:
    folder = model_folder(config.distill.teacher)
    teacher = Tagger.load(folder)
    problems = []
    if teacher.crf is None:
        problems.append(f"distill.teacher {folder}: not a CRF tagger (train it with model.crf: true)")
    if teacher.config.labels != labels:
        problems.append(f"distill.teacher {folder}: labels {list(teacher.config.labels)} differ from the data's "
                        f"{list(labels)}")
    if teacher.encoder.config.vocab_size != vocabulary:
        problems.append(f"distill.teacher {folder}: its encoder's vocabulary ({teacher.encoder.config.vocab_size}) "
                        f"is not the student's ({vocabulary}); both must read the same subwords")
    if problems:
        raise ConfigError(problems)
    return teacher.eval()


class TeacherCache:
    """The teacher's targets per training sentence, computed the first time a batch holds it and reused in later
    epochs (the teacher is frozen and runs without dropout, so they never change): after the first epoch a
    distillation step costs the student's forward and backward only."""

    def __init__(self, teacher: Tagger, k: int):
        self.teacher, self.k = teacher, k
        self.per_sentence: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def targets(self, indices: list[int], batch) -> TeacherTargets:
        if any(i not in self.per_sentence for i in indices):
            with torch.no_grad():
                fresh = teacher_targets(self.teacher.crf, self.teacher(batch)[-1], batch.word_mask, self.k)
            for row, i in enumerate(indices):
                words = int(batch.word_mask[row].sum())
                self.per_sentence[i] = (fresh.paths[row, :, :words].clone(), fresh.weights[row].clone(),
                                        fresh.marginals[row, :words].clone())
        batch_size, length = batch.word_mask.shape
        paths = torch.zeros(batch_size, self.k, length, dtype=torch.long)
        weights = torch.zeros(batch_size, self.k)
        marginals = torch.zeros(batch_size, length, len(self.teacher.config.tags))
        for row, i in enumerate(indices):
            p, w, m = self.per_sentence[i]
            paths[row, :, : p.shape[1]], weights[row], marginals[row, : m.shape[0]] = p, w, m
        return TeacherTargets(paths, weights, marginals)


def initial_model(config: TaggerTrainingConfig, labels: tuple[str, ...], folder: Path) -> Tagger:
    """The model training starts from: the bare encoder in ``folder`` with new heads, or (``model.init``) the trained
    tagger whose encoder ``folder`` is, of the same kind and labels."""
    if not config.model.init:
        return Tagger.from_encoder(folder, config.model_config(labels))
    init = folder.parent
    model = Tagger.load(init)
    problems = []
    if model.config.labels != labels:
        problems.append(f"model.init {init}: labels {list(model.config.labels)} differ from the data's {list(labels)}")
    if (model.crf is not None) != config.model.crf:
        problems.append(f"model.init {init}: {'a CRF' if model.crf is not None else 'an off-ramp'} tagger, but "
                        f"model.crf is {str(config.model.crf).lower()}")
    if problems:
        raise ConfigError(problems)
    return model


def layer_f1(model: Tagger, tokenizer, examples: list[Example]) -> list[float]:
    """Micro span F1 (%) of every off-ramp without early exit (a CRF tagger: one figure)."""
    texts, gold = [ex.text for ex in examples], [list(ex.entities) for ex in examples]
    return [round(100 * score(texts, gold, predicted, "span").micro.f1, 2)
            for predicted in layer_entities(model, tokenizer, examples)]


def train_tagger(config: TaggerTrainingConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train, write ``output_dir`` (model/, config.yaml, train_log.jsonl, metrics.json) and return the metrics."""
    output_dir = Path(config.output_dir)
    checkpoint = checkpoint_to_resume(output_dir, resume, output_dir / MODEL_DIR, "model")
    t = config.train
    # A run from model.init reads (and checks the text against) that tagger's own encoder and tokenizer.
    init = model_folder(config.model.init) / "encoder" if config.model.init else None
    if init is not None and not (init.parent / CONFIG_FILE).is_file():
        raise ConfigError(f"model.init {config.model.init}: not a tagger model folder (no {CONFIG_FILE}; padellm "
                          f"finetune mode tagger writes one)")
    train_examples, dev_examples, labels, folder, tokenizer = prepare_encoder_run(config, init)
    model = initial_model(config, labels, folder)
    teacher = load_teacher(config, labels, model.encoder.config.vocab_size) if config.distill.teacher else None
    cache = TeacherCache(teacher, config.distill.k) if teacher is not None else None
    # One pass over the training set: refuses nested or misaligned entities before training, and gives the lengths.
    lengths = encode(train_examples, tokenizer, model.config).attention_mask.sum(1).tolist()
    steps_per_epoch = math.ceil(len(train_examples) / t.batch_size)
    total_steps = t.max_steps or t.epochs * steps_per_epoch
    heads = list(model.heads.parameters()) + (list(model.crf.parameters()) if model.crf is not None else [])
    optimizer = torch.optim.AdamW([{"params": list(model.encoder.parameters()), "lr": t.lr},
                                   {"params": heads, "lr": t.head_lr}], weight_decay=t.weight_decay)
    scheduler = cosine_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    weights = exit_weights(t.exit_weights, model.num_layers)
    d, sampling = config.distill, config.self_sampling

    state, log_path = begin_run(output_dir, config, checkpoint, model.load_state_dict, optimizer, scheduler,
                                {"step": 0, "elapsed_s": 0.0, "sentences": 0}, resume)
    batches_of = functools.lru_cache(maxsize=1)(
        lambda epoch: epoch_batches(lengths, t.batch_size, t.bucket_batches, t.seed, epoch))

    def step(state: dict, epoch: int, step_in_epoch: int) -> StepOutcome:
        indices = batches_of(epoch)[step_in_epoch]
        batch = encode([train_examples[i] for i in indices], tokenizer, model.config)
        if sampling.max_threshold:
            # Seeded by step: a resumed run draws the thresholds the uninterrupted run would have drawn.
            generator = torch.Generator().manual_seed(t.seed * 1_000_003 + state["step"])
            loss, log = model.self_sampling_loss(batch, sampling.max_threshold, sampling.window, weights, generator)
        elif teacher is None:
            loss, per_exit = model.loss(batch, weights)
            log = {"exit_losses": per_exit}
        else:
            loss = multi_grained_loss(model.crf, model(batch)[-1], batch.word_mask, cache.targets(indices, batch),
                                      batch.tags, d.gold_weight, d.sequence_weight, d.token_weight)
            log = {}
        loss.backward()
        update(optimizer, scheduler, model.parameters(), t.max_grad_norm)
        state["sentences"] += len(indices)
        return StepOutcome(float(loss), log=log)

    def save(state: dict) -> None:
        save_checkpoint(output_dir, model.state_dict(), optimizer, scheduler, state)

    model.train()
    schedule = Schedule(total_steps, steps_per_epoch, t.checkpoint_every, t.log_every, t.max_minutes, "sentences")
    stopped_early = run_loop(schedule, state, step, save, log_path, scheduler, "finetune tagger", progress)
    model.eval()
    model.save(output_dir / MODEL_DIR)
    tokenizer.save_pretrained(output_dir / MODEL_DIR / "encoder")
    metrics = {"mode": "tagger", "kind": "distilled" if teacher else "crf" if model.crf is not None else "earlyexit",
               "encoder": config.model.encoder, "init": config.model.init or None,
               "self_sampling": dataclasses.asdict(sampling) if sampling.max_threshold else None,
               "layers": model.num_layers, "labels": list(labels),
               "teacher": config.distill.teacher or None, "train_sentences": len(train_examples),
               **loop_metrics(state, schedule, stopped_early)}
    if not stopped_early:
        discard_checkpoints(output_dir)
    if dev_examples:
        metrics["dev"] = {"sentences": len(dev_examples), "f1_per_layer": layer_f1(model, tokenizer, dev_examples)}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
