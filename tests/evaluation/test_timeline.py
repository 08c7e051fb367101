"""The timeline recorder's bookkeeping, on a scripted engine that runs its requests in steps like vLLM's offline
loop: each call's steps, how many sequences each advanced, the late ones, and what the summary makes of them."""

from types import SimpleNamespace

import pytest

from padellm.evaluation.timeline import TimelineRecorder, summarize


class ScriptedEngine:
    """``generate`` adds one request per prompt and steps until all are done. A prompt ``n`` asks for n tokens; a
    negative n enters one step late and then asks for -n tokens."""

    def __init__(self):
        self.engine_core = SimpleNamespace(get_output=self._get_output)
        self.pending: dict[str, list[int]] = {}
        self.counter = 0

    def _get_output(self):
        advanced = []
        for request, state in self.pending.items():
            if state[0] > 0:  # waiting to enter
                state[0] -= 1
                continue
            state[1] -= 1
            advanced.append(SimpleNamespace(request_id=request))
        self.pending = {k: v for k, v in self.pending.items() if v[1] > 0}
        return SimpleNamespace(outputs=advanced)

    def step(self):
        return self.engine_core.get_output().outputs

    def generate(self, prompts):
        for n in prompts:
            self.counter += 1
            self.pending[str(self.counter)] = [1 if n < 0 else 0, abs(n)]
        while self.pending:
            self.step()
        return [None] * len(prompts)


class ScriptedNER:
    """Two engine calls per request: counts (one token each), then the branches."""

    def __init__(self):
        engine = ScriptedEngine()
        self.backend = SimpleNamespace(engine=SimpleNamespace(llm=SimpleNamespace(llm_engine=engine)))
        self.backend.generate = lambda prompts, *a, **k: engine.generate(prompts)
        self.plan = [[1, 1, 1], [3, -2]]

    def run(self, texts):
        for prompts in self.plan:
            self.backend.generate(prompts)


def test_each_call_records_its_steps_and_the_sequences_they_advanced():
    ner = ScriptedNER()
    original_generate = ner.backend.generate
    with TimelineRecorder(ner) as recorder:
        timeline = recorder.request("Anna met Peter")
    counts, branches = timeline.calls
    assert (counts.sequences, [s.emitted for s in counts.steps], counts.late_sequences) == (3, [3], 0)
    # the second branch enters a step late: 3 steps of 1 and 2 sequences, and one late sequence
    assert [s.emitted for s in branches.steps] == [1, 2, 2] and [s.new for s in branches.steps] == [1, 1, 0]
    assert branches.late_sequences == 1
    assert all(c.start <= c.steps[0].start and c.steps[-1].end <= c.end for c in timeline.calls)
    assert 0 <= timeline.padellm_s <= timeline.total_s and timeline.engine_s <= timeline.total_s
    summary = summarize([timeline, timeline])
    assert summary["requests"] == 2 and summary["engine_calls"] == 2 and summary["sequences"] == 5
    assert summary["decode_steps"] == 2 and summary["late_sequences"] == 1
    assert summary["decode_steps_by_sequences"] == {2: 4}
    # leaving the block puts the backend and engine back as they were
    assert ner.backend.generate is original_generate
    assert "step" not in vars(ner.backend.engine.llm.llm_engine)
    with pytest.raises(ValueError, match="no requests"):
        summarize([])
