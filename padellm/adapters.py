"""Load an adapter folder written by ``padellm finetune``: base model + LoRA weights + the prompt it was
trained with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from padellm.encoding import PromptEncoder
from padellm.errors import ConfigError
from padellm.prompts import load_prompt


@dataclass
class LoadedAdapter:
    folder: Path
    base_model_dir: Path
    model: object
    encoder: PromptEncoder

    @property
    def mode(self) -> str:
        return self.encoder.template.mode


def base_model_of(folder: str | Path) -> Path:
    """The base model folder an adapter was trained on (from its config.yaml)."""
    from padellm.training import _resolve_base_model

    folder = Path(folder)
    config_path = folder / "config.yaml"
    if not config_path.is_file() or not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{folder} is not an adapter folder written by `padellm finetune` (config.yaml and "
                          "adapter_config.json expected)")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    return _resolve_base_model(config["base_model"])


def load_adapter(folder: str | Path, dtype: str = "float32") -> LoadedAdapter:
    """The base model with the adapter's LoRA weights (merged, for speed) and its prompt encoder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    template, label_set = load_prompt(folder)
    base_dir = base_model_of(folder)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, folder).merge_and_unload().eval()
    return LoadedAdapter(folder, base_dir, model, PromptEncoder(tokenizer, template, label_set))
