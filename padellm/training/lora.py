"""LoRA fine-tuning for PaDeLLM and the autoregressive baseline: one pipeline, the template's format decides the
sequences.

``train`` runs named steps: ``prepare_run`` (``lora_run``: every input checked, all problems at once, before any
weight is loaded), ``load_lora_model``, ``training_sequences``, ``OptimizerSteps`` in the shared loop
(length-bucketed batches, a cosine schedule with warm-up, seeded order, resumable checkpoints, a progress bar with
loss and tokens/s), ``save_adapter``, and the dev scores.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path

import torch

from padellm.adapters import store_weights_as
from padellm.errors import ConfigError
from padellm.formats import format_of
from padellm.formats.base import most_mentions
from padellm.models import cpu_has_native_bf16
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import save_prompt
from padellm.training.batching import collate, epoch_batches
from padellm.training.checkpoints import checkpoint_to_resume, discard_checkpoints, save_checkpoint
from padellm.training.config import FinetuneConfig
from padellm.training.loop import (Schedule, StepOutcome, begin_run, cosine_with_warmup, loop_metrics, run_loop,
                                   update)
from padellm.training.lora_run import Run, prepare_run
from padellm.types import Example

logger = logging.getLogger(__name__)


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

    form = format_of(encoder.template)
    limits = [(form.generation_limit, form.longest_target(examples, encoder), "generation", "tokens (EOS included)")]
    if form.caps_mentions:
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


def training_sequences(run: Run, encoder: PromptEncoder) -> tuple[list, int]:
    """Step 2 of ``train``: the run's training sequences (the template's format decides their shape), without those
    longer than ``data.max_length``, and how many were dropped."""
    data = run.config.data
    form = format_of(encoder.template)
    sequences = [s for example in run.train_examples for s in form.training_sequences(example, encoder, data)]
    kept = [s for s in sequences if len(s.input_ids) <= data.max_length]
    if not kept:
        raise ConfigError(f"no training sequence fits data.max_length={data.max_length}")
    return kept, len(sequences) - len(kept)


class OptimizerSteps:
    """Step 3 of ``train``: one optimizer step over ``grad_accum`` micro-batches per process (a weighted token-level
    mean over the whole step, however its tokens fall into micro-batches and processes), in the loop's terms."""

    def __init__(self, model, optimizer, scheduler, accelerator, sequences: list, pad_id: int, train, precision: str):
        self.model, self.optimizer, self.scheduler, self.accelerator = model, optimizer, scheduler, accelerator
        self.sequences, self.pad_id, self.t, self.precision = sequences, pad_id, train, precision
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.world = accelerator.num_processes
        self.micro_batches = train.grad_accum * self.world
        lengths = [len(s.input_ids) for s in sequences]
        # Recomputed from (seed, epoch) rather than stored: a resumed run gets the same order.
        self.batches_of = functools.lru_cache(maxsize=1)(
            lambda epoch: epoch_batches(lengths, train.batch_size, train.bucket_batches, train.seed, epoch))

    def global_sum(self, value: float) -> float:
        """``value`` summed over the processes of a multi-process run (``accelerate launch``, ``torchrun``)."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(tensor, "sum").item()

    def __call__(self, state: dict, epoch: int, step_in_epoch: int) -> StepOutcome:
        accelerator, sequences = self.accelerator, self.sequences
        group = self.batches_of(epoch)[step_in_epoch * self.micro_batches : (step_in_epoch + 1) * self.micro_batches]
        mine = group[accelerator.process_index :: self.world]
        total_weight = self.global_sum(sum(sequences[i].loss_weight for b in mine for i in b))
        step_loss = step_tokens = step_loss_tokens = 0.0
        for batch_indices in mine:
            batch = {k: v.to(accelerator.device)
                     for k, v in collate([sequences[i] for i in batch_indices], self.pad_id).items()}
            with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                loss_sum, n = sequence_loss(self.model, batch)
            accelerator.backward(loss_sum / max(1e-9, total_weight))
            step_loss += loss_sum.item()
            step_tokens += int(batch["tokens"])
            step_loss_tokens += n
        if self.world > 1:  # each process's share of the gradient, summed (a process may have had no micro-batch)
            for parameter in self.trainable:
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
                torch.distributed.all_reduce(parameter.grad)
        state["tokens"] += int(self.global_sum(step_tokens))
        state["loss_tokens"] += int(self.global_sum(step_loss_tokens))
        update(self.optimizer, self.scheduler, self.trainable, self.t.max_grad_norm, accelerator.clip_grad_norm_)
        return StepOutcome(self.global_sum(step_loss) / max(1e-9, total_weight), weight=total_weight,
                           log={"tokens": state["tokens"]})


def save_adapter(output_dir: Path, model, run: Run, encoder: PromptEncoder) -> None:
    """Step 4 of ``train``: the LoRA weights (in ``train.adapter_dtype``), the template and labels they answer, and
    the decode limits the training data calls for: everything ``padellm.load`` needs."""
    model.save_pretrained(output_dir)
    if run.config.train.adapter_dtype != "float32":
        store_weights_as(output_dir, run.config.train.adapter_dtype)
    card = output_dir / "README.md"
    if card.is_file() and "[More Information Needed]" in card.read_text():
        card.unlink()  # peft's empty model-card template: config.yaml and metrics.json describe the adapter
    save_prompt(output_dir, run.template, run.label_set)
    write_generation_limits(output_dir, run.train_examples, encoder)


def train(config: FinetuneConfig, resume: bool = False, progress: bool = True) -> dict:
    """Fine-tune, write the output folder, and return the metrics written to ``metrics.json``. The steps: load and
    check everything (``prepare_run``, ``load_lora_model``), build the sequences (``training_sequences``), run the
    loop (``OptimizerSteps`` in ``run_loop``), save (``save_adapter``), score the dev sample (``dev_scores``)."""
    from accelerate import Accelerator
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    output_dir = Path(config.output_dir)
    checkpoint = checkpoint_to_resume(output_dir, resume, output_dir / "adapter_config.json", "adapter")
    run = prepare_run(config)
    config, t = run.config, run.config.train  # with the prompt it resolved
    precision = _precision(t.precision)
    # Precision is handled by torch.autocast rather than by Accelerator(mixed_precision=...): accelerate keeps that
    # setting in a process-wide singleton, which refuses a second run with another precision.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model, encoder = load_lora_model(run)
    sequences, too_long = training_sequences(run, encoder)
    steps_per_epoch = math.ceil(len(sequences) / (t.batch_size * t.grad_accum * accelerator.num_processes))
    schedule = Schedule(t.max_steps or t.epochs * steps_per_epoch, steps_per_epoch, t.checkpoint_every, t.log_every,
                        t.max_minutes, "tokens")

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                  weight_decay=t.weight_decay)
    scheduler = cosine_with_warmup(optimizer, int(t.warmup_ratio * schedule.total_steps), schedule.total_steps)
    if accelerator.num_processes == 1:
        model, optimizer = accelerator.prepare(model, optimizer)
    else:  # not wrapped in DistributedDataParallel: sequence_loss calls the model's parts; a step syncs gradients
        model = model.to(accelerator.device)
        optimizer = accelerator.prepare(optimizer)
    unwrapped = accelerator.unwrap_model(model)
    state, log_path = begin_run(output_dir, config, checkpoint,
                                lambda weights: set_peft_model_state_dict(unwrapped, weights), optimizer, scheduler,
                                {"step": 0, "tokens": 0, "loss_tokens": 0, "elapsed_s": 0.0}, resume,
                                main=accelerator.is_main_process)
    if too_long:
        logger.warning("dropped %d training sequences longer than data.max_length=%d", too_long, config.data.max_length)
    steps = OptimizerSteps(model, optimizer, scheduler, accelerator, sequences, encoder.tokenizer.pad_token_id, t,
                           precision)

    def save(state: dict) -> None:
        if accelerator.is_main_process:
            save_checkpoint(output_dir, get_peft_model_state_dict(unwrapped), optimizer, scheduler, state)
        accelerator.wait_for_everyone()

    model.train()
    stopped_early = run_loop(schedule, state, steps, save, log_path, scheduler, f"finetune {config.mode}",
                             progress and accelerator.is_main_process, main=accelerator.is_main_process,
                             agree=lambda flag: steps.global_sum(float(flag)) > 0)
    if not accelerator.is_main_process:  # the main process writes the adapter, its metrics and the dev scores
        accelerator.wait_for_everyone()
        return {"mode": config.mode, "steps": state["step"], "process_index": accelerator.process_index}

    save_adapter(output_dir, unwrapped, run, encoder)
    metrics = {"mode": config.mode, "base_model": config.base_model, "init_adapter": config.init_adapter,
               "train_sentences": len(run.train_examples), "train_sequences": len(sequences),
               "dropped_too_long": too_long, "tokens": state["tokens"], "loss_tokens": state["loss_tokens"],
               **loop_metrics(state, schedule, stopped_early), "precision": precision,
               "device": str(accelerator.device)}
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
