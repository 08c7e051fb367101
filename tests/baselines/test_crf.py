"""The CRF against brute force: every tag path of a tiny CRF enumerated and scored by hand."""

import itertools
import math

import pytest
import torch

from padellm.baselines.crf import CRF, bio_constraints, bio_tags

TAGS = bio_tags(("X", "Y"))  # O, B-X, I-X, B-Y, I-Y


def crf_and_batch(seed: int = 0, lengths=(4, 2, 3)):
    torch.manual_seed(seed)
    crf = CRF(TAGS)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    emissions = torch.randn(len(lengths), max(lengths), len(TAGS))
    mask = torch.tensor([[t < n for t in range(max(lengths))] for n in lengths])
    return crf, emissions, mask


def by_hand(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    allowed, first = bio_constraints(TAGS)
    if not first[path[0]] or any(not allowed[a, b] for a, b in zip(path, path[1:])):
        return -math.inf
    score = crf.start[path[0]].item() + crf.end[path[-1]].item()
    score += sum(emissions[t, tag].item() for t, tag in enumerate(path))
    score += sum(crf.transitions[a, b].item() for a, b in zip(path, path[1:]))
    return score


def all_paths(crf, emissions, length):
    scored = [(by_hand(crf, emissions, p), p) for p in itertools.product(range(len(TAGS)), repeat=length)]
    return sorted([s for s in scored if s[0] > -math.inf], reverse=True)


def test_bio_constraints():
    allowed, first = bio_constraints(TAGS)
    assert TAGS == ("O", "B-X", "I-X", "B-Y", "I-Y")
    assert not first[2] and not first[4] and first[0] and first[1]
    assert allowed[1, 2] and allowed[2, 2] and not allowed[0, 2] and not allowed[3, 2] and allowed[2, 3]


def test_partition_scores_marginals_and_k_best_equal_brute_force():
    crf, emissions, mask = crf_and_batch()
    log_z = crf.log_partition(emissions, mask)
    marginals = crf.marginals(emissions, mask)
    k_best = crf.k_best(emissions, mask, k=7)
    for row, length in enumerate(mask.sum(1).tolist()):
        paths = all_paths(crf, emissions[row], length)
        z = math.log(sum(math.exp(s) for s, _ in paths))
        assert log_z[row].item() == pytest.approx(z, abs=1e-4)
        for score, path in paths[:3]:
            tags = torch.tensor([list(path) + [0] * (emissions.shape[1] - length)])
            assert crf.path_score(emissions[row : row + 1], tags, mask[row : row + 1]).item() == pytest.approx(score, abs=1e-4)
        expected = torch.zeros(emissions.shape[1], len(TAGS))
        for score, path in paths:
            for t, tag in enumerate(path):
                expected[t, tag] += math.exp(score - z)
        assert torch.allclose(marginals[row], expected, atol=1e-5)
        # the k best, in order, with their log-probabilities
        assert [tuple(p) for p, _ in k_best[row]] == [p for _, p in paths[:7]]
        assert [lp for _, lp in k_best[row]] == pytest.approx([s - z for s, _ in paths[:7]], abs=1e-4)
    assert crf.decode(emissions, mask) == [k[0][0] for k in k_best]


def test_nll_trains_the_crf_to_the_gold_path():
    crf, emissions, mask = crf_and_batch(seed=1)
    emissions = torch.nn.Parameter(emissions)  # what an encoder would produce, learnable here
    gold = torch.tensor([[1, 2, 0, 3], [3, 4, 0, 0], [0, 1, 0, 0]])
    optimizer = torch.optim.Adam([emissions, *crf.parameters()], lr=0.1)
    before = crf.nll(emissions, gold, mask).sum().item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = crf.nll(emissions, gold, mask).sum()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * before
    assert crf.decode(emissions, mask) == [[1, 2, 0, 3], [3, 4], [0, 1, 0]]
