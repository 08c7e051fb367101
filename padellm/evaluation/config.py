"""What ``padellm eval`` compares, on which data, and how it measures: one validated config."""

from __future__ import annotations

from dataclasses import dataclass

from padellm.baselines.exit_criteria import CRITERIA, POOLED, POOLINGS, STREAKS, ExitConfig
from padellm.baselines.token_exit import TokenExitConfig
from padellm.errors import ConfigError, bound_problems, one_of_problem

SYSTEMS = ("parallel", "autoregressive", "structured", "fastner", "earlyexit", "distilled")
TAGGERS = ("earlyexit", "distilled")
EXIT_ALIASES = {"sentee": "sentence:0.2", "tokee": "token:0.1:1"}
"""The early-exit papers' names for the earlyexit system's exit modes, and an operating point of each."""
LLM_BACKENDS = ("vllm", "transformers")


def split_list(value: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_exit(spec: str, min_layer: int = 1) -> ExitConfig:
    """One FastNER operating point: ``none`` (the full model), ``patience:N``, ``stable:N``, ``entropy:T[:POOLING]``,
    ``confidence:T[:POOLING]`` (POOLING: max or mean; default max), ``gate:T`` (the model's learned exit gates) or
    ``budget:D`` (the gates with per-exit thresholds tuned to lose at most D F1 points on held-out sentences)."""
    parts = spec.split(":")
    criterion = parts[0]
    if criterion not in CRITERIA:
        raise ConfigError(f"fastner_exits: {spec!r}: the criterion must be one of {', '.join(CRITERIA)}")
    if criterion == "none":
        if len(parts) > 1:
            raise ConfigError(f"fastner_exits: {spec!r}: 'none' takes no value")
        return ExitConfig()
    streak = criterion in STREAKS
    if len(parts) < 2 or len(parts) > (3 if criterion in POOLED else 2):
        form = (f"{criterion}:N" if streak else f"{criterion}:THRESHOLD[:{'|'.join(POOLINGS)}]" if criterion in POOLED
                else f"{criterion}:THRESHOLD")
        raise ConfigError(f"fastner_exits: {spec!r}: expected {form}")
    try:
        value = int(parts[1]) if streak else float(parts[1])
    except ValueError as err:
        raise ConfigError(f"fastner_exits: {spec!r}: {parts[1]!r} is not {'a whole' if streak else 'a'} number") from err
    try:
        if streak:
            return ExitConfig(criterion, patience=value, min_layer=min_layer)
        return ExitConfig(criterion, value, parts[2] if len(parts) == 3 else "max", min_layer=min_layer)
    except ConfigError as err:
        raise ConfigError(f"fastner_exits: {spec!r}: {err}") from err


def parse_token_exit(spec: str) -> TokenExitConfig:
    """One early-exit tagger operating point: ``none`` (every layer), ``sentence:T[:max|mean]`` (SENTEE) or
    ``token:T[:WINDOW]`` (TOKEE; window default 1)."""
    parts = spec.split(":")
    mode = parts[0]
    forms = {"none": 1, "sentence": 3, "token": 3}
    if mode not in forms or len(parts) > forms[mode] or (mode != "none" and len(parts) < 2):
        raise ConfigError(f"earlyexit_exits: {spec!r}: expected none, sentence:THRESHOLD[:max|mean] or "
                          f"token:THRESHOLD[:WINDOW]")
    if mode == "none":
        return TokenExitConfig()
    try:
        threshold = float(parts[1])
        if mode == "sentence":
            return TokenExitConfig("sentence", threshold, pooling=parts[2] if len(parts) == 3 else "max")
        return TokenExitConfig("token", threshold, window=int(parts[2]) if len(parts) == 3 else 1)
    except ValueError as err:
        raise ConfigError(f"earlyexit_exits: {spec!r}: {err}") from None


@dataclass(frozen=True)
class EvalConfig:
    dataset: str = "conll2003"
    """A shared dataset name (conll2003, genia, resume_zh), a folder of split files or one file."""
    split: str = "test"
    """The split that is measured (a single file's split is named after the file: test.txt -> test, else data)."""
    systems: str = "parallel,autoregressive"
    """Comma-separated: parallel (PaDeLLM), autoregressive (the compact LLM baseline: only the entities present),
    structured (the paper's AutoReg_Struct baseline: every label listed), fastner (one system per
    --fastner-exits entry; needs --fastner). The default runs with the shipped adapters alone."""
    parallel: str = ""
    """Adapter folder of the parallel system (default: the shipped one for --dataset)."""
    autoregressive: str = ""
    """Adapter folder of the autoregressive system (default: the shipped one for --dataset)."""
    structured: str = ""
    """Adapter folder of the structured autoregressive system (default: the shipped one for --dataset)."""
    fastner: str = ""
    """FastNER model folder (written by padellm finetune with mode fastner); needed when fastner is evaluated."""
    fastner_exits: str = "none,patience:1"
    """Comma-separated FastNER operating points: none (the full model), patience:N, stable:N, entropy:T[:max|mean],
    confidence:T[:max|mean], gate:T (the model's learned exit gates, fitted at the end of its training), budget:D
    (the gates with per-exit thresholds tuned on dev to lose at most D F1 points; tuned for 0.25, 0.5, 0.75 and
    1)."""
    fastner_min_layer: int = 1
    """No FastNER sentence leaves before this exit."""
    fastner_batch_size: int = 32
    """FastNER (and BIO tagger) sentences per forward pass in batch mode."""
    earlyexit: str = ""
    """Early-exit BIO tagger folder (padellm finetune mode tagger, model.crf false), or several, comma-separated
    (e.g. before and after self-sampling fine-tuning: each at every operating point); needed for earlyexit."""
    earlyexit_exits: str = "none,sentence:0.1,token:0.1:1"
    """Comma-separated operating points of the early-exit tagger: none (every layer), sentence:T[:max|mean]
    (SENTEE), token:T[:WINDOW] (TOKEE)."""
    distilled: str = ""
    """A CRF tagger folder (padellm finetune mode tagger, model.crf true: a distilled student, or its teacher), or
    several, comma-separated (teacher, gold-only student, distilled students in one table); needed for distilled."""
    backend: str = "vllm"
    """LLM systems decode on vllm or transformers (the reference backend, slow)."""
    sample: int = 0
    """Measure a seeded sample of this many sentences (0: the whole split)."""
    seed: int = 0
    """Seed of the sample, the warm-up sentences and torch."""
    warmup: int = 10
    """Sentences every system decodes before measuring (never measured; taken from --warmup-split)."""
    warmup_split: str = "dev"
    """Where warm-up sentences come from; when the dataset has no such split (or it is the measured one):
    measured-split sentences outside the sample."""
    settle_ms: int = 0
    """Untimed pause before each single request. vLLM's processes busy-poll for about a second after each request;
    on a machine with few cores that slows whatever runs next (a FastNER model, the other engine): 1100 outlasts
    the spinning, at that much wall time per request (FastNER is still slower beside running engines than alone:
    measure it with --systems fastner for its own latency)."""
    batch_mode: bool = True
    """Also measure throughput with the whole sample in one call per system."""
    oracle_counts: bool = False
    """Also run the parallel adapter with the gold counts instead of its count stage's (a system of its own,
    "parallel (oracle counts)"): the F1 its branches reach when the counts are right."""
    allow_label_subset: bool = False
    """Accept data whose labels are a strict subset of a system's (its other labels only add false positives)."""

    def __post_init__(self) -> None:
        problems = []
        systems = split_list(self.systems)
        unknown = [s for s in systems if s not in SYSTEMS]
        if not systems or unknown:
            problems.append(f"systems must be a comma-separated subset of {', '.join(SYSTEMS)}; got {self.systems!r}")
            for alias, spec in EXIT_ALIASES.items():
                if alias in unknown:
                    problems.append(f"systems: {alias} is an operating point of the earlyexit system: --systems "
                                    f"earlyexit --earlyexit DIR --earlyexit-exits {spec}")
        elif len(set(systems)) != len(systems):
            problems.append(f"systems lists a system twice: {self.systems!r}")
        if self.oracle_counts and "parallel" not in systems:
            problems.append("oracle_counts needs the parallel system in --systems")
        if self.backend not in LLM_BACKENDS:
            problems.append(one_of_problem("backend", LLM_BACKENDS, self.backend))
        for tagger in TAGGERS:
            if tagger in systems and not getattr(self, tagger):
                problems.append(f"{tagger}: a tagger model folder is needed to evaluate {tagger} (padellm finetune "
                                f"--config finetune/configs/conll2003-tagger-"
                                f"{'earlyexit' if tagger == 'earlyexit' else 'student'}.yaml writes one)")
        if "earlyexit" in systems:
            for spec in split_list(self.earlyexit_exits) or ["?"]:
                try:
                    parse_token_exit(spec)
                except ConfigError as err:
                    problems.append(str(err))
        if "fastner" in systems and not self.fastner:
            problems.append("fastner: a FastNER model folder is needed to evaluate fastner (padellm finetune "
                            "--config finetune/configs/conll2003-fastner.yaml writes runs/conll2003-fastner/model)")
        problems += bound_problems(self, non_negative=("sample", "warmup", "settle_ms"))
        problems += bound_problems(self, at_least_one=("fastner_batch_size", "fastner_min_layer"))
        if "fastner" in systems:
            exits = split_list(self.fastner_exits)
            if not exits:
                problems.append(f"fastner_exits must name at least one operating point; got {self.fastner_exits!r}")
            for spec in exits:
                try:
                    parse_exit(spec, self.fastner_min_layer)
                except ConfigError as err:
                    problems.append(str(err))
        if problems:
            raise ConfigError(problems)

    @property
    def system_names(self) -> tuple[str, ...]:
        return split_list(self.systems)

    @property
    def token_exit_configs(self) -> tuple[TokenExitConfig, ...]:
        return tuple(parse_token_exit(spec) for spec in split_list(self.earlyexit_exits))

    @property
    def exit_configs(self) -> tuple[ExitConfig, ...]:
        return tuple(parse_exit(spec, self.fastner_min_layer) for spec in split_list(self.fastner_exits))
