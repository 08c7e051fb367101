"""LoRA fine-tuning for PaDeLLM and the autoregressive baseline: one pipeline, two sequence formats.

``prepare_run`` checks every input (data, labels, template, base model) and reports all problems at once
before any weight is loaded; ``train`` runs the loop with length-bucketed batches, a cosine schedule with
warm-up, seeded order, resumable checkpoints, and a progress bar showing loss and tokens/s.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from padellm.batching import collate, epoch_batches
from padellm.corpus import ReadOptions, read_corpus
from padellm.datasets import load_dataset
from padellm.encoding import PromptEncoder
from padellm.errors import ConfigError, PadellmError
from padellm.finetune_config import FinetuneConfig, save_config
from padellm.models import PACKAGED_MODELS, prepare_model
from padellm.prompts import LabelSet, Template, load_label_names, load_template, prompts_dir, save_prompt
from padellm.sft import IGNORE, build_sequences
from padellm.types import Example

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"


@dataclass
class Run:
    """Everything a training run needs, resolved and checked."""

    config: FinetuneConfig
    template: Template
    label_set: LabelSet
    train_examples: list[Example]
    dev_examples: list[Example]
    base_model_dir: Path


def _resolve_base_model(spec: str) -> Path:
    if spec in PACKAGED_MODELS:
        return prepare_model(spec)
    path = Path(spec)
    if (path / "config.json").is_file():
        return path
    raise ConfigError(
        f"base_model must be a packaged model ({', '.join(PACKAGED_MODELS)}) or a folder with config.json; got {spec!r}"
    )


def _sample(examples: list[Example], n: int, seed: int) -> list[Example]:
    if not n or n >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    return rng.sample(list(examples), n)


def prepare_run(config: FinetuneConfig) -> Run:
    """Resolve data, labels, template and base model; raise one ConfigError listing every problem."""
    problems: list[str] = []
    data = config.data
    train_examples: list[Example] = []
    dev_examples: list[Example] = []
    try:
        dataset = load_dataset(data.dataset)
        if data.train_split in dataset.splits:
            train_examples = dataset.splits[data.train_split]
        elif "data" in dataset.splits:
            train_examples = dataset.splits["data"]
        else:
            problems.append(f"data.train_split {data.train_split!r} is not in {data.dataset} (has {', '.join(dataset.splits)})")
        if data.dev_file:
            dev_examples = read_corpus(data.dev_file, ReadOptions())[0]
        elif data.dev_split and data.dev_split in dataset.splits:
            dev_examples = dataset.splits[data.dev_split]
        elif data.dev_split and data.dev_sample:
            problems.append(f"data.dev_split {data.dev_split!r} is not in {data.dataset} (set data.dev_split='' for none)")
    except PadellmError as err:
        problems.append(f"data: {err}")
    if not train_examples and not any(p.startswith("data") for p in problems):
        problems.append(f"data: the training data of {data.dataset} is empty")

    data_labels = sorted({e.label for ex in train_examples for e in ex.entities})
    if train_examples and not data_labels:
        problems.append(f"data: the training data of {data.dataset} has no entities, so there is no label to learn")
    labels = [label.strip() for label in data.labels.split(",") if label.strip()] if data.labels else data_labels
    unknown = sorted(set(labels) - set(data_labels))
    if train_examples and unknown:
        problems.append(f"data.labels: unknown label(s) {unknown}; the training data has {data_labels}")
    names: dict[str, str] = {}
    names_spec = data.label_names or (Path(data.dataset).name if (prompts_dir() / "labels" / f"{Path(data.dataset).name}.yaml").is_file() else "")
    if names_spec:
        try:
            names = load_label_names(names_spec)
        except ConfigError as err:
            problems.append(f"data.label_names: {err}")
        extra = sorted(set(names) - set(data_labels))
        if train_examples and extra and names_spec == data.label_names:
            problems.append(f"data.label_names names unknown label(s) {extra}; the training data has {data_labels}")
    label_set = None
    if labels and not unknown:
        try:
            label_set = LabelSet.for_labels(labels, names)
        except ConfigError as err:
            problems += [f"labels: {p}" for p in err.problems]

    template = None
    try:
        template = load_template(config.prompt_name)
        if template.mode != config.mode:
            problems.append(f"prompt {config.prompt_name!r} is a {template.mode} template but mode is {config.mode!r}")
    except ConfigError as err:
        problems += [f"prompt: {p}" for p in err.problems]

    base = None
    try:
        base = _resolve_base_model(config.base_model)
    except PadellmError as err:
        problems.append(f"base_model: {err}")
    if problems:
        raise ConfigError(problems)

    train_examples = _sample(train_examples, data.max_train_examples, config.train.seed)
    dev_examples = _sample(dev_examples, data.dev_sample, config.train.seed)
    return Run(config, template, label_set, train_examples, dev_examples, base)


# ------------------------------------------------------------------------------------------ the model


def _precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def load_lora_model(run: Run):
    """The base model in fp32 with fresh LoRA weights (seeded), and its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run.base_model_dir)
    # SDPA takes the boolean 4-D masks of tree-packed sequences as they are.
    model = AutoModelForCausalLM.from_pretrained(run.base_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    lora = run.config.lora
    targets = lora.target_modules if lora.target_modules == "all-linear" else [m.strip() for m in lora.target_modules.split(",")]
    torch.manual_seed(run.config.train.seed)
    model = get_peft_model(
        model,
        LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM"),
    )
    return model, tokenizer


def sequence_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the positions that carry a loss, and their number.

    The LM head (576 x 49,152 for SmolLM2, about a fifth of the model's work per token) runs only where there is
    a loss: a few target tokens per sequence, not the whole prompt.
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             position_ids=batch["position_ids"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    logits = causal_lm.lm_head(hidden[:, :-1][where])
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[where], reduction="sum")
    return loss, int(where.sum())


# ------------------------------------------------------------------------------------------ the loop


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    folders = sorted((output_dir / CHECKPOINTS).glob("step-*"))
    return folders[-1] if folders else None


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


def start_log(output_dir: Path, resume: bool, step: int) -> Path:
    """``train_log.jsonl``, emptied; a resumed run keeps the lines up to its checkpoint's ``step``, so that the
    log reads like one uninterrupted run."""
    log_path = output_dir / LOG_FILE
    kept = [line for line in (log_path.read_text().splitlines() if resume and log_path.exists() else [])
            if json.loads(line)["step"] <= step]
    log_path.write_text("".join(line + "\n" for line in kept))
    return log_path


def cosine_with_warmup(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(config: FinetuneConfig, resume: bool = False, progress: bool = True) -> dict:
    """Fine-tune, write the output folder, and return the metrics written to ``metrics.json``."""
    from accelerate import Accelerator
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from tqdm.auto import tqdm

    output_dir = Path(config.output_dir)
    checkpoint = latest_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {output_dir / CHECKPOINTS}")
    if not resume and (output_dir / "adapter_config.json").exists():
        raise ConfigError(f"output_dir {str(output_dir)!r} already holds a trained adapter; choose another or delete it")
    run = prepare_run(config)
    precision = _precision(config.train.precision)
    # Precision is handled by torch.autocast below rather than by Accelerator(mixed_precision=...): accelerate
    # keeps that setting in a process-wide singleton, which refuses a second run with another precision.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    autocast_type = "cuda" if accelerator.device.type == "cuda" else "cpu"
    model, tokenizer = load_lora_model(run)
    encoder = PromptEncoder(tokenizer, run.template, run.label_set)

    sequences = build_sequences(run.train_examples, encoder, pack=config.data.pack)
    too_long = sum(1 for s in sequences if len(s.input_ids) > config.data.max_length)
    sequences = [s for s in sequences if len(s.input_ids) <= config.data.max_length]
    if not sequences:
        raise ConfigError(f"no training sequence fits data.max_length={config.data.max_length}")
    lengths = [len(s.input_ids) for s in sequences]
    t = config.train
    per_step = t.batch_size * t.grad_accum * accelerator.num_processes
    steps_per_epoch = math.ceil(len(sequences) / per_step)
    total_steps = t.max_steps or t.epochs * steps_per_epoch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)
    scheduler = cosine_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)

    state = {"step": 0, "tokens": 0, "loss_tokens": 0, "elapsed_s": 0.0}
    if checkpoint is not None:
        state = restore_checkpoint(
            checkpoint, lambda weights: set_peft_model_state_dict(accelerator.unwrap_model(model), weights),
            optimizer, scheduler)
        logger.info("resuming from %s (step %d of %d)", checkpoint, state["step"], total_steps)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir / "config.yaml")
    log_path = start_log(output_dir, resume, state["step"])
    if too_long:
        logger.warning("dropped %d training sequences longer than data.max_length=%d", too_long, config.data.max_length)

    model.train()
    started = time.perf_counter()
    elapsed_before = state["elapsed_s"]
    bar = tqdm(total=total_steps, initial=state["step"], disable=not progress or not accelerator.is_main_process,
               desc=f"finetune {config.mode}", unit="step", dynamic_ncols=True)
    stopped_early = False
    micro_batches_per_step = t.grad_accum * accelerator.num_processes
    batches, batches_epoch = [], -1
    while state["step"] < total_steps:
        epoch, step_in_epoch = divmod(state["step"], steps_per_epoch)
        if epoch != batches_epoch:
            # Recomputed from (seed, epoch) rather than stored: a resumed run gets the same order.
            batches, batches_epoch = epoch_batches(lengths, t.batch_size, t.bucket_batches, t.seed, epoch), epoch
        group = batches[step_in_epoch * micro_batches_per_step : (step_in_epoch + 1) * micro_batches_per_step]
        mine = group[accelerator.process_index :: accelerator.num_processes]
        total_loss_tokens = sum(sequences[i].loss_tokens for b in mine for i in b)
        step_loss = 0.0
        for batch_indices in mine:
            batch = {k: v.to(accelerator.device) for k, v in collate([sequences[i] for i in batch_indices], tokenizer.pad_token_id).items()}
            with torch.autocast(autocast_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss_sum, n = sequence_loss(model, batch)
            # Token-level mean over the whole optimizer step, however the tokens fall into micro-batches.
            accelerator.backward(loss_sum / max(1, total_loss_tokens))
            step_loss += loss_sum.item()
            state["tokens"] += int(batch["tokens"])
            state["loss_tokens"] += n
        if t.max_grad_norm:
            accelerator.clip_grad_norm_(trainable, t.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        # The logging window lives in the checkpointed state, so a resumed run logs what an uninterrupted one would.
        state["window_loss"] = state.get("window_loss", 0.0) + step_loss
        state["window_tokens"] = state.get("window_tokens", 0) + total_loss_tokens
        state["elapsed_s"] = elapsed_before + time.perf_counter() - started
        tokens_per_s = state["tokens"] / max(1e-9, state["elapsed_s"])
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss / max(1, total_loss_tokens):.4f}", tok_s=f"{tokens_per_s:.0f}")
        if state["step"] % t.log_every == 0 or state["step"] == total_steps:
            record = {"step": state["step"], "epoch": epoch, "loss": state["window_loss"] / max(1, state["window_tokens"]),
                      "lr": scheduler.get_last_lr()[0], "tokens": state["tokens"], "tokens_per_s": tokens_per_s,
                      "elapsed_s": round(state["elapsed_s"], 2)}
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            state["window_loss"], state["window_tokens"] = 0.0, 0
        state["last_loss"] = step_loss / max(1, total_loss_tokens)
        state.setdefault("losses", []).append(state["last_loss"])
        if t.checkpoint_every and state["step"] % t.checkpoint_every == 0 and state["step"] < total_steps:
            save_checkpoint(output_dir, get_peft_model_state_dict(accelerator.unwrap_model(model)), optimizer,
                            scheduler, state)
        if t.max_minutes and time.perf_counter() - started > 60 * t.max_minutes and state["step"] < total_steps:
            save_checkpoint(output_dir, get_peft_model_state_dict(accelerator.unwrap_model(model)), optimizer,
                            scheduler, state)
            logger.warning("stopped after train.max_minutes=%s at step %d of %d; --resume continues",
                           t.max_minutes, state["step"], total_steps)
            stopped_early = True
            break
    bar.close()

    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(output_dir)
    card = output_dir / "README.md"
    if card.is_file() and "[More Information Needed]" in card.read_text():
        card.unlink()  # peft's empty model-card template: config.yaml and metrics.json describe the adapter
    save_prompt(output_dir, run.template, run.label_set)
    metrics = {
        "mode": config.mode,
        "base_model": config.base_model,
        "steps": state["step"],
        "total_steps": total_steps,
        "completed": not stopped_early,
        "train_sentences": len(run.train_examples),
        "train_sequences": len(sequences),
        "dropped_too_long": too_long,
        "epochs_seen": state["step"] / steps_per_epoch,
        "final_loss": state.get("last_loss"),
        "tokens": state["tokens"],
        "loss_tokens": state["loss_tokens"],
        "tokens_per_s": state["tokens"] / max(1e-9, state["elapsed_s"]),
        "wall_time_s": state["elapsed_s"],
        "precision": precision,
        "device": str(accelerator.device),
        "losses": state.get("losses", []),
    }
    if not stopped_early:
        shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
    if run.dev_examples:
        from padellm.dev_eval import dev_scores

        metrics["dev"] = dev_scores(unwrapped, encoder, run.dev_examples, progress=progress)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
