"""The BIO tagger training configuration (``mode: tagger``): the early-exit tagger (off-ramps after every layer,
Li et al. 2021), a CRF tagger (the distillation teacher), or a smaller CRF student distilled from a teacher
(Zhou et al. 2021). Frozen dataclasses validated at construction; ``config_files`` loads them from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field

from padellm.baselines.tagger import TaggerConfig, settings_problems
from padellm.errors import ConfigError, bound_problems
from padellm.training.fastner_config import FastNERData, FastNERTrain


@dataclass(frozen=True)
class TaggerModel:
    encoder: str = "minilm-l6"
    """A packaged encoder name (padellm models prepare) or a BERT-like Hugging Face folder."""
    layers: int = 0
    """Encoder layers kept (0: all); a distillation student keeps the first few."""
    crf: bool = False
    """A CRF over the last layer (teacher and student) instead of off-ramps after every layer (early exit)."""
    dropout: float = 0.1
    max_subwords: int = 256
    init: str = ""
    """A trained tagger's folder (padellm finetune mode tagger) to start from instead of the bare encoder: its
    encoder, heads, tokenizer and saved settings (layers, dropout, max_subwords) are kept. Self-sampling
    fine-tuning starts from the early-exit tagger this way."""

    def problems(self) -> list[str]:
        out = ["model.encoder must name an encoder; got ''"] if not self.encoder else []
        return out + [f"model.{p}" for p in settings_problems(self.layers, self.dropout, self.max_subwords)]


@dataclass(frozen=True)
class Distillation:
    teacher: str = ""
    """A trained CRF tagger's model folder (padellm finetune mode tagger, model.crf true): distil from it; empty:
    train on the gold tags only."""
    k: int = 1
    """The teacher's k best paths are the sequence-level targets."""
    gold_weight: float = 1.0
    sequence_weight: float = 1.0
    """Weight of the k-best paths' loss (0: the token grain only)."""
    token_weight: float = 1.0
    """Weight of the teacher-marginal cross-entropy (0: the sequence grain only)."""

    def problems(self) -> list[str]:
        out = []
        if self.k < 1:
            out.append(f"distill.k must be >= 1; got {self.k}")
        out += bound_problems(self, "distill", non_negative=("gold_weight", "sequence_weight", "token_weight"))
        if self.teacher and not (self.gold_weight or self.sequence_weight or self.token_weight):
            out.append("distill: every loss weight is 0; nothing to learn")
        return out


@dataclass(frozen=True)
class SelfSampling:
    max_threshold: float = 0.0
    """Self-sampling fine-tuning (Li et al. 2021) when > 0: every training sentence runs TOKEE at a threshold
    drawn uniformly from [0, max_threshold] and each off-ramp learns from the words still running there."""
    window: int = 1
    """TOKEE's window during self-sampling (use the one you will decode with)."""

    def problems(self) -> list[str]:
        out = []
        if not 0 <= self.max_threshold <= 1:
            out.append(f"self_sampling.max_threshold must be in [0, 1] (0: off); got {self.max_threshold}")
        if self.window < 0:
            out.append(f"self_sampling.window must be >= 0; got {self.window}")
        return out


@dataclass(frozen=True)
class TaggerTrainingConfig:
    mode: str = "tagger"
    """Always tagger: this is how padellm finetune tells this config from the others."""
    output_dir: str = ""
    """Where the model, logs, metrics and checkpoints go."""
    data: FastNERData = field(default_factory=FastNERData)
    model: TaggerModel = field(default_factory=TaggerModel)
    train: FastNERTrain = field(default_factory=FastNERTrain)
    distill: Distillation = field(default_factory=Distillation)
    self_sampling: SelfSampling = field(default_factory=SelfSampling)

    def __post_init__(self) -> None:
        problems = []
        if self.mode != "tagger":
            problems.append(f"mode must be tagger for this config; got {self.mode!r}")
        if not self.output_dir:
            problems.append("output_dir must be set")
        problems += (self.data.problems() + self.model.problems() + self.train.problems() + self.distill.problems()
                     + self.self_sampling.problems())
        if self.distill.teacher and not self.model.crf:
            problems.append("distill.teacher: distillation trains a CRF student; set model.crf: true")
        if self.self_sampling.max_threshold and (self.model.crf or self.distill.teacher):
            problems.append("self_sampling.max_threshold: self-sampling fine-tunes the early-exit (off-ramp) tagger; "
                            "set model.crf: false and no distill.teacher")
        if problems:
            raise ConfigError(problems)

    def model_config(self, labels: tuple[str, ...]) -> TaggerConfig:
        m = self.model
        return TaggerConfig(labels=labels, layers=m.layers, crf=m.crf, dropout=m.dropout, max_subwords=m.max_subwords)
