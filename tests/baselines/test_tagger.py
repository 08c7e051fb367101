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
