"""Step 1 of LoRA fine-tuning: resolve and check everything a run needs (data, labels, template, base model, the
adapter it continues from) and report every problem at once, before any weight is loaded."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

from padellm.data.datasets import load_dataset, read_file
from padellm.errors import ConfigError, PadellmError
from padellm.formats import format_of
from padellm.models import resolve_model
from padellm.prompts.templates import Template, default_prompt, load_prompt, load_template
from padellm.prompts.labels import LabelSet, load_label_names, shipped_label_names
from padellm.training.config import FinetuneConfig
from padellm.training.config_files import config_from_dict, read_raw_config
from padellm.types import Example


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
        else:
            problems += format_of(template).training_problems(data, prompt)
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
