"""Token- and sentence-level early exit (Li et al. 2021) on a tiny random BERT: exits behave as specified."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from padellm.baselines.encoder import LayerwiseEncoder
from padellm.baselines.token_exit import (TokenExitConfig, layer_for_tokens, run_with_exits, uncertainty,
                                          window_max, word_owners)
from padellm.errors import ConfigError

SENTENCES = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["Japan", "began", "the", "defence"]]


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    torch.manual_seed(0)
    encoder = LayerwiseEncoder(AutoModel.from_pretrained(tiny_bert_dir).eval())
    hidden = encoder.model.config.hidden_size
    heads = torch.nn.ModuleList(torch.nn.Linear(hidden, 5) for _ in range(encoder.num_layers)).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    batch = tokenizer(SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")
    word_index = torch.zeros(len(SENTENCES), 4, dtype=torch.long)
    word_mask = torch.zeros(len(SENTENCES), 4, dtype=torch.bool)
    for row in range(len(SENTENCES)):
        firsts = {}
        for position, word in enumerate(batch.word_ids(row)):
            if word is not None and word not in firsts:
                firsts[word] = position
        word_index[row, : len(firsts)] = torch.tensor([firsts[w] for w in sorted(firsts)])
        word_mask[row, : len(firsts)] = True
    return encoder, heads, batch["input_ids"], batch["attention_mask"], word_index, word_mask


def full_states(encoder, input_ids, attention_mask):
    """Hidden states after each layer, every token through every layer."""
    hidden = encoder.embed(input_ids)
    attention = encoder.attention(hidden, attention_mask)
    states = []
    for index in range(encoder.num_layers):
        hidden = encoder.layer(index, hidden, attention)
        states.append(hidden)
    return states


@torch.no_grad()
def test_a_layer_computed_for_some_tokens_equals_the_full_layer_there(model):
    encoder, _, input_ids, attention_mask, _, _ = model
    hidden = encoder.embed(input_ids)
    full = encoder.layer(0, hidden, encoder.attention(hidden, attention_mask))
    rows, cols = attention_mask.bool().nonzero(as_tuple=True)
    some = slice(0, None, 3)  # every third real token: queries; all real tokens stay keys
    part = layer_for_tokens(encoder.model.encoder.layer[0], hidden, rows[some], cols[some], attention_mask.bool())
    assert torch.allclose(part, full[rows[some], cols[some]], atol=1e-5)


@torch.no_grad()
def test_without_exits_every_word_takes_the_last_off_ramp(model):
    encoder, heads, input_ids, attention_mask, word_index, word_mask = model
    result = run_with_exits(encoder, heads, input_ids, attention_mask, TokenExitConfig(), word_index, word_mask)
    last = full_states(encoder, input_ids, attention_mask)[-1]
    expected = heads[-1](last.gather(1, word_index.unsqueeze(-1).expand(-1, -1, last.shape[-1])))
    assert torch.allclose(result.logits[word_mask], expected[word_mask], atol=1e-5)
    assert (result.exit_layer[word_mask] == encoder.num_layers).all() and (result.exit_layer[~word_mask] == 0).all()
    assert result.token_layers == encoder.num_layers * int(attention_mask.sum())


@torch.no_grad()
def test_a_sentence_that_exits_equals_running_that_many_layers(model):
    encoder, heads, input_ids, attention_mask, word_index, word_mask = model
    states = full_states(encoder, input_ids, attention_mask)
    first = uncertainty(heads[0](states[0].gather(1, word_index.unsqueeze(-1).expand(-1, -1, states[0].shape[-1]))))
    pooled = first.masked_fill(~word_mask, 0).amax(1)
    threshold = float(pooled.sort().values[1])  # between sentences: some leave after layer 1, some go on
    config = TokenExitConfig(mode="sentence", threshold=threshold)
    result = run_with_exits(encoder, heads, input_ids, attention_mask, config, word_index, word_mask)
    leaves = pooled <= threshold
    assert 0 < int(leaves.sum()) < len(SENTENCES)
    for row in range(len(SENTENCES)):
        layer = 1 if leaves[row] else encoder.num_layers
        state = states[layer - 1][row]
        expected = heads[layer - 1](state[word_index[row]])
        assert torch.allclose(result.logits[row][word_mask[row]], expected[word_mask[row]], atol=1e-5)
        assert (result.exit_layer[row][word_mask[row]] == layer).all()
    real = attention_mask.sum(1)
    assert result.token_layers == int(real.sum() + real[~leaves].sum() * (encoder.num_layers - 1))


@torch.no_grad()
def test_a_token_that_exits_keeps_its_state_and_still_serves_as_key(model):
    encoder, heads, input_ids, attention_mask, word_index, word_mask = model
    assert encoder.num_layers == 2
    states = full_states(encoder, input_ids, attention_mask)
    gather = word_index.unsqueeze(-1).expand(-1, -1, states[0].shape[-1])
    certain = uncertainty(heads[0](states[0].gather(1, gather)))
    threshold = float(certain[word_mask].median())
    config = TokenExitConfig(mode="token", threshold=threshold, window=0)
    result = run_with_exits(encoder, heads, input_ids, attention_mask, config, word_index, word_mask)
    leaves = (certain <= threshold) & word_mask
    assert 0 < int(leaves.sum()) < int(word_mask.sum())
    assert (result.exit_layer[leaves] == 1).all() and (result.exit_layer[word_mask & ~leaves] == 2).all()
    # A word that left keeps the logits of layer 1.
    assert torch.allclose(result.logits[leaves], heads[0](states[0].gather(1, gather))[leaves], atol=1e-5)
    # A word that went on was computed by layer 2 from every token's layer-1 state: with two layers, exactly
    # the full model's layer 2 at its position (the words that left are keys with the state they left with).
    full = heads[1](states[1].gather(1, gather))
    assert torch.allclose(result.logits[word_mask & ~leaves], full[word_mask & ~leaves], atol=1e-5)
    assert result.token_layers < encoder.num_layers * int(attention_mask.sum())  # fewer token-layers computed


def test_window_and_owners_and_bad_settings():
    values = torch.tensor([[0.1, 0.9, 0.2, 0.3, 0.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    assert window_max(values, mask, 1)[0, :4].tolist() == pytest.approx([0.9, 0.9, 0.9, 0.3])
    assert window_max(values, mask, 0).tolist() == values.tolist()
    owners = word_owners(torch.tensor([[1, 2, 4]]), torch.tensor([[True, True, True]]),
                         torch.tensor([[True] * 6 + [False]]))
    assert owners.tolist() == [[-1, 0, 1, 1, 2, -1, -1]]  # [CLS], w0, w1 (two subwords), w2, [SEP], pad
    with pytest.raises(ConfigError, match="mode must be one of none, sentence, token; got 'word'"):
        TokenExitConfig(mode="word")
    with pytest.raises(ConfigError, match="threshold must be in \\[0, 1\\]; got 2"):
        TokenExitConfig(threshold=2)
