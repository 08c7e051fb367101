"""The LoRA fine-tuning configuration (PaDeLLM and the autoregressive baseline): frozen dataclasses, validated at
construction with errors that name the parameter and the value; ``config_files`` loads them from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from padellm.errors import ConfigError, bound_problems, one_of_problem
from padellm.formats.counted import SUPERVISIONS

MODES = ("parallel", "autoregressive")
ADAPTER_DTYPES = ("bfloat16", "float32")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "conll2003"
    """A shared dataset name, a folder with split files, or a single training file."""
    train_split: str = "train"
    """Split of ``dataset`` to train on."""
    dev_split: str = "dev"
    """Split of ``dataset`` for the dev F1 at the end; empty for none."""
    dev_file: str = ""
    """A dev file to use instead of ``dataset``'s dev split."""
    label_names: str = ""
    """YAML mapping label -> natural-language name, or a dataset name under prompts/labels; empty: the
    dataset's own file when there is one, else each label is its own name."""
    labels: str = ""
    """Comma-separated labels to train (default: every label in the training data)."""
    max_train_examples: int = 0
    """Train on the first N examples after a seeded shuffle (0: all)."""
    dev_sample: int = 300
    """Dev sentences decoded for the dev F1 in metrics.json (a seeded sample; 0: the whole split)."""
    max_length: int = 512
    """Training sequences longer than this many tokens are dropped, and counted in the log."""
    pack: bool = True
    """PaDeLLM only: train each sentence's count and mention sequences as one tree-packed sequence (the same
    loss per token, 3.1x fewer tokens on CoNLL-2003); false: one padded sequence each."""
    supervision: str = "compact"
    """PaDeLLM only: paper (the paper's objective: one sequence per (text, label, k), so a count is trained once
    per mention, and the <mention k> markers are in the loss) or compact (each count once, markers not in the
    loss)."""
    count_weight: float = 1.0
    """PaDeLLM only: a factor on the loss of the count tokens."""
    zero_count_weight: float = 1.0
    """PaDeLLM only: a further factor on the loss of a count 0 (a label the text does not mention: most pairs, so
    that an under-trained count stage says "none"); below 1 evens the counts out."""
    none_weight: float = 1.0
    """Count-free PaDeLLM only: a factor on the loss of a branch's none answer. Where entities are sparse most
    branches answer none, which an under-trained model then says everywhere; below 1 evens that out."""

    def problems(self) -> list[str]:
        out = bound_problems(self, "data", non_negative=("max_train_examples", "dev_sample"))
        if self.max_length < 16:
            out.append(f"data.max_length must be >= 16; got {self.max_length}")
        if not self.dataset:
            out.append("data.dataset must name a dataset or a file; got ''")
        if self.supervision not in SUPERVISIONS:
            out.append(one_of_problem("data.supervision", SUPERVISIONS, self.supervision))
        out += bound_problems(self, "data", positive=("count_weight", "zero_count_weight", "none_weight"))
        return out


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    """LoRA rank r."""
    alpha: float = 16.0
    """LoRA scaling numerator (the update is scaled by alpha / rank)."""
    dropout: float = 0.0
    """Dropout on the LoRA input. Off by default: on CPU, drawing the masks took 45% of the forward pass
    (SmolLM2, bf16, batch 16 x 80 tokens) for a regulariser that matters little with a few hundred steps."""
    target_modules: str = "all-linear"
    """Comma-separated module names (q_proj,v_proj,...) or all-linear."""

    def problems(self) -> list[str]:
        out = []
        if self.rank <= 0:
            out.append(f"lora.rank must be > 0; got {self.rank}")
        if self.alpha <= 0:
            out.append(f"lora.alpha must be > 0; got {self.alpha}")
        if not 0 <= self.dropout < 1:
            out.append(f"lora.dropout must be in [0, 1); got {self.dropout}")
        if not self.target_modules.strip():
            out.append("lora.target_modules must not be empty")
        return out


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 2e-3
    """Peak learning rate (AdamW), reached after the warm-up, then cosine decay to 0. The default is the shipped
    adapters' (LoRA rank 8, both decoders)."""
    epochs: int = 1
    """Passes over the training sequences (max_steps, when set, wins)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs)."""
    max_minutes: float = 0.0
    """Stop (and checkpoint) after this much wall time, for bounded CPU runs (0: no limit); --resume continues, and
    the completed run scores the dev sample."""
    batch_size: int = 16
    """Sequences per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    warmup_ratio: float = 0.05
    """Fraction of the steps spent warming the learning rate up linearly."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Gradient clipping (0: none)."""
    bucket_batches: int = 64
    """Length bucketing: sequences are shuffled, cut into chunks of this many batches, and sorted by length
    inside each chunk, so batches hold similar lengths (less padding) while the order stays random."""
    seed: int = 0
    """Seeds data order, LoRA initialisation and dropout."""
    precision: str = "auto"
    """bf16 (autocast) where the CPU or GPU supports it, else fp32; or force one."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every N optimizer steps (0: only at the end)."""
    log_every: int = 10
    """Write a line to train_log.jsonl every N optimizer steps."""
    adapter_dtype: str = "bfloat16"
    """dtype of the saved LoRA weights: bfloat16 halves the adapter file (rank 8 on SmolLM2: 9.8 -> 4.9 MB);
    float32 keeps them as trained. Checkpoints keep float32 either way."""

    def problems(self) -> list[str]:
        out = []
        if self.adapter_dtype not in ADAPTER_DTYPES:
            out.append(one_of_problem("train.adapter_dtype", ADAPTER_DTYPES, self.adapter_dtype))
        out += bound_problems(self, "train", positive=("lr",),
                              at_least_one=("epochs", "batch_size", "grad_accum", "bucket_batches", "log_every"),
                              non_negative=("max_steps", "checkpoint_every", "max_minutes", "weight_decay",
                                            "max_grad_norm"))
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"train.warmup_ratio must be in [0, 1); got {self.warmup_ratio}")
        if self.precision not in PRECISIONS:
            out.append(one_of_problem("train.precision", PRECISIONS, self.precision))
        return out


@dataclass(frozen=True)
class FinetuneConfig:
    output_dir: str = ""
    """Where the adapter, templates, logs and checkpoints go."""
    mode: str = "parallel"
    """parallel (PaDeLLM-NER) or autoregressive (the baseline)."""
    prompt: str = ""
    """Template name under prompts/ or a file; empty: the shipped adapters' format for the mode and the language of
    the training text (padellm-en-labelwise-v1 / autoregressive-en-v1; padellm-zh-labelwise-v1 /
    autoregressive-zh-v1 for Chinese)."""
    base_model: str = "gemma3-270m"
    """A packaged model name (gemma3-270m, smollm2-135m-instruct: padellm models prepare) or a Hugging Face model
    folder (a Llama, Qwen or Gemma of your own)."""
    init_adapter: str = ""
    """An adapter folder written by ``padellm finetune`` whose LoRA weights start this run instead of fresh ones
    (continued training: another epoch under a new warm-up and cosine schedule). It must have been trained with
    the same base model, mode, prompt, labels and LoRA shape; empty: fresh LoRA weights."""
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        problems = []
        if not self.output_dir:
            problems.append("output_dir must be set")
        if self.init_adapter and self.output_dir and Path(self.init_adapter).resolve() == Path(self.output_dir).resolve():
            problems.append(f"init_adapter must not be output_dir (the run would overwrite the adapter it starts "
                            f"from); got {self.init_adapter!r} for both")
        if self.mode not in MODES:
            problems.append(one_of_problem("mode", MODES, self.mode))
        if not self.base_model:
            problems.append("base_model must be set")
        problems += self.data.problems() + self.lora.problems() + self.train.problems()
        if problems:
            raise ConfigError(problems)
