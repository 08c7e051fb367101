"""Where one request's time goes, decoder by decoder: padellm's own work (prompt building, reading answers, dedup and
alignment), and per engine call vLLM's input handling, its prefill step, each decode step with how many sequences
it advanced, and the conversion of its outputs.

The engine is the one ``padellm.load`` starts and decoding runs the library's own code: the recorder only wraps
``VLLMBackend.generate``, the engine's ``step`` (which ``vllm.LLM.generate`` calls until every request is done) and
the engine core client's ``get_output`` (which says which requests got a token in the step) to read the clock, so
the timeline is the production path's. ``eval/timeline.py`` prints its tables.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Step:
    """One engine step: its wall-clock span, and the sequences that got a token in it (``new``: their first)."""

    start: float
    end: float
    emitted: int
    new: int


@dataclass
class EngineCall:
    """One ``generate`` call of a decoder: its sequences and the engine steps that ran them."""

    start: float
    end: float
    sequences: int
    steps: list[Step] = field(default_factory=list)

    @property
    def submit_s(self) -> float:
        """From the call to its first engine step: vLLM's input processing and adding the requests."""
        return (self.steps[0].start if self.steps else self.end) - self.start

    @property
    def collect_s(self) -> float:
        """From the last step to the call's return: collecting outputs and turning them into generations."""
        return self.end - (self.steps[-1].end if self.steps else self.end)

    @property
    def late_sequences(self) -> int:
        """Sequences that got their first token after the call's first step (they entered the engine late)."""
        return self.sequences - (self.steps[0].new if self.steps else 0)


@dataclass
class RequestTimeline:
    """One request (one text) from ``NER.run`` call to return."""

    start: float
    end: float
    calls: list[EngineCall] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return self.end - self.start

    @property
    def engine_s(self) -> float:
        return sum(call.end - call.start for call in self.calls)

    @property
    def padellm_s(self) -> float:
        """Outside the engine calls: prompt building, reading answers, de-duplication and alignment."""
        return self.total_s - self.engine_s


class TimelineRecorder:
    """Records the engine calls and steps of the requests an ``NER`` on a ``VLLMBackend`` runs inside ``record``."""

    def __init__(self, ner):
        self.ner = ner
        self.backend = ner.backend
        self.engine = ner.backend.engine.llm.llm_engine
        self.current: RequestTimeline | None = None
        self._call: EngineCall | None = None
        self._seen: set[str] = set()

    def __enter__(self) -> "TimelineRecorder":
        generate, step = self.backend.generate, self.engine.step
        core = self.engine.engine_core
        get_output = core.get_output
        advanced: list[str] = []

        def timed_generate(prompts, *args, **kwargs):
            self._call = EngineCall(time.perf_counter(), 0.0, len(prompts))
            try:
                return generate(prompts, *args, **kwargs)
            finally:
                self._call.end = time.perf_counter()
                if self.current is not None:
                    self.current.calls.append(self._call)
                self._call = None

        def reading_output(*args, **kwargs):
            outputs = get_output(*args, **kwargs)  # one entry per request that got tokens in the step
            advanced[:] = [output.request_id for output in outputs.outputs]
            return outputs

        def timed_step():
            advanced.clear()
            started = time.perf_counter()
            outputs = step()
            ended = time.perf_counter()
            if self._call is not None:
                new = sum(1 for i in advanced if i not in self._seen)
                self._seen.update(advanced)
                self._call.steps.append(Step(started, ended, len(advanced), new))
            return outputs

        self._restore = [_replace(self.backend, "generate", timed_generate), _replace(self.engine, "step", timed_step),
                         _replace(core, "get_output", reading_output)]
        return self

    def __exit__(self, *exc) -> None:
        for restore in self._restore:
            restore()

    def request(self, text: str) -> RequestTimeline:
        """Run ``text`` as one request and return its timeline."""
        self.current = RequestTimeline(time.perf_counter(), 0.0)
        try:
            self.ner.run([text])
        finally:
            self.current.end = time.perf_counter()
        timeline, self.current = self.current, None
        return timeline


def _replace(owner, name: str, value):
    """Set ``owner.name`` to ``value``; returns what puts it back (the instance's own attribute, or none, so that the
    class's method shows through again)."""
    own = vars(owner)
    had, previous = name in own, own.get(name)
    setattr(owner, name, value)

    def restore() -> None:
        if had:
            setattr(owner, name, previous)
        else:
            delattr(owner, name)

    return restore


def summarize(timelines: list[RequestTimeline]) -> dict:
    """Means per request (milliseconds), the engine calls and steps per request, and how the decode steps' time
    grows with the sequences they advance."""
    if not timelines:
        raise ValueError("no requests to summarize")
    n = len(timelines)

    def mean_ms(values) -> float:
        return round(1000 * sum(values) / n, 2)

    calls = [call for t in timelines for call in t.calls]
    prefill = [call.steps[0].end - call.steps[0].start for call in calls if call.steps]
    decode_steps = [s for call in calls for s in call.steps[1:]]
    by_batch: dict[int, list[float]] = {}
    for s in decode_steps:
        by_batch.setdefault(s.emitted, []).append(1000 * (s.end - s.start))
    return {
        "requests": n,
        "total_ms": mean_ms(t.total_s for t in timelines),
        "total_ms_p50": round(1000 * statistics.median(t.total_s for t in timelines), 2),
        "padellm_ms": mean_ms(t.padellm_s for t in timelines),
        "engine_calls": round(len(calls) / n, 2),
        "submit_ms": mean_ms(call.submit_s for call in calls),
        "prefill_ms": mean_ms(prefill),
        "decode_ms": mean_ms(s.end - s.start for s in decode_steps),
        "decode_steps": round(len(decode_steps) / n, 2),
        "collect_ms": mean_ms(call.collect_s for call in calls),
        "between_steps_ms": mean_ms(_gaps(call) for call in calls),
        "sequences": round(sum(call.sequences for call in calls) / n, 2),
        "late_sequences": round(sum(call.late_sequences for call in calls) / n, 3),
        "decode_step_ms_by_sequences": {k: round(statistics.mean(v), 2) for k, v in sorted(by_batch.items())},
        "decode_steps_by_sequences": dict(sorted(Counter(s.emitted for s in decode_steps).items())),
    }


def _gaps(call: EngineCall) -> float:
    """Time between consecutive engine steps of a call (the frontend's own work between them)."""
    return sum(b.start - a.end for a, b in zip(call.steps, call.steps[1:]))
