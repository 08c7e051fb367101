"""LoRA fine-tuning for PaDeLLM and the autoregressive baseline: one pipeline, two sequence formats.

``prepare_run`` checks every input (data, labels, template, base model) and reports all problems at once
before any weight is loaded; ``train`` runs the loop with length-bucketed batches, a cosine schedule with
warm-up, seeded order, resumable checkpoints, and a progress bar showing loss and tokens/s.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from padellm.adapters import store_weights_as
from padellm.data.datasets import load_dataset, read_file
from padellm.errors import ConfigError, PadellmError
from padellm.models import cpu_has_native_bf16, resolve_model
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import (LabelSet, Template, default_prompt, load_label_names, load_prompt,
                                      load_template, save_prompt, shipped_label_names)
from padellm.training.batching import collate, epoch_batches
from padellm.training.checkpoints import checkpoint_to_resume, discard_checkpoints, restore_checkpoint, save_checkpoint
from padellm.training.config import FinetuneConfig
from padellm.training.config_files import config_from_dict, read_raw_config, save_config
from padellm.training.loop import LOG_FILE, Schedule, StepOutcome, cosine_with_warmup, run_loop, start_log
from padellm.training.sequences import build_sequences, longest_target, most_mentions
from padellm.types import Example

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything a training run needs, resolved and checked."""

    config: FinetuneConfig
    template: Template
    label_set: LabelSet
    train_examples: list[Example]
    dev_examples: list[Example]
    base_model_dir: Path


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
            dev_examples = read_file(Path(data.dev_file))[0]
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
    names_spec = data.label_names or shipped_label_names(data.dataset)
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
    prompt = config.prompt or default_prompt(config.mode, [ex.text for ex in train_examples[:1000]])
    config = dataclasses.replace(config, prompt=prompt)  # saved with the adapter as the template it trained
    try:
        template = load_template(prompt)
        if template.mode != config.mode:
            problems.append(f"prompt {prompt!r} is a {template.mode} template but mode is {config.mode!r}")
        elif template.mode == "parallel" and not template.has_count_stage:
            defaults = type(data)()
            problems += [f"data.{name}: the count-free prompt {prompt!r} has no count stage to weigh or "
                         f"supervise; got {getattr(data, name)!r} (leave it at {getattr(defaults, name)!r})"
                         for name in ("supervision", "count_weight", "zero_count_weight")
                         if getattr(data, name) != getattr(defaults, name)]
        elif template.mode == "parallel" and data.none_weight != 1.0:
            problems.append(f"data.none_weight: prompt {prompt!r} has a count stage, not none answers; "
                            f"got {data.none_weight!r} (leave it at 1.0, or use a count-free prompt such as "
                            f"padellm-en-branches-v1)")
    except ConfigError as err:
        problems += [f"prompt: {p}" for p in err.problems]

    base = None
    try:
        base = resolve_model(config.base_model, "base_model")
    except PadellmError as err:
        problems.append(f"base_model: {err}")
    if config.init_adapter:
        problems += init_adapter_problems(config, labels)
    if problems:
        raise ConfigError(problems)

    train_examples = _sample(train_examples, data.max_train_examples, config.train.seed)
    dev_examples = _sample(dev_examples, data.dev_sample, config.train.seed)
    return Run(config, template, label_set, train_examples, dev_examples, base)


def init_adapter_problems(config: FinetuneConfig, labels: list[str]) -> list[str]:
    """Why ``config.init_adapter`` cannot start this run: not an adapter folder, or trained with another base
    model, mode, prompt, label set or LoRA shape (its weights would not fit, or would answer another prompt)."""
    folder = Path(config.init_adapter)
    name = f"init_adapter {config.init_adapter!r}"
    if not (folder / "config.yaml").is_file() or not (folder / "adapter_model.safetensors").is_file():
        return [f"{name} is not an adapter folder written by `padellm finetune` (config.yaml and "
                f"adapter_model.safetensors expected)"]
    try:
        saved = config_from_dict(read_raw_config(folder / "config.yaml")[0], str(folder / "config.yaml"), FinetuneConfig)
        _, saved_labels = load_prompt(folder)
    except PadellmError as err:
        return [f"{name}: {err}"]

    def shape(c: FinetuneConfig) -> dict:
        # An adapter saved before the default prompt followed the data says '' for the default of its time.
        prompt = c.prompt or {"parallel": "padellm-en-v1", "autoregressive": "autoregressive-en-v1"}[c.mode]
        return {"base_model": c.base_model, "mode": c.mode, "prompt": prompt, "lora.rank": c.lora.rank,
                "lora.alpha": c.lora.alpha, "lora.target_modules": c.lora.target_modules}

    mine, theirs = shape(config), shape(saved)
    problems = [f"{name} was trained with {key} {theirs[key]!r}; this run has {value!r}"
                for key, value in mine.items() if theirs[key] != value]
    if labels and sorted(saved_labels.labels) != sorted(labels):
        problems.append(f"{name} was trained on labels {list(saved_labels.labels)}; this run has {list(labels)}")
    return problems


# ------------------------------------------------------------------------------------------ the model


def _precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def set_lora_weights(model, path: Path):
    """Load saved LoRA weights (bf16 or fp32 on disk) into ``model``'s fp32 LoRA parameters; peft's load result
    (its missing and unexpected keys)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    return set_peft_model_state_dict(model, {name: tensor.float() for name, tensor in load_file(path).items()})


def load_lora_model(run: Run):
    """The base model in fp32 with LoRA weights, fresh (seeded) or ``init_adapter``'s, and its prompt encoder."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from padellm.model_families import load_tokenizer

    tokenizer, bos_ids = load_tokenizer(run.base_model_dir)
    # SDPA takes the boolean 4-D masks of tree-packed sequences as they are.
    model = AutoModelForCausalLM.from_pretrained(run.base_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    lora = run.config.lora
    targets = lora.target_modules if lora.target_modules == "all-linear" else [m.strip() for m in lora.target_modules.split(",")]
    torch.manual_seed(run.config.train.seed)
    model = get_peft_model(
        model,
        LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM"),
    )
    if run.config.init_adapter:
        result = set_lora_weights(model, Path(run.config.init_adapter) / "adapter_model.safetensors")
        missing = [key for key in result.missing_keys if "lora_" in key]
        if missing or result.unexpected_keys:
            raise ConfigError(f"init_adapter {run.config.init_adapter!r}: its LoRA weights do not fit this model "
                              f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected, e.g. "
                              f"{(missing or result.unexpected_keys)[0]})")
        logger.info("LoRA weights from %s", run.config.init_adapter)
    return model, PromptEncoder(tokenizer, run.template, run.label_set, bos_ids)


def sequence_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Weighted summed cross-entropy over the positions that carry a loss, and their number.

    The LM head (576 x 49,152 for SmolLM2, about a fifth of the model's work per token; 640 x 262,144 for Gemma 3,
    most of it) runs only where there is a loss: a few target tokens per sequence, not the whole prompt. Each
    target is predicted from the hidden state ``collate`` names for it (the previous token, or in a tree the end of
    the parent segment).
    """
    from padellm.model_families import family_for_type

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    family = family_for_type(causal_lm.config.model_type)
    hidden = family.hidden_states(causal_lm, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  position_ids=batch["position_ids"])
    logits = family.logits(causal_lm, hidden[batch["loss_rows"], batch["loss_sources"]])
    losses = torch.nn.functional.cross_entropy(logits.float(), batch["loss_targets"], reduction="none")
    return (losses * batch["loss_weights"]).sum(), int(batch["loss_targets"].numel())


def write_generation_limits(output_dir: Path, examples: list[Example], encoder: PromptEncoder) -> dict:
    """Where the training data teaches generations longer than ``DecodeConfig``'s default limit allows (Resume's
    Chinese mentions: up to 60 SmolLM2 tokens against max_mention_tokens 32), raise that limit, with a quarter to
    spare, in the adapter's decode.yaml, so that decoding does not cut what the model was taught to write. For a
    label-wise template the same holds for ``max_count``: its branch writes all of a label's mentions, and a cap
    below what training taught (CoNLL-2003: 20 mentions of one label in a sentence) would only discard some.
    Returns the settings written (none where the defaults suffice)."""
    from padellm.engine.decode_settings import read_decode_settings, write_decode_settings
    from padellm.engine.decoding import DecodeConfig

    limits = [(*longest_target(examples, encoder), "generation", "tokens (EOS included)")]
    if encoder.template.mode == "parallel" and encoder.parallel.labelwise:
        limits.append(("max_count", most_mentions(examples, encoder), "number of one label's mentions", "in a text"))
    settings, reasons = {}, []
    for field, largest, what, unit in limits:
        default = getattr(DecodeConfig(), field)
        if largest > default:
            settings[field] = math.ceil(1.25 * largest)
            reasons.append(f"the training data's largest {what} is {largest} {unit}, over the default {field} of "
                           f"{default}")
    if settings:
        write_decode_settings(output_dir, {**read_decode_settings(output_dir), **settings},
                              "Written by padellm finetune: " + ";\n".join(reasons) + "; a quarter to spare.")
    return settings


def train(config: FinetuneConfig, resume: bool = False, progress: bool = True) -> dict:
    """Fine-tune, write the output folder, and return the metrics written to ``metrics.json``."""
    from accelerate import Accelerator
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    output_dir = Path(config.output_dir)
    checkpoint = checkpoint_to_resume(output_dir, resume, output_dir / "adapter_config.json", "adapter")
    run = prepare_run(config)
    config = run.config  # with the prompt it resolved
    precision = _precision(config.train.precision)
    # Precision is handled by torch.autocast below rather than by Accelerator(mixed_precision=...): accelerate
    # keeps that setting in a process-wide singleton, which refuses a second run with another precision.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    autocast_type = "cuda" if accelerator.device.type == "cuda" else "cpu"
    model, encoder = load_lora_model(run)
    tokenizer = encoder.tokenizer

    sequences = build_sequences(run.train_examples, encoder, pack=config.data.pack,
                                supervision=config.data.supervision, count_weight=config.data.count_weight,
                                zero_count_weight=config.data.zero_count_weight, none_weight=config.data.none_weight)
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
    if accelerator.num_processes == 1:
        model, optimizer = accelerator.prepare(model, optimizer)
    else:  # not wrapped in DistributedDataParallel: sequence_loss calls the model's parts; ``step`` syncs gradients
        model = model.to(accelerator.device)
        optimizer = accelerator.prepare(optimizer)

    state = {"step": 0, "tokens": 0, "loss_tokens": 0, "elapsed_s": 0.0}
    if checkpoint is not None:
        state = restore_checkpoint(
            checkpoint, lambda weights: set_peft_model_state_dict(accelerator.unwrap_model(model), weights),
            optimizer, scheduler)
        logger.info("resuming from %s (step %d of %d)", checkpoint, state["step"], total_steps)
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / LOG_FILE
    if accelerator.is_main_process:
        save_config(config, output_dir / "config.yaml")
        start_log(output_dir, resume, state["step"])
    if too_long:
        logger.warning("dropped %d training sequences longer than data.max_length=%d", too_long, config.data.max_length)

    micro_batches_per_step = t.grad_accum * accelerator.num_processes
    world = accelerator.num_processes
    # Recomputed from (seed, epoch) rather than stored: a resumed run gets the same order.
    batches_of = functools.lru_cache(maxsize=1)(
        lambda epoch: epoch_batches(lengths, t.batch_size, t.bucket_batches, t.seed, epoch))

    def global_sum(value: float) -> float:
        """``value`` summed over the processes of a multi-process run (``accelerate launch``, ``torchrun``)."""
        if world == 1:
            return value
        return accelerator.reduce(torch.tensor([value], dtype=torch.float64, device=accelerator.device), "sum").item()

    def step(state: dict, epoch: int, step_in_epoch: int) -> StepOutcome:
        batches = batches_of(epoch)
        group = batches[step_in_epoch * micro_batches_per_step : (step_in_epoch + 1) * micro_batches_per_step]
        mine = group[accelerator.process_index :: world]
        total_weight = global_sum(sum(sequences[i].loss_weight for b in mine for i in b))
        step_loss = step_tokens = step_loss_tokens = 0.0
        for batch_indices in mine:
            batch = {k: v.to(accelerator.device)
                     for k, v in collate([sequences[i] for i in batch_indices], tokenizer.pad_token_id).items()}
            with torch.autocast(autocast_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss_sum, n = sequence_loss(model, batch)
            # Weighted token-level mean over the whole optimizer step, however the tokens fall into micro-batches
            # and processes.
            accelerator.backward(loss_sum / max(1e-9, total_weight))
            step_loss += loss_sum.item()
            step_tokens += int(batch["tokens"])
            step_loss_tokens += n
        if world > 1:  # each process's share of the gradient, summed (a process may have had no micro-batch)
            for parameter in trainable:
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
                torch.distributed.all_reduce(parameter.grad)
        state["tokens"] += int(global_sum(step_tokens))
        state["loss_tokens"] += int(global_sum(step_loss_tokens))
        if t.max_grad_norm:
            accelerator.clip_grad_norm_(trainable, t.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return StepOutcome(global_sum(step_loss) / max(1e-9, total_weight), weight=total_weight,
                           log={"tokens": state["tokens"]})

    def save(state: dict) -> None:
        if accelerator.is_main_process:
            save_checkpoint(output_dir, get_peft_model_state_dict(accelerator.unwrap_model(model)), optimizer,
                            scheduler, state)
        accelerator.wait_for_everyone()

    model.train()
    schedule = Schedule(total_steps, steps_per_epoch, t.checkpoint_every, t.log_every, t.max_minutes, "tokens")
    stopped_early = run_loop(schedule, state, step, save, log_path, scheduler, f"finetune {config.mode}",
                             progress and accelerator.is_main_process, main=accelerator.is_main_process,
                             agree=lambda flag: global_sum(float(flag)) > 0)
    unwrapped = accelerator.unwrap_model(model)
    if not accelerator.is_main_process:  # the main process writes the adapter, its metrics and the dev scores
        accelerator.wait_for_everyone()
        return {"mode": config.mode, "steps": state["step"], "process_index": accelerator.process_index}

    unwrapped.save_pretrained(output_dir)
    if t.adapter_dtype != "float32":
        store_weights_as(output_dir, t.adapter_dtype)
    card = output_dir / "README.md"
    if card.is_file() and "[More Information Needed]" in card.read_text():
        card.unlink()  # peft's empty model-card template: config.yaml and metrics.json describe the adapter
    save_prompt(output_dir, run.template, run.label_set)
    write_generation_limits(output_dir, run.train_examples, encoder)
    metrics = {
        "mode": config.mode,
        "base_model": config.base_model,
        "init_adapter": config.init_adapter,
        "steps": state["step"],
        "total_steps": total_steps,
        "completed": not stopped_early,
        "train_sentences": len(run.train_examples),
        "train_sequences": len(sequences),
        "dropped_too_long": too_long,
        "epochs_seen": state["step"] / steps_per_epoch,
        "final_loss": state["losses"][-1] if state.get("losses") else None,
        "tokens": state["tokens"],
        "loss_tokens": state["loss_tokens"],
        "tokens_per_s": state["tokens"] / max(1e-9, state["elapsed_s"]),
        "wall_time_s": state["elapsed_s"],
        "precision": precision,
        "device": str(accelerator.device),
        "losses": state.get("losses", []),
    }
    if stopped_early:
        # Decoding the dev sample costs minutes (25 on Resume's long Chinese texts) for an adapter that --resume
        # replaces: the completed run scores it.
        if run.dev_examples:
            logger.info("dev F1 not scored: the run stopped early; --resume scores it when the run completes")
    else:
        discard_checkpoints(output_dir)
        if run.dev_examples:
            from padellm.training.dev_scoring import dev_scores

            set_lora_weights(unwrapped, output_dir / "adapter_model.safetensors")  # decode the weights as saved
            metrics["dev"] = dev_scores(unwrapped, encoder, run.dev_examples, progress=progress)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return metrics
