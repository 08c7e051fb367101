import pytest
import torch

from padellm.baselines.crf import CRF, bio_tags
from padellm.baselines.distillation import multi_grained_loss, sequence_loss, teacher_targets, token_loss
from padellm.errors import ConfigError

TAGS = bio_tags(("X", "Y"))


def crf(seed: int) -> CRF:
    torch.manual_seed(seed)
    model = CRF(TAGS)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    return model


@pytest.fixture
def batch():
    torch.manual_seed(3)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return torch.randn(2, 5, len(TAGS)) * 2, mask


def test_teacher_targets_are_its_k_best_paths_weighted_and_its_marginals(batch):
    emissions, mask = batch
    teacher = crf(0)
    targets = teacher_targets(teacher, emissions, mask, k=3)
    best = teacher.k_best(emissions, mask, 3)
    for row in range(2):
        for rank, (path, log_prob) in enumerate(best[row]):
            assert targets.paths[row, rank, : len(path)].tolist() == path
        probabilities = torch.tensor([lp for _, lp in best[row]]).exp()
        assert torch.allclose(targets.weights[row], probabilities / probabilities.sum(), atol=1e-6)
    assert torch.allclose(targets.marginals, teacher.marginals(emissions, mask))
    with pytest.raises(ConfigError, match="k must be >= 1; got 0"):
        teacher_targets(teacher, emissions, mask, k=0)


def test_one_best_sequence_distillation_is_training_on_the_teachers_viterbi_path(batch):
    emissions, mask = batch
    teacher, student = crf(0), crf(1)
    targets = teacher_targets(teacher, emissions, mask, k=1)
    viterbi = torch.zeros(2, 5, dtype=torch.long)
    for row, path in enumerate(teacher.decode(emissions, mask)):
        viterbi[row, : len(path)] = torch.tensor(path)
    expected = student.nll(emissions, viterbi, mask).mean()
    assert sequence_loss(student, emissions, mask, targets).item() == pytest.approx(expected.item(), rel=1e-5)
    mixed = multi_grained_loss(student, emissions, mask, targets, viterbi, gold_weight=0.5, sequence_weight=1.0,
                               token_weight=0.0)
    assert mixed.item() == pytest.approx(1.5 * expected.item(), rel=1e-5)


def distil(emissions, mask, targets, **weights):
    student = crf(1)
    student_emissions = torch.nn.Parameter(torch.zeros_like(emissions))  # what the student's encoder would produce
    optimizer = torch.optim.Adam([student_emissions, *student.parameters()], lr=0.05)
    losses = []
    for _ in range(200):
        optimizer.zero_grad()
        loss = multi_grained_loss(student, student_emissions, mask, targets, None, gold_weight=0.0, **weights)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return student, student_emissions.detach(), losses


def test_a_student_distilled_at_both_grains_learns_the_teachers_tagging(batch):
    emissions, mask = batch
    teacher = crf(0)
    targets = teacher_targets(teacher, emissions, mask, k=4)
    student, student_emissions, losses = distil(emissions, mask, targets)
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert student.decode(student_emissions, mask) == teacher.decode(emissions, mask)
    # The token grain alone: the student's marginals become the teacher's.
    student, student_emissions, losses = distil(emissions, mask, targets, sequence_weight=0.0)
    with torch.no_grad():
        gap = (student.marginals(student_emissions, mask) - targets.marginals).abs().max().item()
        assert gap < 0.05 and token_loss(student, student_emissions, mask, targets).item() < losses[0]
