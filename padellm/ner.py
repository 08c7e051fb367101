"""The user-facing extractor: ``ner = padellm.load(adapter_dir)``, then ``ner("text")`` or ``ner.batch(texts)``.

An ``NER`` pairs an adapter's prompt encoder with a generation backend and decodes with the strategy the adapter
was trained for (PaDeLLM parallel decoding or the autoregressive baseline).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from padellm.prompts.encoding import PromptEncoder
from padellm.engine.backend import GenerationBackend
from padellm.engine.decode_settings import resolve_decode_config
from padellm.engine.decoding import DecodeConfig, DecodeResult, DecodeSteps, run_steps, run_steps_async
from padellm.engine.windows import plan_windows, sentence_spans, window_steps
from padellm.formats import decode_steps, format_of
from padellm.errors import ConfigError, InvalidRequestError, one_of_problem
from padellm.types import Entity

BACKENDS = ("vllm", "transformers")


class NER:
    """Named entity recognition with one fine-tuned adapter on one backend."""

    def __init__(self, encoder: PromptEncoder, backend: GenerationBackend, decode_config: DecodeConfig = DecodeConfig(),
                 max_model_len: int | None = None, name: str = ""):
        self.encoder = encoder
        self.backend = backend
        self.decode_config = decode_config
        self.max_model_len = max_model_len
        self.name = name

    @property
    def mode(self) -> str:
        return self.encoder.template.mode

    @property
    def format(self):
        """The adapter's decoding format (``padellm.formats``)."""
        return format_of(self.encoder.template)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.encoder.label_set.labels

    def close(self) -> None:
        """Stop the engine behind this extractor now (an engine another extractor shares stops for both)."""
        from padellm.engine.vllm_backend import close_engines

        close_engines(engines_of([self]))

    def __enter__(self) -> "NER":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, text: str) -> list[Entity]:
        return self.run([text]).entities[0]

    def batch(self, texts: list[str]) -> list[list[Entity]]:
        return self.run(texts).entities

    def run(self, texts: list[str], labels: tuple[str, ...] | None = None,
            decode_config: DecodeConfig | None = None, counts: list[dict[str, int]] | None = None) -> DecodeResult:
        """Entities of every text, with per-stage timings and decoding statistics. ``labels``: decode only these
        of the adapter's labels; ``decode_config``: this call's settings instead of the extractor's; ``counts``
        (parallel decoding): ``{label: count}`` per text instead of the count stage's."""
        return run_steps(self.steps(texts, labels, decode_config, counts=counts), self.backend)

    async def arun(self, texts: list[str], labels: tuple[str, ...] | None = None,
                   decode_config: DecodeConfig | None = None, check: bool = True) -> DecodeResult:
        """``run`` on an asynchronous backend (``AsyncVLLMBackend``): the server's path. ``check=False`` skips
        ``check`` for texts the caller has already checked (it tokenises every text)."""
        return await run_steps_async(self.steps(texts, labels, decode_config, check), self.backend)

    def steps(self, texts: list[str], labels: tuple[str, ...] | None = None,
              decode_config: DecodeConfig | None = None, check: bool = True,
              counts: list[dict[str, int]] | None = None) -> DecodeSteps:
        config = decode_config or self.decode_config
        if check:
            self.check(texts, config)
        texts = list(texts)

        def fits(text: str) -> bool:
            return self.max_model_len is None or self.tokens_needed(text, config) <= self.max_model_len

        def within(text: str) -> bool:  # one sentence is never cut for this bound, only for the engine's
            return len(sentence_spans(text)) <= 1 or len(self.encoder.encode(text)) <= config.window_tokens

        if counts is not None and not all(map(fits, texts)):
            raise ConfigError("counts: a text longer than the engine's context is decoded in windows, which have "
                              "no counts of their own; shorten the texts or raise max_model_len")
        if counts is not None or all(fits(text) and within(text) for text in texts):  # given counts: whole texts
            return decode_steps(texts, self.encoder, config, labels, counts)
        plans = [plan_windows(text, fits, within=within) for text in texts]
        return window_steps(texts, plans, lambda windows: decode_steps(windows, self.encoder, config, labels))

    def check(self, texts: list[str], decode_config: DecodeConfig | None = None) -> None:
        """Raise InvalidRequestError naming the first text that cannot be decoded (texts longer than the engine's
        context can: they are decoded in windows)."""
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise InvalidRequestError("texts", texts, "must be a list of strings")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidRequestError(f"texts[{index}]", text, "must be a string")
        if self.max_model_len is None or not texts:
            return
        # A text longer than the engine's context is decoded in windows (padellm.engine.windows); what must fit is
        # the prompt and the longest generation around one character of it.
        needed = self.tokens_needed("x", decode_config)
        if needed > self.max_model_len:
            raise InvalidRequestError("texts[0]", texts[0] if len(texts[0]) <= 80 else texts[0][:77] + "...",
                                      f"the prompt and the longest generation alone need {needed} tokens but the "
                                      f"engine's max_model_len is {self.max_model_len}; raise max_model_len or lower "
                                      "max_autoregressive_tokens / max_mention_tokens", index=0)

    def tokens_needed(self, text: str, decode_config: DecodeConfig | None = None) -> int:
        """Prompt plus longest allowed generation of the longest sequence ``text`` leads to."""
        return format_of(self.encoder.template).tokens_needed(text, self.encoder, decode_config or self.decode_config)


def engines_of(ners) -> list:
    """The distinct engines behind some extractors (two adapters may share one; the transformers backend has none)."""
    engines = (getattr(ner.backend, "engine", None) for ner in ners)
    return list({id(e): e for e in engines if e is not None}.values())


def entity_record(text: str, entity: Entity) -> dict:
    """An entity as JSON: offsets, label, surface string and (when the decoder gives one) its log-probability and
    probability; the server answers with the same fields."""
    record = {"start": entity.start, "end": entity.end, "label": entity.label, "text": entity.mention(text)}
    if entity.score is not None:
        record["score"] = round(entity.score, 6)
        record["probability"] = round(math.exp(entity.score), 6)
    return record


def adapter_encoder(folder: str | Path) -> PromptEncoder:
    """The prompt encoder of an adapter folder: its template and labels, and its base model's tokenizer."""
    from padellm.adapters import base_model_of
    from padellm.model_families import load_tokenizer
    from padellm.prompts.templates import load_prompt

    template, label_set = load_prompt(folder)
    tokenizer, bos_ids = load_tokenizer(base_model_of(folder))
    return PromptEncoder(tokenizer, template, label_set, bos_ids)


def check_texts(adapter: str | Path, texts: list[str], decode_config: DecodeConfig, max_model_len: int) -> None:
    """``NER.check`` before any engine starts: InvalidRequestError naming the first of ``texts`` that an engine
    of ``max_model_len`` tokens cannot decode with ``adapter``."""
    NER(adapter_encoder(adapter), None, decode_config, max_model_len=max_model_len).check(texts)


def load(adapter: str | Path, backend="vllm", *, decode_config: DecodeConfig | Mapping | None = None,
         vllm_config=None, dtype: str = "float32", texts: list[str] | None = None) -> NER:
    """An ``NER`` for an adapter folder written by ``padellm finetune``.

    ``decode_config``: None decodes with the settings the adapter was tuned with (its ``decode.yaml``, written by
    ``padellm tune``; ``DecodeConfig``'s defaults without one); a mapping of fields overrides only those; a
    ``DecodeConfig`` is used as it is.

    ``backend="vllm"`` starts a vLLM engine for the adapter (``vllm_config``, a ``VLLMConfig``, says how);
    ``"transformers"`` merges the adapter into the base model and decodes with the reference backend (``dtype``
    sets its weights); a ``VLLMBackend`` from ``vllm_backends`` reuses an engine that is already running.

    ``texts``: the texts you are about to decode, checked against the engine's context (``NER.check``) before any
    engine starts, so that a text too long fails in a second, not after the engine's start-up.
    """
    from padellm.adapters import load_adapter

    if isinstance(backend, str) and backend not in BACKENDS:
        raise ConfigError(one_of_problem("backend", BACKENDS, backend))
    folder = Path(adapter)
    decode_config = resolve_decode_config(folder, decode_config)
    if backend == "transformers":
        from padellm.engine.backend import TransformersBackend

        loaded = load_adapter(folder, dtype=dtype)
        ner = NER(loaded.encoder, TransformersBackend(loaded.model, loaded.encoder.eos_id), decode_config,
                  name=folder.name)
    else:
        from padellm.engine.vllm_backend import vllm_backends
        from padellm.engine.vllm_config import VLLMConfig, check_decoding

        encoder = adapter_encoder(folder)
        if backend == "vllm":
            vllm_config = vllm_config or VLLMConfig()
            check_decoding(decode_config, vllm_config, format_of(encoder.template))
            if texts is not None:
                NER(encoder, None, decode_config, max_model_len=vllm_config.max_model_len).check(texts)
            backend = vllm_backends([folder], vllm_config)[0]
        elif getattr(backend, "adapter", None) != folder.resolve():
            raise ConfigError(f"the backend given decodes with adapter {getattr(backend, 'adapter', None)}, "
                              f"not {folder}")
        elif isinstance(getattr(getattr(backend, "engine", None), "config", None), VLLMConfig):
            check_decoding(decode_config, backend.engine.config, format_of(encoder.template))
        ner = NER(encoder, backend, decode_config, max_model_len=getattr(backend, "max_model_len", None),
                  name=folder.name)
    if texts is not None:
        ner.check(texts)
    return ner
