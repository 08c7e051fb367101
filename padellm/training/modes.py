"""What ``padellm finetune`` can train, and the config class of each mode: LoRA for the two LLM modes, FastNER's own
for fastner, the BIO taggers' (early exit, CRF teacher, distilled student) for tagger."""

from __future__ import annotations

from pathlib import Path

from padellm.errors import PadellmError, one_of_problem

FINETUNE_MODES = ("parallel", "autoregressive", "fastner", "tagger")


def finetune_config_class(mode: str) -> type:
    """The config class that trains ``mode``."""
    from padellm.training.config import FinetuneConfig
    from padellm.training.fastner_config import FastNERTrainingConfig
    from padellm.training.tagger_config import TaggerTrainingConfig

    if mode not in FINETUNE_MODES:
        raise PadellmError(one_of_problem("mode", FINETUNE_MODES, mode))
    return {"fastner": FastNERTrainingConfig, "tagger": TaggerTrainingConfig}.get(mode, FinetuneConfig)


def load_finetune_config(path: str | Path | None, overrides: dict[str, str] | None = None):
    """A fine-tuning config file (or none) with ``section.field`` overrides, as the class its ``mode`` names."""
    from padellm.training.config_files import config_from_dict, read_raw_config

    raw, source = read_raw_config(path, overrides)
    return config_from_dict(raw, source, finetune_config_class(str(raw.get("mode", "parallel"))))
