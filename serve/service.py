"""The NER service behind the HTTP routes: loads the adapters on vLLM's asynchronous engine, checks requests
against the adapters and the server's limits, and decodes them. No HTTP here (the routes are in ``app``)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from padellm.engine.decoding import DecodeConfig, DecodeResult
from padellm.engine.vllm_backend import VLLMConfig, close_engines
from padellm.errors import ConfigError
from padellm.ner import NER, engines_of
from padellm.types import surrogate_problem
from padellm_serve.config import ServerConfig
from padellm_serve.protocol import MAX_PROBLEMS, EntityOut, NERRequest, NERResponse, Problem, TextResult, Usage, brief

logger = logging.getLogger("padellm.serve")
NON_BLANK = re.compile(r"\S")  # the schema's pattern for a text (padellm_serve.schema)
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/])(?:~|/)(?:[^\s/'\"]+/)+([^\s/'\"]+)")

DecodeSettings = DecodeConfig | Mapping | None
"""As ``padellm.load`` takes them: None (each adapter's tuned settings), fields on top of those, or a config."""
Loader = Callable[[list[Path], DecodeSettings, VLLMConfig], list[NER]]


def load_on_async_vllm(adapters: list[Path], decode_config: DecodeSettings, vllm_config: VLLMConfig) -> list[NER]:
    """One ``NER`` per adapter on vLLM's asynchronous engine (as few engines as the LoRA mode allows)."""
    from padellm.engine.decode_settings import resolve_decode_config
    from padellm.engine.vllm_async import async_vllm_backends
    from padellm.engine.vllm_config import check_decoding
    from padellm.formats import format_of
    from padellm.ner import load
    from padellm.prompts.templates import load_prompt

    # Each adapter's settings resolved once (its decode.yaml under the overrides), checked before engines start.
    settings = [resolve_decode_config(adapter, decode_config) for adapter in adapters]
    for adapter, resolved in zip(adapters, settings):
        check_decoding(resolved, vllm_config, format_of(load_prompt(adapter)[0]))
    backends = async_vllm_backends(adapters, vllm_config)
    return [load(adapter, backend, decode_config=resolved)
            for adapter, backend, resolved in zip(adapters, backends, settings)]


def served_labels(adapters: list[Path]) -> dict[str, tuple[str, ...]]:
    """Each adapter's mode and labels, read from its files before any engine starts (at most one per mode)."""
    from padellm.prompts.templates import load_prompt

    served: dict[str, tuple[str, ...]] = {}
    named: dict[str, str] = {}
    for adapter in adapters:
        template, label_set = load_prompt(adapter)
        if template.mode in served:
            raise ConfigError(f"two {template.mode} adapters given ({named[template.mode]}, {adapter.name}); "
                              f"a server serves at most one per mode")
        served[template.mode], named[template.mode] = label_set.labels, adapter.name
    return served


def without_paths(message: str) -> str:
    """``message`` with every absolute file path cut to its last part (answers never show the server's disk)."""
    return ABSOLUTE_PATH.sub(lambda match: match.group(1), message)


class RequestRejected(Exception):
    """A request the service will not decode: an HTTP status, an error type and the problems found."""

    def __init__(self, status: int, kind: str, problems: list[Problem], headers: dict[str, str] | None = None):
        self.status, self.kind, self.problems, self.headers = status, kind, problems, headers or {}
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


@dataclass
class Job:
    """A checked request, ready to decode."""

    ner: NER
    texts: list[str]
    labels: tuple[str, ...] | None
    decode_config: DecodeConfig
    request: NERRequest


class NERService:
    """The adapters a server decodes with, at most one per mode, and the limits it enforces."""

    def __init__(self, adapters: list[str | Path], config: ServerConfig = ServerConfig(),
                 decode_config: DecodeSettings = None, vllm_config: VLLMConfig = VLLMConfig(),
                 loader: Loader = load_on_async_vllm):
        if not adapters:
            raise ConfigError("the server needs at least one adapter (--adapter DIR)")
        self.adapters = [Path(a) for a in adapters]
        self.served_labels = served_labels(self.adapters)
        self.default_mode = "parallel" if "parallel" in self.served_labels else next(iter(self.served_labels))
        self.config = config
        self.decode_config = decode_config
        self.vllm_config = vllm_config
        self.loader = loader
        self.models: dict[str, NER] = {}
        self.adapter_of: dict[str, Path] = {}
        self.status = "loading"
        self.detail: str | None = None
        self.in_flight = 0
        self.stopping = asyncio.Event()  # set shortly before a stopping server's grace period ends
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load every adapter (engines start in a worker thread, so the event loop keeps answering /health)."""
        self._loop = asyncio.get_running_loop()
        started = time.perf_counter()
        ners: list[NER] = []
        try:
            ners = await asyncio.to_thread(self.loader, self.adapters, self.decode_config, self.vllm_config)
            models: dict[str, NER] = {}
            for adapter, ner in zip(self.adapters, ners):  # one per mode: served_labels checked that
                models[ner.mode] = ner
                self.adapter_of[ner.mode] = adapter
            if self.config.warmup:
                for ner in models.values():
                    await ner.arun(["Warm-up: EU rejects German call."])
            self.models = models
        except Exception as err:  # reported through /health and the exit status, never swallowed
            self.status, self.detail = "failed", f"{type(err).__name__}: {without_paths(str(err))}"
            logger.exception("loading the adapters failed")
            close_engines(engines_of(ners))  # engines that did start must not outlive the failure
            raise
        self.status = "ok"
        logger.info("ready in %.1f s: %s", time.perf_counter() - started,
                    ", ".join(f"{mode}={ner.name}" for mode, ner in self.models.items()))

    def stop_by(self, seconds: float) -> None:
        """The server will stop within ``seconds`` (callable from a signal handler or another thread): requests
        still decoding a moment before that are to be answered 503 rather than cut off (``stopping``)."""
        if self._loop is None:
            return
        margin = min(1.0, seconds / 4)  # time left to write the answers before the connections close
        self._loop.call_soon_threadsafe(self._loop.call_later, max(0.0, seconds - margin), self.stopping.set)

    def close(self) -> None:
        close_engines(engines_of(self.models.values()))

    def engine_queue_depth(self) -> int:
        return sum(engine.num_unfinished_requests() for engine in engines_of(self.models.values()))

    # ------------------------------------------------------------------------------ requests
    def check(self, request: NERRequest) -> Job:
        """Every problem of ``request`` at once, as ``RequestRejected``; or the job to decode."""
        if self.status != "ok":
            raise RequestRejected(503, "not_ready", [Problem(field="body", message=(
                "the server is still loading its engines; retry when GET /health says ok" if self.status == "loading"
                else f"the server failed to load its engines: {self.detail}"))], {"Retry-After": "5"})
        limits = self.config
        problems: list[Problem] = []
        mode = request.mode or self.default_mode
        ner = self.models.get(mode)
        if ner is None:
            problems.append(Problem(field="mode", message=f"this server has no {mode} adapter; it serves "
                                                          f"{', '.join(sorted(self.models))}"))
        if request.max_count is not None and request.max_count > limits.max_count_limit:
            problems.append(Problem(field="max_count", message=f"{brief(request.max_count)} is above the server's "
                                                               f"limit", limit=limits.max_count_limit))
        texts = request.texts()
        if isinstance(request.input, list) and not texts:
            problems.append(Problem(field="input", message="an empty list; give at least one text"))
        too_large: list[Problem] = []  # the request's size over a limit: 413, whatever else is wrong
        if len(texts) > limits.max_texts:
            too_large.append(Problem(field="input", message=f"{len(texts)} texts in one request",
                                     limit=limits.max_texts))
        # A rejected max_count must not reach the length check (a 4,000-digit count is a valid JSON integer).
        own = ner.decode_config if ner else DecodeConfig()  # what the adapter decodes with: its tuned settings
        decode_config = request.decode_config(own) if not problems else own
        for index, text in enumerate(texts[: limits.max_texts]):  # more are an error already: check no more
            field = "input" if isinstance(request.input, str) else f"input[{index}]"
            if len(text) > limits.max_text_chars:
                too_large.append(Problem(field=field, message=f"{len(text)} characters", limit=limits.max_text_chars))
                continue
            problem = self._text_problem(field, text)
            if problem:
                problems.append(problem)
        labels = None
        if request.labels is not None:
            if not request.labels:
                problems.append(Problem(field="labels", message="an empty list; omit it to decode every label"))
            known = ner.labels if ner else ()
            unknown = [index for index, label in enumerate(request.labels) if ner and label not in known]
            for index in unknown[:MAX_PROBLEMS]:  # an error lists no more problems than this: build no more
                problems.append(Problem(field=f"labels[{index}]", message=f"{brief(request.labels[index])} is not one "
                                                                          f"of the adapter's labels {list(known)}"))
            if len(unknown) > MAX_PROBLEMS:
                problems.append(Problem(field="labels", message=f"{len(unknown) - MAX_PROBLEMS} more labels that are "
                                                                f"not the adapter's"))
            labels = tuple(dict.fromkeys(request.labels))
        if too_large:
            raise RequestRejected(413, "payload_too_large", too_large + problems)
        if problems:
            raise RequestRejected(400, "invalid_request", problems)
        return Job(ner, texts, labels, decode_config, request)

    def _text_problem(self, field: str, text: str) -> Problem | None:
        if not NON_BLANK.search(text):
            return Problem(field=field, message="empty or whitespace only")
        problem = surrogate_problem(text)
        if problem:
            return Problem(field=field, message=problem)
        return None  # a text longer than the engine's context is decoded in windows (padellm.engine.windows)

    async def run(self, job: Job) -> DecodeResult:
        # check() has already checked every text; the extractor windows those longer than the engine's context.
        return await job.ner.arun(job.texts, job.labels, job.decode_config, check=False)

    @staticmethod
    def response(request_id: str, job: Job, result: DecodeResult) -> NERResponse:
        request = job.request
        results = [TextResult(entities=[EntityOut.of(text, e, request.return_probabilities) for e in entities])
                   for text, entities in zip(job.texts, result.entities)]
        stats = result.stats
        if job.ner.mode == "parallel":
            sequences = stats["count_prompts"] + stats["branches"]
            tokens = stats["count_tokens"] + stats["branch_tokens"]
        else:
            sequences, tokens = stats["sequences"], stats["generated_tokens"]
        timings = ({stage.removesuffix("_s"): round(1000 * value, 3) for stage, value in result.timings.items()}
                   if request.return_timings else None)
        return NERResponse(id=request_id, model=job.ner.name, mode=job.ner.mode, results=results,
                           usage=Usage(texts=len(job.texts), sequences=sequences, generated_tokens=tokens),
                           timings_ms=timings)

    def describe(self) -> list[dict]:
        """What /v1/models lists: names, never paths on the server's disk."""
        from padellm.adapters import base_model_name

        described = []
        for mode, ner in self.models.items():
            template = ner.encoder.template
            described.append({"id": ner.name, "mode": mode, "base_model": base_model_name(self.adapter_of[mode]),
                              "labels": list(ner.labels), "template": f"{template.name}-v{template.version}"})
        return described
