"""Per-exit gate thresholds tuned for an F1 budget: which exit each sentence takes, what that costs and scores, and
the greedy search that keeps F1 within the budget."""

import itertools

import pytest
import torch

from padellm.baselines.gate_budgets import GATE_COST, HEAD_COST, NEVER, exits_at, outcome, outcomes, tune_thresholds

# Three sentences, three exits (two gates). counts[n, exit] = (tp, fp, fn).
COUNTS = torch.tensor([
    [[1, 0, 0], [1, 0, 0], [1, 0, 0]],  # right everywhere
    [[0, 1, 1], [1, 0, 0], [1, 0, 0]],  # wrong at exit 1, right from exit 2
    [[0, 0, 2], [1, 0, 1], [2, 0, 0]],  # better at every exit
])
WEIGHTS = torch.tensor([10, 20, 30])
PROBABILITIES = torch.tensor([[0.9, 0.95], [0.6, 0.9], [0.55, 0.7]])


def test_each_sentence_leaves_at_the_first_gate_that_reaches_its_threshold():
    thresholds = torch.tensor([[0.8, 0.8], [0.5, 0.5], [NEVER, NEVER], [NEVER, 0.75]])
    assert exits_at(PROBABILITIES, thresholds).tolist() == [[0, 1, 2], [0, 0, 0], [2, 2, 2], [1, 1, 2]]


def test_outcome_counts_f1_over_sentences_and_cost_in_layers_per_subword():
    full = outcome(PROBABILITIES, COUNTS, WEIGHTS, [NEVER, NEVER], head_cost=0.5, gate_cost=0.0)
    assert full.f1 == pytest.approx(100.0) and full.cost == pytest.approx(1.0) and full.mean_exit == 3
    early = outcome(PROBABILITIES, COUNTS, WEIGHTS, [0.8, 0.8], head_cost=0.5, gate_cost=0.0)
    # exits 1, 2, 3: tp 1 + 1 + 2 = 4, fp 0, fn 0 -> F1 100; cost (10 * 1.5 + 20 * 2.5 + 30 * 3.5) / (60 * 3.5)
    assert early.f1 == pytest.approx(100.0) and early.cost == pytest.approx(170 / 210, abs=1e-4)
    everyone_first = outcome(PROBABILITIES, COUNTS, WEIGHTS, [0.5, 0.5], head_cost=0.5, gate_cost=0.1)
    # tp 1, fp 1, fn 3 -> 2 / (2 + 1 + 3); every sentence passes one gate: (60 * (1.5 + 0.1)) / (60 * 3.5)
    assert everyone_first.f1 == pytest.approx(200 / 6, abs=1e-3)
    assert everyone_first.cost == pytest.approx(1.6 / 3.5, abs=1e-4)
    f1, cost, _ = outcomes(PROBABILITIES, COUNTS, WEIGHTS, torch.tensor([[NEVER, NEVER], [0.8, 0.8]]), 0.5, 0.0)
    assert f1.tolist() == pytest.approx([100.0, 100.0]) and cost.tolist() == pytest.approx([1.0, 170 / 210], abs=1e-4)


def brute_force(max_drop: float, grid: tuple[float, ...]):
    """The cheapest thresholds of the grid (and NEVER) within the budget."""
    full = outcome(PROBABILITIES, COUNTS, WEIGHTS, [NEVER, NEVER])
    results = [outcome(PROBABILITIES, COUNTS, WEIGHTS, pair) for pair in itertools.product(grid + (NEVER,), repeat=2)]
    return min(r.cost for r in results if r.f1 >= full.f1 - max_drop)


def test_tuning_keeps_f1_within_the_budget_at_the_cheapest_cost_here():
    grid = (0.5, 0.58, 0.65, 0.8, 0.92)
    full = outcome(PROBABILITIES, COUNTS, WEIGHTS, [NEVER, NEVER])
    previous_cost = 1.0
    for max_drop in (0.0, 10.0, 30.0, 100.0):
        thresholds, result = tune_thresholds(PROBABILITIES, COUNTS, WEIGHTS, max_drop, grid=grid)
        assert result == outcome(PROBABILITIES, COUNTS, WEIGHTS, thresholds)
        assert result.f1 >= full.f1 - max_drop
        assert result.cost == pytest.approx(brute_force(max_drop, grid), abs=1e-4)  # greedy finds the optimum here
        assert result.cost <= previous_cost  # a larger budget never costs more
        previous_cost = result.cost
    # Budget 0: sentence 1 may leave at exit 1 (no loss) and sentence 2 at exit 2; sentence 3 must go to the end.
    thresholds, result = tune_thresholds(PROBABILITIES, COUNTS, WEIGHTS, 0.0, grid=grid)
    assert exits_at(PROBABILITIES, torch.tensor([thresholds])).tolist() == [[0, 1, 2]]
    assert result.f1 == pytest.approx(100.0)


def test_without_a_gain_in_cost_every_gate_stays_shut():
    counts = torch.tensor([[[0, 1, 1], [1, 0, 0]]] * 4)  # the early exit is always wrong
    probabilities = torch.full((4, 1), 0.99)
    thresholds, result = tune_thresholds(probabilities, counts, torch.ones(4), 0.0)
    assert thresholds == (NEVER,) and result.f1 == pytest.approx(100.0)
    assert result.cost == pytest.approx((2 + HEAD_COST + GATE_COST) / (2 + HEAD_COST))  # a shut gate still runs
