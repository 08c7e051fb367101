"""The BIO taggers (early exit with off-ramps; CRF teacher and student) on a tiny random BERT."""

import pytest
import torch
from transformers import AutoTokenizer

from padellm.baselines.tagger import Tagger, TaggerConfig, encode, to_entities
from padellm.baselines.token_exit import TokenExitConfig
from padellm.data.bio import tokenize
from padellm.errors import ConfigError, CorpusError
from padellm.types import Entity, Example


def example(text: str, entities=()) -> Example:
    tokens, spans = tokenize(text)
    return Example(text, tuple(tokens), tuple(spans), tuple(entities))


EXAMPLES = [example("EU rejects German call", [Entity(0, 2, "ORG"), Entity(11, 17, "MISC")]),
            example("Peter Blackburn said", [Entity(0, 15, "PER")]),
            example("Japan began the defence", [Entity(0, 5, "LOC")])]
LABELS = ("LOC", "MISC", "ORG", "PER")


def train(tagger, batch, steps=40):
    optimizer = torch.optim.Adam(tagger.parameters(), lr=3e-3)
    tagger.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss, _ = tagger.loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return tagger.eval(), losses


@pytest.fixture
def tokenizer(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def test_gold_tags_and_entities_round_trip(tokenizer):
    config = TaggerConfig(labels=LABELS)
    batch = encode(EXAMPLES, tokenizer, config)
    tags = config.tags
    assert [tags[i] for i in batch.tags[1][batch.word_mask[1]].tolist()] == ["B-PER", "I-PER", "O"]
    for row, ex in enumerate(EXAMPLES):
        assert to_entities(batch.tags[row][batch.word_mask[row]].tolist(), tags, ex) == list(ex.entities)
    nested = example("IL-2 gene", [Entity(0, 9, "DNA"), Entity(0, 4, "protein")])
    with pytest.raises(CorpusError, match="BIO cannot nest.*a BIO tagger needs flat"):
        encode([nested], tokenizer, TaggerConfig(labels=("DNA", "protein")))


def test_the_off_ramp_tagger_learns_and_decodes_with_or_without_exits(tiny_bert_dir, tokenizer, tmp_path):
    torch.manual_seed(0)
    config = TaggerConfig(labels=LABELS, dropout=0.0)
    batch = encode(EXAMPLES, tokenizer, config)
    tagger, losses = train(Tagger.from_encoder(tiny_bert_dir, config), batch)
    assert losses[-1] < 0.3 * losses[0]
    tags, exits, token_layers = tagger.predict(batch)
    assert [to_entities(t, config.tags, ex) for t, ex in zip(tags, EXAMPLES)] == [list(ex.entities) for ex in EXAMPLES]
    assert (exits[batch.word_mask] == tagger.num_layers).all()
    for mode in ("sentence", "token"):  # threshold 1: everything may leave after the first layer
        early, exits, fewer = tagger.predict(batch, TokenExitConfig(mode=mode, threshold=1.0))
        assert (exits[batch.word_mask] == 1).all() and fewer < token_layers
    tagger.save(tmp_path / "model")
    again = Tagger.load(tmp_path / "model")
    assert again.predict(batch)[0] == tags


def test_the_crf_tagger_and_a_student_with_fewer_layers(tiny_bert_dir, tokenizer, tmp_path):
    torch.manual_seed(0)
    config = TaggerConfig(labels=LABELS, crf=True, dropout=0.0)
    batch = encode(EXAMPLES, tokenizer, config)
    teacher, losses = train(Tagger.from_encoder(tiny_bert_dir, config), batch, steps=60)
    assert losses[-1] < 0.3 * losses[0]
    tags, _, _ = teacher.predict(batch)
    assert [to_entities(t, config.tags, ex) for t, ex in zip(tags, EXAMPLES)] == [list(ex.entities) for ex in EXAMPLES]
    with pytest.raises(ConfigError, match="a CRF tagger decodes whole sentences"):
        teacher.predict(batch, TokenExitConfig(mode="token", threshold=0.5))
    student = Tagger.from_encoder(tiny_bert_dir, TaggerConfig(labels=LABELS, crf=True, layers=1))
    assert student.num_layers == 1 and len(student.heads) == 1
    student.save(tmp_path / "student")
    loaded = Tagger.load(tmp_path / "student")
    assert loaded.num_layers == 1 and loaded.config.layers == 1
    assert torch.allclose(loaded.crf.transitions, student.crf.transitions)
    with pytest.raises(ConfigError, match="layers: the encoder has 2 layers; got 5"):
        Tagger.from_encoder(tiny_bert_dir, TaggerConfig(labels=LABELS, layers=5))


def test_self_sampling_trains_each_off_ramp_on_the_words_still_running_there(tiny_bert_dir, tokenizer):
    torch.manual_seed(0)
    config = TaggerConfig(labels=LABELS, dropout=0.0)
    batch = encode(EXAMPLES, tokenizer, config)
    tagger = Tagger.from_encoder(tiny_bert_dir, config)
    # At threshold 0 no word leaves early: every off-ramp sees every word, which is the joint training loss.
    loss, log = tagger.self_sampling_loss(batch, max_threshold=0.0, window=1, exit_weights=[1.0, 2.0])
    joint, _ = tagger.loss(batch, [1.0, 2.0])
    assert torch.allclose(loss, joint, atol=1e-6) and log == {"mean_exit": 2.0, "computed": 1.0}

    # Per-sentence thresholds: sentence 0 leaves at layer 1 (1 is the largest uncertainty), the others run on.
    from padellm.baselines.token_exit import run_with_exits

    result = run_with_exits(tagger.layers, tagger.heads, batch.input_ids, batch.attention_mask,
                            TokenExitConfig(mode="token", threshold=0.0), batch.word_index, batch.word_mask,
                            thresholds=torch.tensor([1.0, 0.0, 0.0]), keep_layers=True)
    words = batch.word_mask
    assert (result.exit_layer[0][words[0]] == 1).all() and (result.exit_layer[1:][words[1:]] == 2).all()
    (first_logits, first_active), (_, second_active) = result.layers
    assert torch.equal(first_active, words) and torch.equal(second_active, words & torch.tensor([[0], [1], [1]]).bool())
    assert torch.allclose(result.logits[0][words[0]], first_logits[0][words[0]])

    # Under autograd the sampled pass trains every layer (the upper one through the words that stayed).
    tagger.zero_grad()
    generator = torch.Generator().manual_seed(0)
    loss, log = tagger.self_sampling_loss(batch, max_threshold=1.0, window=0, generator=generator)
    loss.backward()
    assert torch.isfinite(loss) and 1.0 <= log["mean_exit"] <= 2.0 and 0 < log["computed"] <= 1.0
    top = tagger.encoder.encoder.layer[-1].output.dense.weight.grad
    assert top is not None and top.abs().sum() > 0
    with pytest.raises(ConfigError, match="a CRF tagger has no early exit"):
        Tagger.from_encoder(tiny_bert_dir, TaggerConfig(labels=LABELS, crf=True)).self_sampling_loss(batch, 0.5, 1)
