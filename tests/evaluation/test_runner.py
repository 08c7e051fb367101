from collections import Counter

from padellm.evaluation.runner import rotation, run_systems
from padellm.evaluation.systems import Output
from padellm.types import Entity, Example

EXAMPLES = [Example("Anna in Paris", ("Anna", "in", "Paris"), ((0, 4), (5, 7), (8, 13)),
                    (Entity(0, 4, "PER"), Entity(8, 13, "LOC"))),
            Example("Bob", ("Bob",), ((0, 3),), (Entity(0, 3, "PER"),)),
            Example("Cy", ("Cy",), ((0, 2),), ())]


class FakeSystem:
    """Tags every capitalised word as PER; records the texts of each call in a shared log."""

    kind = "llm"
    labels = ("PER",)
    artifact = "fake"

    def __init__(self, name, log):
        self.name, self.log = name, log

    def run(self, examples):
        self.log.append((self.name, tuple(ex.text for ex in examples)))
        entities = []
        for example in examples:
            entities.append([Entity(s, e, "PER") for (s, e), word in zip(example.token_spans, example.tokens)
                             if word[0].isupper()])
        return Output(entities, {"count_s": 0.001}, Counter(sequences=len(examples)), exits=[2] * len(examples))

    def settings(self):
        return {}


def test_rotation_puts_every_system_first_in_turn():
    names = ["a", "b", "c"]
    assert [rotation(names, i) for i in range(4)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                                                       ["a", "b", "c"]]
    assert rotation(["a", "b"], 1) == ["b", "a"]


def test_warmup_then_interleaved_single_requests_then_one_batch_call_each():
    log = []
    systems = [FakeSystem(name, log) for name in ("p", "q", "r")]
    runs = run_systems(systems, EXAMPLES, [EXAMPLES[1]], progress=False)
    assert log[:3] == [("p", ("Bob",)), ("q", ("Bob",)), ("r", ("Bob",))]
    assert [name for name, _ in log[3:12]] == ["p", "q", "r", "q", "r", "p", "r", "p", "q"]
    assert [texts for _, texts in log[3:12:3]] == [("Anna in Paris",), ("Bob",), ("Cy",)]
    assert log[12:] == [(name, ("Anna in Paris", "Bob", "Cy")) for name in ("p", "q", "r")]
    run = runs["q"]
    assert len(run.latencies_s) == 3 and run.batch_s > 0
    assert run.predictions == run.batch_predictions == [[Entity(0, 4, "PER"), Entity(8, 13, "PER")],
                                                        [Entity(0, 3, "PER")], [Entity(0, 2, "PER")]]
    assert run.stats == Counter(sequences=3) and run.exits == [2, 2, 2] and run.stage_s == [{"count_s": 0.001}] * 3


def test_no_batch_mode():
    log = []
    runs = run_systems([FakeSystem("p", log)], EXAMPLES[:1], [], batch_mode=False, progress=False)
    assert log == [("p", ("Anna in Paris",))] and runs["p"].batch_s is None


def test_settle_pauses_before_every_single_request_outside_the_clock(monkeypatch):
    import padellm.evaluation.runner as runner

    class Clock:
        """Time passes only in sleep(): a pause inside the clock would show up as latency."""

        now, pauses = 0.0, []

        def perf_counter(self):
            return self.now

        def sleep(self, seconds):
            self.pauses.append(seconds)
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(runner, "time", clock)
    runs = run_systems([FakeSystem("p", []), FakeSystem("q", [])], EXAMPLES, [EXAMPLES[0]], batch_mode=False,
                       progress=False, settle_s=0.25)
    assert clock.pauses == [0.25] * 6 and runs["p"].latencies_s == runs["q"].latencies_s == [0.0] * 3
