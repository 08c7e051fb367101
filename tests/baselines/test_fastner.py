"""The FastNER model on a tiny random BERT (2 layers): the layer-by-layer encoder, early exit, training."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from padellm.baselines.exit_criteria import ExitConfig
from padellm.baselines.fastner import ConvBypass, FastNER, FastNERConfig
from padellm.baselines.fastner_data import collate, encode_example
from padellm.types import Entity, Example

LABELS = ("LOC", "MISC", "ORG", "PER")


def example(text, entities=()):
    words, spans, position = text.split(" "), [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return Example(text, tuple(words), tuple(spans), tuple(entities))


EXAMPLES = [
    example("EU rejects German call to boycott British lamb .", [Entity(0, 2, "ORG"), Entity(11, 17, "MISC"),
                                                                 Entity(34, 41, "MISC")]),
    example("Peter Blackburn", [Entity(0, 15, "PER")]),
    example("BRUSSELS 1996-08-22", [Entity(0, 8, "LOC")]),
    example("The European Commission said on Thursday it disagreed with German advice .",
            [Entity(4, 23, "ORG"), Entity(59, 65, "MISC")]),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def model_and_batch(tiny_bert_dir, tokenizer, **options):
    torch.manual_seed(0)
    config = FastNERConfig(labels=LABELS, max_width=4, biaffine_size=16, dropout=0.0, **options)
    model = FastNER.from_encoder(tiny_bert_dir, config).eval()
    batch = collate([encode_example(e, tokenizer, config) for e in EXAMPLES], tokenizer.pad_token_id)
    return model, batch


def test_encoding_maps_words_to_first_subwords(tokenizer):
    config = FastNERConfig(labels=LABELS, max_width=4)
    encoded = encode_example(EXAMPLES[0], tokenizer, config)
    ids = encoded.input_ids
    assert len(encoded.word_index) == 9 and encoded.word_index[0] == 1  # after [CLS]
    assert list(encoded.word_index) == sorted(encoded.word_index)
    assert encoded.gold == {(0, 0): 3, (2, 2): 2, (6, 6): 2} and encoded.lost_entities == 0
    assert tokenizer.convert_ids_to_tokens(ids[encoded.word_index[1]]) == tokenizer.tokenize("rejects")[0]
    short = encode_example(EXAMPLES[3], tokenizer, FastNERConfig(labels=LABELS, max_subwords=6))
    assert len(short.word_index) == 4 and short.lost_entities == 1  # "German" was cut off


@pytest.mark.parametrize("kernel_size, size", [(1, 0), (3, 0), (5, 0), (3, 3)])
def test_the_bypass_at_word_positions_equals_convolving_the_whole_sentence_then_gathering(kernel_size, size):
    torch.manual_seed(0)
    bypass = ConvBypass(8, kernel_size, size)
    torch.nn.init.normal_(bypass.out.weight)  # not the identity it starts as
    assert bypass.conv.weight.shape == (size or 8, size or 8, kernel_size)
    hidden = torch.randn(2, 7, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    positions = torch.tensor([[1, 2, 5, 6], [1, 3, 0, 0]])  # first subwords; 0 pads the shorter sentence
    masked = (hidden if bypass.down is None else bypass.down(hidden)) * mask[..., None]
    convolved = torch.nn.functional.conv1d(masked.transpose(1, 2), bypass.conv.weight, bypass.conv.bias,
                                           padding=kernel_size // 2).transpose(1, 2)
    whole = hidden + bypass.out(torch.nn.functional.gelu(convolved))
    expected = torch.gather(whole, 1, positions[..., None].expand(-1, -1, 8))
    assert torch.allclose(bypass(hidden, mask, positions), expected, atol=1e-5)


def test_the_layer_by_layer_encoder_equals_the_hugging_face_model(tiny_bert_dir, tokenizer):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    reference = AutoModel.from_pretrained(tiny_bert_dir, add_pooling_layer=False).eval()
    expected = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         output_hidden_states=True).hidden_states
    layers = model.layers
    hidden = layers.embed(batch.input_ids)
    attention = layers.attention(hidden, batch.attention_mask)
    for index in range(layers.num_layers):
        hidden = layers.layer(index, hidden, attention)
        real = batch.attention_mask.bool()
        assert torch.allclose(hidden[real], expected[index + 1][real], atol=1e-5)


@pytest.mark.parametrize("bypass, bypass_size", [(True, 0), (True, 4), (False, 0)])
def test_an_exited_sentence_equals_running_only_that_many_layers(tiny_bert_dir, tokenizer, bypass, bypass_size):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer, bypass=bypass, bypass_size=bypass_size)
    with torch.no_grad():  # give the bypass a non-zero output so that it matters
        for head in model.heads:
            if head.bypass is not None:
                head.bypass.out.weight.normal_(0, 0.5)
    assert (model.heads[0].bypass is None) is not bypass
    # Confidence pooled by mean differs per sentence: pick a threshold that sends some sentences out at exit 1.
    from padellm.baselines.exit_criteria import sentence_confidence
    from padellm.baselines.spans import span_mask

    with torch.no_grad():
        logits = model(batch)[0]
    confidence = sentence_confidence(logits.softmax(-1), span_mask(batch.num_words, logits.shape[1], 4), "mean")
    threshold = float(confidence.median())
    predictions = model.predict(batch, ExitConfig("confidence", threshold, "mean"))
    layers = [p.exit_layer for p in predictions]
    assert set(layers) == {1, 2}
    assert layers == [1 if c >= threshold else 2 for c in confidence.tolist()]
    for row, prediction in enumerate(predictions):
        alone = collate([encode_example(EXAMPLES[row], tokenizer, model.config)], tokenizer.pad_token_id)
        (expected,) = model.predict(alone, layers=prediction.exit_layer)
        assert [s[:3] for s in prediction.spans] == [s[:3] for s in expected.spans]
        assert [s[3] for s in prediction.spans] == pytest.approx([s[3] for s in expected.spans], abs=1e-5)
    full = model.predict(batch)
    assert [p.exit_layer for p in full] == [2] * 4
    assert [p.exit_layer for p in model.predict(batch, ExitConfig("entropy", 1.0))] == [1] * 4
    assert [p.exit_layer for p in model.predict(batch, ExitConfig("entropy", 1.0, min_layer=2))] == [2] * 4


def test_patience_leaves_once_the_entities_stop_changing(tiny_bert_dir, tokenizer):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    # Patience 1 needs two exits that agree, so on two layers nobody leaves before the last exit.
    predictions = model.predict(batch, ExitConfig("patience", patience=1))
    assert [p.exit_layer for p in predictions] == [2] * 4
    assert [p.spans for p in predictions] == [p.spans for p in model.predict(batch, layers=2)]


def test_training_reduces_the_loss_and_the_model_round_trips(tiny_bert_dir, tokenizer, tmp_path):
    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, per_exit = model.loss(batch, [1.0, 2.0])
        assert len(per_exit) == 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    folder = model.save(tmp_path / "fastner")
    loaded = FastNER.load(folder)
    assert loaded.config == model.config
    assert [p.spans for p in loaded.predict(batch)] == [p.spans for p in model.predict(batch)]
    assert sum(len(p.spans) for p in model.predict(batch)) > 0  # it learned to predict entities


def test_stable_labels_leave_with_the_entities_of_the_exit_they_leave_at(tiny_bert_dir, tokenizer):
    from padellm.baselines.exit_criteria import StableLabels

    model, batch = model_and_batch(tiny_bert_dir, tokenizer)
    # Like patience 1, stable 1 needs two exits that agree: on two layers everyone leaves at the last.
    predictions = model.predict(batch, ExitConfig("stable", patience=1))
    assert [p.exit_layer for p in predictions] == [2] * 4
    assert [p.spans for p in predictions] == [p.spans for p in model.predict(batch, layers=2)]
    assert ExitConfig("stable", patience=2).name == "stable 2"
    # The streaks: labels of the candidate spans only; the batch shrinks to the sentences that stay.
    streaks = StableLabels(patience=1)
    mask = torch.tensor([[[True, False], [False, False]], [[True, True], [False, True]]])
    first = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.5, 0.5]]],
                          [[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.1, 0.9]]]])
    assert streaks.update(first, mask).tolist() == [False, False]  # nothing to compare with yet
    second = first.clone()
    second[0, 0, 1] = torch.tensor([0.9, 0.1])  # not a candidate span of sentence 0: ignored
    second[1, 1, 1] = torch.tensor([0.9, 0.1])  # a candidate of sentence 1 changes its label
    assert streaks.update(second, mask).tolist() == [True, False]
    streaks.keep(torch.tensor([False, True]))
    assert streaks.update(second[1:, :2, :2], mask[1:]).tolist() == [True]
