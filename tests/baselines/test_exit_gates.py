"""FastNER's learned exit gates on a tiny random BERT (2 layers, so one gate): the safety label, the features,
the logistic fit, gated early exit (heads only for the sentences that leave), fitting from a model, saving."""

import math

import pytest
import torch

from padellm.baselines.exit_criteria import ExitConfig
from padellm.baselines.exit_gates import ExitGates, entity_counts, fit_gate, gate_features, safe_to_leave
from padellm.baselines.fastner import FastNER
from padellm.baselines.fastner_data import collate, encode_example
from padellm.errors import ConfigError
from padellm.training.fastner_gates import exit_records, fit_exit_gates
from test_fastner import EXAMPLES, model_and_batch, tokenizer  # noqa: F401  (the tokenizer fixture)


def test_leaving_is_safe_when_no_count_of_the_f1_gets_worse():
    gold = {(0, 0, 1), (2, 3, 2)}
    last = entity_counts({(0, 0, 1)}, gold)
    assert last == (1, 0, 1)
    exits = [{(0, 0, 1)},  # the same entities
             {(0, 0, 1), (2, 3, 2)},  # one more true positive
             set(),  # a true positive lost
             {(0, 0, 1), (5, 5, 1)},  # a false positive more
             {(2, 3, 2), (5, 5, 1)}]  # a different true positive, one false positive more
    counts = torch.tensor([[entity_counts(here, gold) for here in exits] + [last]])
    assert safe_to_leave(counts).tolist() == [[True, True, False, False, False]]
    swapped = torch.tensor([[entity_counts({(4, 4, 1)}, gold), entity_counts({(5, 5, 1)}, gold)]])
    assert safe_to_leave(swapped).tolist() == [[True]]  # a different mistake, no worse
    assert safe_to_leave(torch.zeros(1, 2, 3, dtype=torch.long)).tolist() == [[True]]


def test_gate_features_pool_the_real_subwords_only():
    hidden = torch.tensor([[[1.0, -1.0], [3.0, 5.0], [100.0, 100.0]], [[2.0, 0.0], [4.0, -2.0], [0.0, 6.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    expected = torch.tensor([[2.0, 2.0, 3.0, 5.0, math.log(3)], [2.0, 4.0 / 3, 4.0, 6.0, math.log(4)]])
    assert torch.allclose(gate_features(hidden, mask), expected)


def test_the_fitted_gate_separates_what_it_can_in_the_raw_units():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(200, 3, generator=generator) * torch.tensor([100.0, 0.01, 1.0]) + 50
    safe = features[:, 1] > 50  # decided by the feature with the smallest scale: standardisation matters
    gate = fit_gate(features, safe)
    assert gate.fit.sentences == 200 and gate.fit.safe_rate == pytest.approx(safe.float().mean().item(), abs=1e-4)
    assert gate.fit.accuracy >= 0.97
    assert ((features @ gate.weight + gate.bias > 0) == safe).float().mean() >= 0.97
    # Held-out probabilities come from fits without each sentence's fold: close to, but not, the final gate's.
    in_sample = torch.sigmoid(features @ gate.weight + gate.bias)
    assert gate.held_out.shape == (200,) and not torch.allclose(gate.held_out, in_sample)
    assert ((gate.held_out > 0.5) == safe).float().mean() >= 0.9
    always = fit_gate(features, torch.ones(200, dtype=torch.bool))
    assert always.fit.safe_rate == 1.0 and bool((features @ always.weight + always.bias > 0).all())
    few = fit_gate(features[:6], safe[:6])  # too few to cross-validate: the in-sample probabilities
    assert torch.allclose(few.held_out, torch.sigmoid(features[:6] @ few.weight + few.bias), atol=1e-3)  # float32 rounding


def gated(model, hidden_size, bias, weight=None):
    model.gates = ExitGates(hidden_size, model.num_layers - 1)
    model.gates.bias.data.fill_(bias)
    if weight is not None:
        model.gates.weight.data[0] = weight
    return model


def test_gates_that_always_or_never_open_give_the_first_exit_or_the_full_model(tiny_bert_dir, tokenizer):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    with pytest.raises(ConfigError, match="eval/fit_exit_gates.py"):
        model.predict(batch, ExitConfig("gate", 0.5))
    hidden_size = model.encoder.config.hidden_size
    gated(model, hidden_size, bias=20.0)
    opened = model.predict(batch, ExitConfig("gate", 0.5))
    assert [p.exit_layer for p in opened] == [1] * 4
    assert [p.spans for p in opened] == [p.spans for p in model.predict(batch, layers=1)]
    assert [p.exit_layer for p in model.predict(batch, ExitConfig("gate", 0.5, min_layer=2))] == [2] * 4
    gated(model, hidden_size, bias=-20.0)
    closed = model.predict(batch, ExitConfig("gate", 0.5))
    assert [p.exit_layer for p in closed] == [2] * 4
    assert [p.spans for p in closed] == [p.spans for p in model.predict(batch)]


def test_only_the_sentences_that_leave_pay_for_the_exit_head(tiny_bert_dir, tokenizer):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    with torch.no_grad():
        for head in model.heads:
            head.bypass.out.weight.normal_(0, 0.5)
    hidden_size = model.encoder.config.hidden_size
    # Small weights keep the probabilities off 0 and 1, so that they differ between sentences.
    weight = 0.05 * torch.randn(2 * hidden_size + 1, generator=torch.Generator().manual_seed(1))
    gated(model, hidden_size, bias=0.0, weight=weight)
    # The threshold between the sentences' gate probabilities at exit 1 sends some out there and keeps the rest.
    with torch.no_grad():
        hidden = model.layers.embed(batch.input_ids)
        hidden = model.layers.layer(0, hidden, model.layers.attention(hidden, batch.attention_mask))
        probability = model.gates.probability(0, hidden, batch.attention_mask)
    assert len(set(probability.tolist())) == 4
    threshold = float(probability.median())
    leave_first = (probability >= threshold).tolist()
    assert 0 < sum(leave_first) < 4
    seen = []
    hook = model.heads[0].register_forward_hook(lambda module, args, output: seen.append(output.shape[0]))
    predictions = model.predict(batch, ExitConfig("gate", threshold))
    hook.remove()
    assert seen == [sum(leave_first)]  # exit 1's head ran once, for the sentences that left there only
    assert [p.exit_layer for p in predictions] == [1 if first else 2 for first in leave_first]
    for row, prediction in enumerate(predictions):
        alone = collate([encode_example(EXAMPLES[row], tokenizer, model.config)], tokenizer.pad_token_id)
        (expected,) = model.predict(alone, layers=prediction.exit_layer)
        assert [s[:3] for s in prediction.spans] == [s[:3] for s in expected.spans]
        assert [s[3] for s in prediction.spans] == pytest.approx([s[3] for s in expected.spans], abs=1e-5)


def test_fitting_records_each_exit_against_the_last_and_the_gates_round_trip(tiny_bert_dir, tokenizer, tmp_path):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    records = exit_records(model, tokenizer, EXAMPLES, batch_size=3)  # two batches of different widths
    hidden_size = model.encoder.config.hidden_size
    assert len(records.features) == 1 and records.features[0].shape == (4, 2 * hidden_size + 1)
    assert records.counts.shape == (4, 2, 3) and records.safe.shape == (4, 1)
    exits = [model.predict(batch, layers=1), model.predict(batch, layers=2)]
    for row, example in enumerate(EXAMPLES):
        encoded = encode_example(example, tokenizer, model.config)
        gold = {(i, j, label) for (i, j), label in encoded.gold.items()}
        for index, predictions in enumerate(exits):
            expected = entity_counts({s[:3] for s in predictions[row].spans}, gold)
            assert tuple(records.counts[row, index].tolist()) == expected
        assert records.subwords[row] == len(encoded.input_ids)
    gates = fit_exit_gates(model, tokenizer, EXAMPLES, "four sentences", budgets=(0.5, 2.0))
    assert model.gates is gates and gates.exits == 1
    assert gates.report["data"] == "four sentences" and gates.report["exits"][0]["sentences"] == 4
    assert set(gates.budgets) == {0.5, 2.0} and [t["max_drop"] for t in gates.report["budgets"]["tuned"]] == [0.5, 2.0]
    folder = model.save(tmp_path / "fastner")
    loaded = FastNER.load(folder)
    assert loaded.gates is not None and loaded.gates.report == gates.report and loaded.gates.budgets == gates.budgets
    assert torch.equal(loaded.gates.weight, gates.weight) and torch.equal(loaded.gates.bias, gates.bias)
    for config in (ExitConfig("gate", 0.5), ExitConfig("budget", 2.0)):
        assert [p.spans for p in loaded.predict(batch, config)] == [p.spans for p in model.predict(batch, config)]
    plain, _ = model_and_batch(tiny_bert_dir, tokenizer)
    assert FastNER.load(plain.save(tmp_path / "plain")).gates is None


def test_cross_validation_picks_the_regularisation_the_data_wants():
    from padellm.baselines.exit_gates import cross_validate

    generator = torch.Generator().manual_seed(0)
    signal = torch.randn(300, 2, generator=generator)
    clean = (signal[:, 0] > 0).double()  # a clean boundary: strong L2 only blurs it
    l2, held_out = cross_validate(signal.double(), clean, (0.001, 10.0), folds=5, steps=50)
    assert l2 == 0.001 and held_out.shape == (300,) and ((held_out > 0) == clean.bool()).float().mean() >= 0.95
    noise = torch.randn(60, 40, generator=generator).double()  # labels unrelated to 40 features: shrink them
    coin = (torch.rand(60, generator=generator) > 0.5).double()
    assert cross_validate(noise, coin, (0.001, 10.0), folds=5, steps=50)[0] == 10.0
    # Too few to cross-validate: the first choice, and no held-out logits.
    assert cross_validate(noise[:4], coin[:4], (0.5, 10.0), folds=5, steps=50) == (0.5, None)
