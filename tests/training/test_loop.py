"""The step loop every trainer shares, with a fake step: log windows, checkpoint cadence, the wall-time bound."""

import json

import pytest
import torch

from padellm.errors import ConfigError
from padellm.training.checkpoints import checkpoint_to_resume
from padellm.training.loop import Schedule, StepOutcome, cosine_with_warmup, run_loop, start_log


def scheduler():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return cosine_with_warmup(optimizer, 0, 10)


def test_log_windows_average_by_weight_and_checkpoints_follow_the_cadence(tmp_path):
    saved, seen = [], []

    def step(state, epoch, step_in_epoch):
        seen.append((epoch, step_in_epoch))
        state["tokens"] = state.get("tokens", 0) + 10
        return StepOutcome(loss=float(state["step"]), weight=state["step"] + 1, log={"extra": state["step"]})

    state = {"step": 0, "elapsed_s": 0.0}
    log_path = start_log(tmp_path, resume=False, step=0)
    stopped = run_loop(Schedule(5, 2, checkpoint_every=2, log_every=2), state, step, lambda s: saved.append(s["step"]),
                       log_path, scheduler(), "test", progress=False)
    assert not stopped and state["step"] == 5 and state["losses"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert seen == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert saved == [2, 4]  # never at the last step: the trainer saves the final weights itself
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 5]
    # steps 1-2 had losses 0 and 1 with weights 1 and 2: (0 * 1 + 1 * 2) / 3
    assert records[0]["loss"] == pytest.approx(2 / 3) and records[2]["loss"] == pytest.approx(4.0)
    assert records[0]["extra"] == 1 and records[0]["tokens_per_s"] > 0


def test_the_wall_time_bound_checkpoints_and_stops(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 40))  # 40 s per reading
    monkeypatch.setattr("padellm.training.loop.time.perf_counter", lambda: next(clock))
    saved = []
    state = {"step": 0, "elapsed_s": 0.0}
    stopped = run_loop(Schedule(100, 100, max_minutes=1.0), state, lambda s, e, i: StepOutcome(1.0),
                       lambda s: saved.append(s["step"]), tmp_path / "log.jsonl", scheduler(), "test", progress=False)
    assert stopped and saved == [state["step"]] and state["step"] < 100


def test_schedule_and_resume_problems_are_named(tmp_path):
    with pytest.raises(ConfigError, match="total_steps must be >= 1; got 0"):
        Schedule(0, 1)
    with pytest.raises(ConfigError, match="--resume: no checkpoint"):
        checkpoint_to_resume(tmp_path, True, tmp_path / "model", "model")
    (tmp_path / "model").mkdir()
    with pytest.raises(ConfigError, match="already holds a trained model"):
        checkpoint_to_resume(tmp_path, False, tmp_path / "model", "model")
    assert checkpoint_to_resume(tmp_path / "new", False, tmp_path / "new" / "model", "model") is None
