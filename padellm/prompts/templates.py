"""Prompt templates and label names: versioned files under ``prompts/``, saved next to every trained adapter.

A template is rendered and parsed only here. Inference reads the template and label set that an adapter was
trained with from the adapter's folder (``prompt.yaml``, ``labels.yaml``) and refuses a folder that lacks
them, so it can never use a template other than the one the weights learned.
"""

from __future__ import annotations

import re
import string
import dataclasses
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from padellm.errors import ConfigError
from padellm.prompts.labels import LabelSet, prompts_dir

PROMPT_FILE = "prompt.yaml"
LABELS_FILE = "labels.yaml"


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_placeholders(kind: str, values: dict[str, str], required: dict[str, set[str]]) -> list[str]:
    problems = []
    for field, names in required.items():
        try:
            found = _placeholders(values[field])
        except ValueError as err:
            problems.append(f"{kind} template field {field!r} is not a valid format string ({err})")
            continue
        if found != names:
            problems.append(
                f"{kind} template field {field!r} must use exactly the placeholders {sorted(names)}; "
                f"got {sorted(found)} in {values[field]!r}"
            )
    return problems


@dataclass(frozen=True)
class ParallelTemplate:
    """PaDeLLM-NER: a count prompt per (text, label), then a mention prompt per (text, label, k)."""

    name: str
    version: int
    language: str
    count_prompt: str
    """Stage-1 prompt; placeholders ``{text}`` and ``{label}`` (the label's natural-language name)."""
    count_target: str
    """What the model writes in stage 1; placeholder ``{count}``. It ends the count, e.g. with a newline."""
    mention_prompt: str
    """Appended after the count in stage 2; placeholder ``{k}`` (1-based, mentions in text order)."""
    mention_target: str
    """What the model writes in stage 2, followed by EOS; placeholder ``{mention}``."""
    mode: str = "parallel"
    align_text: int = 0
    """Pad the text part of every prompt (everything before ``{label}``) with ``filler`` tokens to a multiple of
    this many tokens, so that it fills whole KV-cache blocks: vLLM's prefix cache reuses whole blocks only, and
    then shares the text among a text's labels and branches. 0: no padding. Use the engine's block size (or a
    multiple of it: 32 on CPU)."""
    filler: str = " "
    """With align_text: the text whose first token pads the text part."""
    none_target: str = ""
    """The count-free format when set (count_target then empty): there is no count stage. Branch k of a label is
    prompted with count_prompt (the text and the label) and the mention-k marker, and writes the k-th mention, or
    this marker when the label has fewer than k mentions; the decoder opens the next branches of a label only
    while its branches find mentions."""
    window: int = 2
    """Count-free format: the branches k .. k+window-1 of every open label are decoded in one round; training
    writes the none marker at every k from n+1 to max(n+1, window) for a label with n mentions, so that each
    branch of the first round has learnt its answer."""
    separator: str = ""
    """The label-wise count-free format when set: a label has one branch, which writes all its mentions in text
    order joined by this separator (one token, e.g. a newline), then EOS, or ``none_target`` when it has none.
    Labels are decoded in parallel and a label's mentions one after another, so a later mention sees the earlier
    ones, and a text takes one round of one sequence per label. ``window`` must then be 1 and ``mention_prompt``
    (what follows the label part, e.g. empty) has no ``{k}``."""
    format: str = ""
    """The decoding format (``padellm.formats``), which the fields above decide: ``labelwise`` (separator set),
    ``count-free`` (none_target set) or ``counted``; empty (a template saved before it was recorded) is filled in."""

    def __post_init__(self) -> None:
        required = {"count_prompt": {"text", "label"}, "mention_prompt": set() if self.separator else {"k"},
                    "mention_target": {"mention"}}
        if not self.none_target:
            required["count_target"] = {"count"}
        problems = _check_placeholders(self.name, asdict(self), required)
        if self.separator and not self.none_target:
            problems.append(f"{self.name}: a label-wise template (separator set) is count-free: none_target must be "
                            f"set; got {self.none_target!r}")
        if self.separator and self.window != 1:
            problems.append(f"{self.name}: a label-wise template (separator set) has one branch per label: window "
                            f"must be 1; got {self.window}")
        if self.none_target and self.count_target:
            problems.append(f"{self.name}: a count-free template (none_target set) has no count stage: count_target "
                            f"must be empty; got {self.count_target!r}")
        if self.none_target and self.none_target.strip() == "":
            problems.append(f"{self.name}: none_target must be visible text; got {self.none_target!r}")
        if self.window < 1:
            problems.append(f"{self.name}: window must be >= 1; got {self.window}")
        if self.align_text < 0:
            problems.append(f"{self.name}: align_text must be >= 0 (0: no padding); got {self.align_text}")
        if self.align_text and not self.filler:
            problems.append(f"{self.name}: filler must not be empty when align_text is set")
        if not problems and not (
            self.count_prompt.count("{text}") == self.count_prompt.count("{label}") == 1
            and self.count_prompt.index("{text}") < self.count_prompt.index("{label}")
        ):
            # The part before {label} is the prefix every label of a text shares (see padellm.prompts.encoding).
            problems.append(f"{self.name}: count_prompt must contain {{text}} once, then {{label}} once")
        shaped = "labelwise" if self.separator else "count-free" if self.none_target else "counted"
        if self.format and self.format != shaped:
            problems.append(f"{self.name}: format {self.format!r} does not match the template's fields, which make "
                            f"it {shaped!r}")
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "format", shaped)

    def is_none(self, generated: str) -> bool:
        """Count-free format: the branch says the label has no k-th mention (or wrote nothing)."""
        return not generated.strip() or generated.strip() == self.none_target.strip()

    def render_count_prompt(self, text: str, label_name: str) -> str:
        return self.count_prompt.format(text=text, label=label_name)

    def render_count(self, count: int) -> str:
        return self.count_target.format(count=count)

    def render_mention_prompt(self, k: int) -> str:
        return self.mention_prompt.format(k=k)

    def render_mention(self, mention: str) -> str:
        return self.mention_target.format(mention=mention)

    def parse_count(self, generated: str) -> int | None:
        """The count the model wrote, or ``None`` when it wrote no number where the template puts one."""
        prefix = self.count_target.split("{count}")[0]
        match = re.match(re.escape(prefix) + r"\s*(\d+)", generated)
        return int(match.group(1)) if match else None

    def parse_mention(self, generated: str) -> str:
        """The mention inside what the model wrote in stage 2 (EOS already removed)."""
        prefix, _, suffix = self.mention_target.partition("{mention}")
        if prefix and generated.startswith(prefix):
            generated = generated[len(prefix) :]
        if suffix and generated.endswith(suffix):
            generated = generated[: -len(suffix)]
        return generated.strip()


@dataclass(frozen=True)
class _OneSequenceTemplate:
    """What every autoregressive format shares: one prompt per text naming all the labels."""

    name: str
    version: int
    language: str
    prompt: str
    """Placeholders ``{text}`` and ``{labels}`` (the label names, comma-separated)."""

    def render_prompt(self, text: str, label_names: list[str]) -> str:
        return self.prompt.format(text=text, labels=", ".join(label_names))


@dataclass(frozen=True)
class AutoregressiveTemplate(_OneSequenceTemplate):
    """The baseline: one prompt per text, one target listing every entity in text order, then EOS."""

    entity: str
    """One entity; placeholders ``{label}`` (its name) and ``{mention}``. Must end with a newline."""
    empty: str
    """The whole target when a text has no entity."""
    mode: str = "autoregressive"
    format: str = "lines"
    """``lines``: only the entities present, one per line (the compact baseline)."""

    def __post_init__(self) -> None:
        problems = _check_placeholders(
            self.name, asdict(self), {"prompt": {"text", "labels"}, "entity": {"label", "mention"}, "empty": set()}
        )
        if not problems and not self.entity.endswith("\n"):
            problems.append(f"{self.name}: entity must end with a newline, got {self.entity!r}")
        if not problems and not self.entity.startswith("{label}"):
            problems.append(f"{self.name}: entity must start with {{label}}, got {self.entity!r}")
        if problems:
            raise ConfigError(problems)

    def render_target(self, mentions: list[tuple[str, str]], label_names: list[str] | None = None) -> str:
        """``mentions`` as ``(label name, mention)`` pairs in text order (``label_names``: unused here, every
        autoregressive format takes them)."""
        if not mentions:
            return self.empty
        return "".join(self.entity.format(label=name, mention=mention) for name, mention in mentions)

    def parse(self, generated: str, label_names: list[str]) -> tuple[list[tuple[str, str]], int]:
        """``(label name, mention)`` pairs from the model's output, and how many lines could not be parsed."""
        separator = self.entity[len("{label}") :].split("{mention}")[0]
        by_length = sorted(label_names, key=len, reverse=True)
        pairs, bad = [], 0
        for line in generated.split("\n"):
            if not line.strip() or line + "\n" == self.empty:
                continue
            name = next((n for n in by_length if line.startswith(n + separator)), None)
            mention = line[len(name) + len(separator) :].strip() if name else ""
            if name is None or not mention:
                bad += 1
                continue
            pairs.append((name, mention))
        return pairs, bad


NULL = "NULL"
"""The structured format's mention of a label that has none."""
_MENTION = re.compile(r"\(((?:[^()]|\([^()]*\))*)\)")
"""One parenthesised mention (its own parentheses may nest one level: ``(Tyco (UK))``)."""


@dataclass(frozen=True)
class StructuredTemplate(_OneSequenceTemplate):
    """The PaDeLLM-NER paper's structured autoregressive baseline (AutoReg_Struct): one target per text that lists
    every label in order, each with its mentions in text order or a none marker, e.g.
    ``((PER): (Cuttitta), (MISC): (1995 World Cup), (LOC): (Italy), (ORG): (NULL))`` then EOS."""

    entry: str = "({label}): {mentions}"
    """One label; placeholders ``{label}`` (its name) and ``{mentions}`` (each mention in parentheses, or
    ``(NULL)`` for none)."""
    separator: str = ", "
    """Between entries, and between the mentions of one entry."""
    opening: str = "("
    closing: str = ")"
    mode: str = "autoregressive"
    format: str = "structured"

    def __post_init__(self) -> None:
        problems = _check_placeholders(self.name, asdict(self), {"prompt": {"text", "labels"},
                                                                  "entry": {"label", "mentions"}})
        if problems:
            raise ConfigError(problems)

    def render_target(self, mentions: list[tuple[str, str]], label_names: list[str] | None = None) -> str:
        """Every name of ``label_names`` in order, with its mentions from ``mentions`` (``(label name, mention)``
        pairs in text order)."""
        entries = []
        for name in label_names or []:
            found = [f"({m})" for label, m in mentions if label == name]
            entries.append(self.entry.format(label=name, mentions=self.separator.join(found) or f"({NULL})"))
        return self.opening + self.separator.join(entries) + self.closing

    def parse(self, generated: str, label_names: list[str]) -> tuple[list[tuple[str, str]], int]:
        """``(label name, mention)`` pairs from the model's output, and how many entries could not be read."""
        head, _, tail = self.entry.partition("{label}")
        between = tail.split("{mentions}")[0]
        headers = sorted((generated.find(head + name + between), name) for name in label_names)
        found = [(start, name) for start, name in headers if start >= 0]
        pairs, bad = [], 0
        for i, (start, name) in enumerate(found):
            end = found[i + 1][0] if i + 1 < len(found) else len(generated)
            body = generated[start + len(head + name + between) : end]
            mentions = [m.strip() for m in _MENTION.findall(body)]
            if not mentions:
                bad += 1
            pairs += [(name, m) for m in mentions if m and m != NULL]
        return pairs, bad


Template = ParallelTemplate | AutoregressiveTemplate | StructuredTemplate
ONE_SEQUENCE_TEMPLATES = {"lines": AutoregressiveTemplate, "structured": StructuredTemplate}
"""The autoregressive templates by their ``format`` (a parallel template's format follows from its fields)."""


DEFAULT_PROMPTS = {("parallel", "en"): "padellm-en-labelwise-v1", ("parallel", "zh"): "padellm-zh-labelwise-v1",
                   ("autoregressive", "en"): "autoregressive-en-v1", ("autoregressive", "zh"): "autoregressive-zh-v1"}
"""The template ``padellm finetune`` trains when its config names none, by mode and the language of the training
text: the formats of the shipped adapters (label-wise branches; the compact autoregressive lines)."""


def text_language(texts: list[str]) -> str:
    """``zh`` where most texts are mostly CJK characters (a Resume sentence), ``en`` otherwise."""
    from padellm.data.bio import is_cjk

    def chinese(text: str) -> bool:
        letters = [c for c in text if c.isalpha()]
        return sum(map(is_cjk, letters)) * 2 > len(letters)

    return "zh" if sum(map(chinese, texts)) * 2 > len(texts) else "en"


def default_prompt(mode: str, texts: list[str]) -> str:
    """``DEFAULT_PROMPTS``' template for ``mode`` and the language of ``texts``."""
    return DEFAULT_PROMPTS[(mode, text_language(texts))]


def template_from_dict(data: dict, source: str) -> Template:
    mode = data.get("mode")
    if mode == "parallel":
        cls = ParallelTemplate
    elif mode == "autoregressive" and data.get("format", "lines") in ONE_SEQUENCE_TEMPLATES:
        cls = ONE_SEQUENCE_TEMPLATES[data.get("format", "lines")]
    else:
        raise ConfigError(f"{source}: 'mode' must be parallel, or autoregressive with 'format' one of "
                          f"{', '.join(ONE_SEQUENCE_TEMPLATES)}; got mode {mode!r} format {data.get('format')!r}")
    required = {f.name for f in fields(cls) if f.default is dataclasses.MISSING}
    accepted = {f.name for f in fields(cls)}
    problems = [f"{source}: missing field {n!r}" for n in sorted(required - data.keys())]
    problems += [f"{source}: unknown field {n!r}" for n in sorted(data.keys() - accepted)]
    if problems:
        raise ConfigError(problems)
    return cls(**{key: value for key, value in data.items() if key in accepted})


def load_template(spec: str | Path) -> Template:
    """A template by file path, or by name under ``prompts/`` (``padellm-en-v1``)."""
    path = Path(spec)
    if not path.is_file():
        path = prompts_dir() / f"{spec}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in prompts_dir().glob("*.yaml"))
        raise ConfigError(f"prompt must be a template file or one of {', '.join(known)}; got {str(spec)!r}")
    return template_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))


def save_prompt(folder: str | Path, template: Template, label_set: LabelSet) -> None:
    """Write ``prompt.yaml`` and ``labels.yaml`` into an adapter folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROMPT_FILE).write_text(yaml.safe_dump(asdict(template), allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / LABELS_FILE).write_text(yaml.safe_dump(label_set.as_mapping(), allow_unicode=True, sort_keys=False), encoding="utf-8")


def load_prompt(folder: str | Path) -> tuple[Template, LabelSet]:
    """The template and label set an adapter was trained with; a clear error when the folder lacks them."""
    folder = Path(folder)
    missing = [name for name in (PROMPT_FILE, LABELS_FILE) if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{folder} lacks {' and '.join(missing)}: padellm only runs adapters saved by `padellm finetune`, "
            "which stores the prompt template and label set the weights were trained with"
        )
    template = template_from_dict(yaml.safe_load((folder / PROMPT_FILE).read_text(encoding="utf-8")), str(folder / PROMPT_FILE))
    mapping = yaml.safe_load((folder / LABELS_FILE).read_text(encoding="utf-8"))
    if not isinstance(mapping, dict):
        raise ConfigError(f"{folder / LABELS_FILE}: expected a mapping from label to name")
    return template, LabelSet.from_mapping(mapping)
