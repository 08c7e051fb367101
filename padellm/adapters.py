"""Load an adapter folder written by ``padellm finetune``: base model + LoRA weights + the prompt it was
trained with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from padellm.prompts.encoding import PromptEncoder
from padellm.errors import ConfigError
from padellm.prompts.templates import load_prompt

logger = logging.getLogger(__name__)


@dataclass
class LoadedAdapter:
    folder: Path
    base_model_dir: Path
    model: object
    encoder: PromptEncoder

    @property
    def mode(self) -> str:
        return self.encoder.template.mode


SHIPPED_ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"


def shipped_adapter(system: str, dataset: str = "conll2003") -> Path:
    """The adapter folder shipped in the repository for ``dataset`` and ``system`` (parallel, autoregressive or
    structured): the one whose config.yaml says it was trained on that dataset and whose template makes it that
    system (``adapters/resume-parallel`` for resume_zh; ``adapters/conll2003-structured`` for the paper's format)."""
    from padellm.formats import format_of

    for folder in sorted(SHIPPED_ADAPTERS.glob("*/config.yaml")):
        config = yaml.safe_load(folder.read_text(encoding="utf-8")) or {}
        if (config.get("data") or {}).get("dataset") != dataset:
            continue
        if format_of(load_prompt(folder.parent)[0]).system == system:
            return folder.parent
    raise ConfigError(f"no shipped {system} adapter for {dataset} under {SHIPPED_ADAPTERS}; pass --adapter")


def _base_model_spec(folder: Path) -> tuple[str, Path]:
    config_path = folder / "config.yaml"
    if not config_path.is_file() or not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{folder} is not an adapter folder written by `padellm finetune` (config.yaml and "
                          "adapter_config.json expected)")
    return yaml.safe_load(config_path.read_text(encoding="utf-8"))["base_model"], config_path


def base_model_of(folder: str | Path) -> Path:
    """The base model folder an adapter was trained on (from its config.yaml)."""
    from padellm.models import resolve_model

    spec, config_path = _base_model_spec(Path(folder))
    return resolve_model(spec, f"{config_path}: base_model")


def base_model_name(folder: str | Path) -> str:
    """The base model's name as a user would give it: a packaged model's name, or its folder's last part."""
    from padellm.models import PACKAGED_MODELS

    spec, _ = _base_model_spec(Path(folder))
    return spec if spec in PACKAGED_MODELS else Path(spec).name


def merged_model(folder: str | Path) -> Path:
    """A plain model folder with the adapter's LoRA weights merged into its base model (for engines where LoRA
    is slow, such as vLLM on CPU), built once into the cache and checked against its manifest on every call."""
    import hashlib
    import shutil

    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from padellm.models import build_cached_folder, cache_dir, sha256_file, verify_folder

    folder = Path(folder)
    base_dir = base_model_of(folder)
    digest = hashlib.sha256(str(base_dir.resolve()).encode())
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update(sha256_file(folder / name).encode())
    for manifest in sorted(base_dir.glob("padellm-manifest.json")):
        digest.update(sha256_file(manifest).encode())
    fingerprint = digest.hexdigest()
    target = cache_dir() / "merged" / f"{folder.resolve().name}-{fingerprint[:12]}"
    if target.is_dir() and not verify_folder(target):
        return target
    shutil.rmtree(target, ignore_errors=True)
    logger.info("merging %s into %s (once; later calls reuse %s)", folder, base_dir, target)

    def build(staging: Path) -> None:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        dtype = AutoConfig.from_pretrained(base_dir).dtype or torch.float32  # the base model's stored dtype
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        PeftModel.from_pretrained(base, folder).merge_and_unload().to(dtype).save_pretrained(staging)
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(staging)

    build_cached_folder(target, build, {"adapter": str(folder.resolve()), "base_model": str(base_dir),
                                        "adapter_sha256": fingerprint})
    return target


def load_adapter(folder: str | Path, dtype: str = "float32") -> LoadedAdapter:
    """The base model with the adapter's LoRA weights (merged, for speed) and its prompt encoder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from padellm.model_families import load_tokenizer

    folder = Path(folder)
    template, label_set = load_prompt(folder)
    base_dir = base_model_of(folder)
    tokenizer, bos_ids = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, folder).merge_and_unload().eval()
    return LoadedAdapter(folder, base_dir, model, PromptEncoder(tokenizer, template, label_set, bos_ids))


def store_weights_as(folder: str | Path, dtype: str) -> Path:
    """Rewrite ``folder``'s ``adapter_model.safetensors`` with its floating-point tensors in ``dtype``
    (bfloat16: half the file; loading casts them back to the model's dtype)."""
    import torch
    from safetensors.torch import load_file, save_file

    path = Path(folder) / "adapter_model.safetensors"
    target = getattr(torch, dtype)
    tensors = {name: t.to(target) if t.is_floating_point() else t for name, t in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})
    return path
