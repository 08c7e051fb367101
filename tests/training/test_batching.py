from padellm.formats.training_sequence import IGNORE, TrainingSequence
from padellm.training.batching import collate, epoch_batches


def test_epoch_batches_are_seeded_bucketed_and_complete():
    lengths = [5, 50, 7, 48, 6, 49, 8, 47] * 4
    first = epoch_batches(lengths, batch_size=4, bucket_batches=8, seed=0, epoch=0)
    assert first == epoch_batches(lengths, 4, 8, 0, 0)
    assert first != epoch_batches(lengths, 4, 8, 0, 1)
    assert sorted(i for b in first for i in b) == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 3 for b in first)


def test_collate_pads_and_masks():
    batch = collate([TrainingSequence((1, 2, 3), (IGNORE, 2, 3), "count"), TrainingSequence((4,), (IGNORE,), "count")], 0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3], [IGNORE, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]] and int(batch["tokens"]) == 4
