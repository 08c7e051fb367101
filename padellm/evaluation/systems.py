"""The systems ``padellm eval`` compares, behind one interface: ``run(examples) -> Output``.

An LLM system is an ``NER`` extractor (PaDeLLM parallel decoding or the autoregressive baseline) on one adapter;
a FastNER system is a trained FastNER model at one early-exit operating point. Each knows its label set, taken
from its trained artifact, and ``check_labels`` refuses data whose labels disagree with it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from padellm.baselines.exit_criteria import GATED, ExitConfig
from padellm.errors import ConfigError
from padellm.types import Entity, Example


@dataclass
class Output:
    """What one call of a system produced."""

    entities: list[list[Entity]]
    stage_s: dict[str, float] = field(default_factory=dict)
    """Seconds per decoding stage (LLM systems)."""
    stats: Counter = field(default_factory=Counter)
    """Sequences and tokens generated (LLM systems)."""
    exits: list[int] = field(default_factory=list)
    """Exit layer of each sentence (FastNER)."""
    counts: list[dict[str, int]] = field(default_factory=list)
    """The count stage's ``{label: count}`` per sentence (parallel systems)."""
    token_layers: tuple[int, int] = (0, 0)
    """Encoder token-layers computed, and what the full model computes for the same sentences (BIO taggers): the
    FLOPs measure of the early-exit papers."""


class System(Protocol):
    name: str
    kind: str
    """llm or fastner."""
    labels: tuple[str, ...]
    artifact: str

    def run(self, examples: list[Example]) -> Output: ...

    def settings(self) -> dict: ...


ORACLE_SUFFIX = " (oracle counts)"


class LLMSystem:
    """An ``NER`` extractor; one ``run`` is one decoding call over all the examples' texts. ``oracle_counts``
    (parallel adapters): the branches get the gold counts instead of the count stage's, which gives the F1 that
    the count stage holds back."""

    kind = "llm"

    def __init__(self, name: str, ner, artifact: str | Path, oracle_counts: bool = False):
        if oracle_counts and not ner.format.count_stage:
            raise ConfigError(f"oracle counts: {artifact} decodes in the {ner.format.name} format, which has no count "
                              "stage to replace")
        self.name, self.ner, self.artifact, self.oracle_counts = name, ner, str(artifact), oracle_counts
        self.labels = tuple(ner.labels)

    def run(self, examples: list[Example]) -> Output:
        from padellm.metrics import gold_counts

        counts = gold_counts(examples, self.labels) if self.oracle_counts else None
        result = self.ner.run([example.text for example in examples], counts=counts)
        return Output(result.entities, {k: v for k, v in result.timings.items() if k != "total_s"}, result.stats,
                      counts=result.counts)

    def settings(self) -> dict:
        return {"mode": self.ner.mode, "oracle_counts": self.oracle_counts,
                "decode_config": vars(self.ner.decode_config)}


class FastNERSystem:
    """A FastNER model at one exit setting; ``run`` tokenises, predicts in batches of ``batch_size`` and maps
    spans back to character offsets (all inside the measured time, as the LLM systems' prompt building is)."""

    kind = "fastner"

    def __init__(self, name: str, model, tokenizer, exit_config: ExitConfig, batch_size: int, artifact: str | Path):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.exit_config, self.batch_size, self.artifact = exit_config, batch_size, str(artifact)
        self.labels = tuple(model.config.labels)

    def run(self, examples: list[Example]) -> Output:
        import torch

        from padellm.baselines.fastner_inference import predict_examples

        with torch.inference_mode():
            entities, exits = predict_examples(self.model, self.tokenizer, examples, self.exit_config,
                                               batch_size=self.batch_size)
        return Output(entities, exits=exits)

    def settings(self) -> dict:
        return {"exit": vars(self.exit_config), "layers": self.model.num_layers, "batch_size": self.batch_size,
                "nested": self.model.config.nested, "bypass": self.model.config.bypass}


class TaggerSystem:
    """A BIO tagger at one exit setting (early exit: SENTEE / TOKEE / none; a CRF tagger: none); ``run``
    tokenises, tags in batches of ``batch_size`` and maps words back to character offsets, inside the measured
    time. Its exit per sentence is the mean layer its words left at."""

    kind = "tagger"

    def __init__(self, name: str, model, tokenizer, exit_config, batch_size: int, artifact: str | Path):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.exit_config, self.batch_size, self.artifact = exit_config, batch_size, str(artifact)
        self.labels = tuple(model.config.labels)

    def run(self, examples: list[Example]) -> Output:
        import torch

        from padellm.baselines.tagger import encode, to_entities

        entities, exits, computed, full = [], [], 0, 0
        with torch.inference_mode():
            for start in range(0, len(examples), self.batch_size):
                chunk = examples[start : start + self.batch_size]
                batch = encode(chunk, self.tokenizer, self.model.config, with_tags=False)
                tags, exit_layers, token_layers = self.model.predict(batch, self.exit_config)
                computed += token_layers
                full += self.model.num_layers * int(batch.attention_mask.sum())
                for row, (example, tag_ids) in enumerate(zip(chunk, tags)):
                    entities.append(to_entities(tag_ids, self.model.config.tags, example))
                    words = batch.word_mask[row]
                    exits.append(float(exit_layers[row][words].float().mean()) if words.any() else 0.0)
        return Output(entities, exits=exits, token_layers=(computed, full))

    def settings(self) -> dict:
        return {"exit": vars(self.exit_config), "layers": self.model.num_layers, "crf": self.model.crf is not None,
                "batch_size": self.batch_size}


def tagger_systems(system: str, folder: str | Path, exit_configs: tuple, batch_size: int,
                   examples: list[Example] = (), data: str = "the data", tag: str = "") -> list[TaggerSystem]:
    """One system per operating point, sharing one loaded tagger; ``examples`` must be text its encoder sees.
    ``tag`` goes into the names (several folders of one system kind in one run)."""
    from transformers import AutoTokenizer

    from padellm.baselines.fastner_data import check_vocabulary
    from padellm.baselines.tagger import Tagger
    from padellm.training.tagger import model_folder

    folder = model_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder / "encoder")
    check_vocabulary(tokenizer, list(examples), f"{system} {folder}", data)
    model = Tagger.load(folder)
    names = {"none": "full model", "sentence": "SENTEE", "token": "TOKEE"}
    return [TaggerSystem(f"{system}{f' {tag}' if tag else ''} ({names[c.mode]}" + (f" {c.threshold:g}" if c.mode != "none" else "")
                         + (f" w{c.window}" if c.mode == "token" else "") + ")", model, tokenizer, c, batch_size,
                         folder) for c in exit_configs]


def run_name(folder: str | Path) -> str:
    """What a trained artifact is called in a table: its run folder's name (``runs/x/model`` -> ``x``)."""
    folder = Path(folder)
    return folder.parent.name if folder.name == "model" else folder.name


def tagger_labels(system: str, folder: str | Path) -> tuple[str, ...]:
    """The labels of a tagger folder, read without loading weights; ``system`` says which kind it must be
    (earlyexit: off-ramps, distilled: a CRF)."""
    import json

    from padellm.baselines.tagger import CONFIG_FILE
    from padellm.training.tagger import model_folder

    path = model_folder(folder) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{system}: {folder} is not a tagger model folder (no {CONFIG_FILE})")
    raw = json.loads(path.read_text())
    if raw["crf"] != (system == "distilled"):
        raise ConfigError(f"{system}: {folder} is {'a CRF' if raw['crf'] else 'an off-ramp'} tagger; "
                          f"{'distilled needs a CRF tagger' if system == 'distilled' else 'earlyexit needs off-ramps'}")
    return tuple(raw["labels"])


def check_labels(artifact: str, artifact_labels: tuple[str, ...], data: str, data_labels: list[str],
                 allow_subset: bool = False) -> None:
    """Refuse a dataset whose labels differ from what an artifact was trained on (naming both sides); with
    ``allow_subset``, data that lacks some of the artifact's labels is accepted."""
    unknown = sorted(set(data_labels) - set(artifact_labels))
    missing = sorted(set(artifact_labels) - set(data_labels))
    if unknown:
        raise ConfigError(f"{data} has labels {', '.join(unknown)} that {artifact} was not trained for (it knows "
                          f"{', '.join(artifact_labels)}): evaluate it on data with its labels, or train on this data")
    if missing and not allow_subset:
        raise ConfigError(f"{artifact} predicts {', '.join(missing)}, which {data} never uses (its labels: "
                          f"{', '.join(data_labels) or 'none'}); every such prediction would count as a false "
                          f"positive. Pass --allow-label-subset to evaluate anyway")


def adapter_labels(folder: str | Path) -> tuple[str, tuple[str, ...]]:
    """(system kind, labels) an adapter was trained for, read from its folder without loading weights: parallel,
    autoregressive (the compact format) or structured (the paper's AutoReg_Struct format)."""
    from padellm.formats import format_of
    from padellm.prompts.templates import load_prompt

    template, label_set = load_prompt(folder)
    return format_of(template).system, tuple(label_set.labels)


def fastner_labels(folder: str | Path) -> tuple[str, ...]:
    """The labels a FastNER model folder was trained with, read without loading weights."""
    import json

    from padellm.baselines.fastner import CONFIG_FILE

    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"fastner: {folder} is not a FastNER model folder (no {CONFIG_FILE}; `padellm finetune "
                          "--config finetune/configs/conll2003-fastner.yaml` writes runs/conll2003-fastner/model)")
    return tuple(json.loads(path.read_text())["labels"])


def fastner_systems(folder: str | Path, exit_configs: tuple[ExitConfig, ...], batch_size: int,
                    examples: list[Example] = (), data: str = "the data") -> list[FastNERSystem]:
    """One system per operating point, all sharing one loaded model; ``examples`` (what it will tag) must be text
    its encoder's vocabulary covers."""
    from transformers import AutoTokenizer

    from padellm.baselines.fastner import FastNER
    from padellm.baselines.fastner_data import check_vocabulary

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder / "encoder")
    check_vocabulary(tokenizer, list(examples), f"FastNER {folder}", data)
    model = FastNER.load(folder)
    for config in exit_configs:
        if config.criterion not in GATED:
            continue
        if model.gates is None:
            raise ConfigError(f"fastner_exits: {config.criterion} needs exit gates and {folder} has none; `python "
                              f"eval/fit_exit_gates.py --model {folder}` fits them on the dev split")
        model.gates.thresholds(config)  # a budget the gates were not tuned for is refused before any system runs
    return [FastNERSystem(f"fastner ({config.name})", model, tokenizer, config, batch_size, folder)
            for config in exit_configs]


def llm_systems(adapters: dict[str, Path], backend: str, decode_config, vllm_config,
                oracle_counts: bool = False, texts: list[str] | None = None) -> list[LLMSystem]:
    """One system per ``{mode: adapter folder}`` (modes already checked with ``adapter_labels``); on vLLM all
    engines are started together, after ``texts`` (when given) are checked against every adapter's prompts and
    the engines' context. ``oracle_counts``: also the parallel adapter with the gold counts (on the same
    engine)."""
    from padellm.engine.decode_settings import resolve_decode_config
    from padellm.formats import format_of
    from padellm.ner import load
    from padellm.prompts.templates import load_prompt

    formats = {mode: format_of(load_prompt(folder)[0]) for mode, folder in adapters.items()}
    if oracle_counts and "parallel" in adapters and not formats["parallel"].count_stage:
        raise ConfigError(f"oracle_counts: the parallel adapter {adapters['parallel']} is count-free; it has no count "
                          "stage to replace")
    # Each adapter's settings resolved once (its decode.yaml under the overrides), checked before engines start.
    settings = {mode: resolve_decode_config(folder, decode_config) for mode, folder in adapters.items()}
    if backend == "vllm":
        from padellm.engine.vllm_backend import vllm_backends
        from padellm.engine.vllm_config import check_decoding

        from padellm.ner import check_texts

        for mode, folder in adapters.items():
            check_decoding(settings[mode], vllm_config, formats[mode])
            if texts is not None:
                check_texts(folder, texts, settings[mode], vllm_config.max_model_len)
        backends = vllm_backends(list(adapters.values()), vllm_config)
    else:
        backends = [backend] * len(adapters)
    systems = [LLMSystem(mode, load(folder, engine, decode_config=settings[mode]), folder)
               for (mode, folder), engine in zip(adapters.items(), backends)]
    if oracle_counts:
        systems += [LLMSystem(s.name + ORACLE_SUFFIX, s.ner, s.artifact, oracle_counts=True)
                    for s in systems if s.ner.format.count_stage]
    return systems


def close_engines(systems: list) -> None:
    """Stop the vLLM engines behind LLM systems now (each once: systems may share one) rather than at exit."""
    from padellm.engine.vllm_backend import close_engines
    from padellm.ner import engines_of

    close_engines(engines_of(system.ner for system in systems if system.kind == "llm"))
