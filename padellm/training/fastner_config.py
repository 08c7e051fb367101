"""The FastNER training configuration: frozen dataclasses, validated at construction with errors that name the
parameter and the value; ``config_files`` loads them from YAML (``mode: fastner``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from padellm.baselines.fastner import FastNERConfig, SpanModelConfig
from padellm.errors import ConfigError, bound_problems, one_of_problem

EXIT_WEIGHTS = ("linear", "uniform")


@dataclass(frozen=True)
class FastNERData:
    dataset: str = "conll2003"
    """A shared dataset name, a folder with split files, or a file."""
    train_split: str = "train"
    """Split to train on."""
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
        out = bound_problems(self, "train", positive=("lr", "head_lr"),
                             at_least_one=("epochs", "batch_size", "bucket_batches", "log_every"),
                             non_negative=("max_steps", "max_minutes", "weight_decay", "max_grad_norm",
                                           "checkpoint_every"))
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"train.warmup_ratio must be in [0, 1); got {self.warmup_ratio}")
        if self.exit_weights not in EXIT_WEIGHTS:
            out.append(one_of_problem("train.exit_weights", EXIT_WEIGHTS, self.exit_weights))
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
