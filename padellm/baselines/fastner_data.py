"""Examples -> FastNER inputs: subwords, the first subword of every word, and gold span labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from padellm.baselines.fastner import Batch, FastNERConfig
from padellm.baselines.spans import gold_spans
from padellm.types import Example


@dataclass(frozen=True)
class Encoded:
    input_ids: tuple[int, ...]
    word_index: tuple[int, ...]
    """First subword of each word the encoder kept."""
    gold: dict[tuple[int, int], int]
    lost_entities: int
    """Gold entities no word span can express (boundary inside a word, too wide, or truncated)."""


def word_positions(example: Example, tokenizer, max_subwords: int) -> tuple[list[int], list[int]]:
    """The subword ids of an example's words ([CLS] and [SEP] included, truncated to ``max_subwords``) and the
    position of each kept word's first subword. Words after truncation are dropped; a word the tokenizer turned
    into nothing borrows the next word's first subword (or the previous one's) so that every kept word has a
    position. Shared by every word-level model (FastNER's spans, the BIO taggers)."""
    encoding = tokenizer(list(example.tokens), is_split_into_words=True, truncation=True, max_length=max_subwords)
    first: dict[int, int] = {}
    for position, word in enumerate(encoding.word_ids()):
        if word is not None and word not in first:
            first[word] = position
    kept = max(first, default=-1) + 1
    positions = []
    for word in range(kept):
        position = first.get(word)
        if position is None:
            following = [first[w] for w in range(word + 1, kept) if w in first]
            position = following[0] if following else positions[-1] if positions else 0
        positions.append(position)
    return list(encoding["input_ids"]), positions


def encode_example(example: Example, tokenizer, config: FastNERConfig) -> Encoded:
    input_ids, positions = word_positions(example, tokenizer, config.max_subwords)
    label_index = {label: i + 1 for i, label in enumerate(config.labels)}
    gold = gold_spans(example, label_index, config.max_width, num_words=len(positions))
    return Encoded(tuple(input_ids), tuple(positions), gold.spans, gold.unaligned + gold.too_wide)


MAX_UNKNOWN_RATE = 0.05
"""Above this share of [UNK] subwords an encoder cannot see the text (the packaged English MiniLM on Resume: 50 %; on CoNLL-2003 and GENIA: 0 %)."""


def unknown_rate(tokenizer, examples: list[Example], sample: int = 500) -> float:
    """The share of the subwords of (up to ``sample``) examples' words that ``tokenizer`` maps to its unknown
    token."""
    if tokenizer.unk_token_id is None:
        return 0.0
    ids = [i for example in examples[:sample] if example.tokens
           for i in tokenizer(list(example.tokens), is_split_into_words=True, add_special_tokens=False)["input_ids"]]
    return ids.count(tokenizer.unk_token_id) / max(1, len(ids))


def check_vocabulary(tokenizer, examples: list[Example], encoder: str, data: str) -> None:
    """Refuse text that ``encoder``'s vocabulary does not cover (it would train or predict on [UNK]s)."""
    from padellm.errors import ConfigError

    rate = unknown_rate(tokenizer, examples)
    if rate > MAX_UNKNOWN_RATE:
        raise ConfigError(f"{encoder}: {100 * rate:.1f}% of the subwords of {data} are its unknown token "
                          f"{tokenizer.unk_token!r} (at most {100 * MAX_UNKNOWN_RATE:.0f}% allowed): this encoder "
                          f"cannot see the text (the packaged MiniLM is English-only); give an encoder whose "
                          f"vocabulary covers the language (model.encoder: a Hugging Face folder)")


def collate(encoded: list[Encoded], pad_id: int, with_gold: bool = True) -> Batch:
    subwords = max(len(e.input_ids) for e in encoded)
    words = max(1, max(len(e.word_index) for e in encoded))
    input_ids = torch.full((len(encoded), subwords), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), subwords), dtype=torch.long)
    word_index = torch.zeros((len(encoded), words), dtype=torch.long)
    gold = torch.zeros((len(encoded), words, words), dtype=torch.long) if with_gold else None
    for row, item in enumerate(encoded):
        input_ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        attention_mask[row, : len(item.input_ids)] = 1
        word_index[row, : len(item.word_index)] = torch.tensor(item.word_index, dtype=torch.long)
        if gold is not None:
            for (i, j), label in item.gold.items():
                gold[row, i, j] = label
    num_words = torch.tensor([len(e.word_index) for e in encoded])
    return Batch(input_ids, attention_mask, word_index, num_words, gold)
