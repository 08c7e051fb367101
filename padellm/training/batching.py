"""Length-bucketed, seeded batch order and padding of training sequences."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from padellm.formats.training_sequence import IGNORE, TrainingSequence


def epoch_batches(lengths: Sequence[int], batch_size: int, bucket_batches: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (lists of sequence indices) of one epoch, the same for the same arguments.

    Shuffle, cut into chunks of ``bucket_batches`` batches, sort each chunk by length and batch it, then
    shuffle the batches: similar lengths share a batch (little padding), and the order stays random.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: (lengths[i], i))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def tree_mask(sequence: TrainingSequence, width: int) -> torch.Tensor:
    """``(width, width)`` boolean attention (True: may attend) for one sequence padded to ``width``."""
    n = len(sequence.input_ids)
    mask = torch.zeros((width, width), dtype=torch.bool)
    if sequence.segments is None:
        mask[:n, :n] = torch.ones((n, n), dtype=torch.bool).tril()
    else:
        segments = torch.tensor(sequence.segments)
        n_segments = len(sequence.parents)
        visible = torch.zeros((n_segments, n_segments), dtype=torch.bool)
        for segment in range(n_segments):
            visible[segment, list(sequence.ancestors(segment))] = True
        mask[:n, :n] = visible[segments][:, segments] & torch.ones((n, n), dtype=torch.bool).tril()
    # Padding attends to itself only, so no attention row is empty (an empty row gives NaN in softmax).
    mask[torch.arange(n, width), torch.arange(n, width)] = True
    return mask


def collate(sequences: Sequence[TrainingSequence], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``labels`` (``IGNORE`` on padding) with ``position_ids``, and an
    ``attention_mask``: the usual 2-D padding mask, or a 4-D boolean mask when a sequence is tree-packed. The loss
    positions, flat over the batch: ``loss_rows`` and ``loss_sources`` (the hidden state that predicts each
    target), ``loss_targets`` (the token ids) and ``loss_weights``."""
    width = max(len(s.input_ids) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    padding = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        n = len(seq.input_ids)
        input_ids[row, :n] = torch.tensor(seq.input_ids)
        labels[row, :n] = torch.tensor(seq.labels)
        position_ids[row, :n] = torch.tensor(seq.position_ids())
        padding[row, :n] = 1
    rows, sources, targets, weights = [], [], [], []
    for row, seq in enumerate(sequences):
        for source, target in seq.loss_sources():
            rows.append(row)
            sources.append(source)
            targets.append(seq.labels[target])
            weights.append(1.0 if seq.weights is None else seq.weights[target])
    loss = {"loss_rows": torch.tensor(rows, dtype=torch.long), "loss_sources": torch.tensor(sources, dtype=torch.long),
            "loss_targets": torch.tensor(targets, dtype=torch.long),
            "loss_weights": torch.tensor(weights, dtype=torch.float32)}
    if any(s.segments is not None for s in sequences):
        attention_mask = torch.stack([tree_mask(s, width) for s in sequences])[:, None]
    else:
        attention_mask = padding
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
            "labels": labels, "tokens": padding.sum(), **loss}
