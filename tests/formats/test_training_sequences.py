import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from padellm.training.batching import collate
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.prompts.labels import LabelSet
from padellm.formats import format_of
from padellm.formats.counted import parallel_sequences, parallel_tree
from padellm.formats.lines import autoregressive_sequence
from padellm.formats.training_sequence import IGNORE, TrainingSequence
from padellm.training.config import DataConfig
from padellm.training.lora import sequence_loss
from padellm.types import Entity, Example

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})
TEXT = "Peter met Anna in Paris"
EXAMPLE = Example(TEXT, tuple(TEXT.split()), ((0, 5), (6, 9), (10, 14), (15, 17), (18, 23)),
                  (Entity(0, 5, "PER"), Entity(10, 14, "PER"), Entity(18, 23, "LOC")))


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def build_sequences(examples, encoder, **data):
    """Every training sequence of ``examples`` as the trainer builds them: the template's format, under ``data``."""
    config = DataConfig(dataset="conll2003", **data)
    return [s for example in examples for s in format_of(encoder.template).training_sequences(example, encoder, config)]


def _view(encoder, sequence):
    """(whole text, text of the loss-carrying tokens) with the EOS spelled out."""
    def text(ids):
        return encoder.tokenizer.decode(list(ids)).replace("<|im_end|>", "<eos>")
    return text(sequence.input_ids), text([t for t in sequence.labels if t != IGNORE])


def test_parallel_sequences_are_pinned(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    prompt = f"text:\n{TEXT}\nentity type:\n"
    got = [(s.kind, *_view(encoder, s)) for s in parallel_sequences(EXAMPLE, encoder, merge_first_mention=False)]
    assert got == [
        ("count", prompt + "location\n\n<num>1\n", "1\n"),
        ("mention", prompt + "location\n\n<num>1\n<mention 1>Paris<eos>", "Paris<eos>"),
        ("count", prompt + "person\n\n<num>2\n", "2\n"),
        ("mention", prompt + "person\n\n<num>2\n<mention 1>Peter<eos>", "Peter<eos>"),
        ("mention", prompt + "person\n\n<num>2\n<mention 2>Anna<eos>", "Anna<eos>"),
    ]
    merged = [(s.kind, *_view(encoder, s)) for s in parallel_sequences(EXAMPLE, encoder)]
    assert merged[0] == ("count+mention", prompt + "location\n\n<num>1\n<mention 1>Paris<eos>", "1\nParis<eos>")
    assert [m[0] for m in merged] == ["count+mention", "count+mention", "mention"]
    empty = Example("No one", ("No", "one"), ((0, 2), (3, 6)))
    assert [(s.kind, _view(encoder, s)[1]) for s in parallel_sequences(empty, encoder)] == [("count", "0\n")] * 2


def test_autoregressive_sequence_is_pinned(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS)
    whole, target = _view(encoder, autoregressive_sequence(EXAMPLE, encoder))
    assert whole == f"text:\n{TEXT}\nentity types:\nlocation, person\n\nentities:\n" + target
    assert target == "person: Peter\nperson: Anna\nlocation: Paris\n<eos>"
    assert build_sequences([EXAMPLE], encoder)[0].kind == "autoregressive"


def test_tree_packing_holds_every_sequence_once(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    tree = parallel_tree(EXAMPLE, encoder)
    # root, LOC node, its mention, PER node, its two mentions
    assert tree.parents == (-1, 0, 1, 0, 3, 3)
    separate = parallel_sequences(EXAMPLE, encoder, merge_first_mention=False)
    assert tree.loss_tokens == sum(s.loss_tokens for s in separate)
    assert len(tree.input_ids) < sum(len(s.input_ids) for s in separate)
    # Each path through the tree, read with its positions, is one of the separate sequences.
    positions = tree.position_ids()
    for leaf in (2, 4, 5):
        path = tree.ancestors(leaf)
        ids = [t for t, s in zip(tree.input_ids, tree.segments) if s in path]
        assert [p for p, s in zip(positions, tree.segments) if s in path] == list(range(len(ids)))
        assert tuple(ids) in {s.input_ids for s in separate}
    with pytest.raises(ValueError, match="carries a loss"):
        TrainingSequence((1, 2), (1, 2), "tree", (0, 1), (-1, 0))
    # A segment's first token is predicted from its parent's last token, whatever lies between them.
    sibling = TrainingSequence((1, 2, 3, 4), (IGNORE, IGNORE, 3, 4), "tree", (0, 1, 2, 2), (-1, 0, 0))
    assert sibling.loss_sources() == [(0, 2), (2, 3)]


def test_tree_packing_gives_the_same_loss(tokenizer, tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa")
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    other = Example("Anna", ("Anna",), ((0, 4),), (Entity(0, 4, "PER"),))
    with torch.no_grad():
        packed, n_packed = sequence_loss(model, collate(build_sequences([EXAMPLE, other], encoder, pack=True), 0))
        plain, n_plain = sequence_loss(model, collate(build_sequences([EXAMPLE, other], encoder, pack=False), 0))
    assert n_packed == n_plain
    assert packed.item() == pytest.approx(plain.item(), rel=1e-5)


def test_paper_supervision_repeats_counts_and_trains_the_markers(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    separate = parallel_sequences(EXAMPLE, encoder, supervision="paper")
    # LOC: one sequence for its mention; PER: two, each with the count (2) in its loss
    assert [_view(encoder, s)[1] for s in separate] == ["1\n<mention 1>Paris<eos>", "2\n<mention 1>Peter<eos>",
                                                        "2\n<mention 2>Anna<eos>"]
    tree = parallel_tree(EXAMPLE, encoder, supervision="paper")
    assert tree.loss_weight == sum(s.loss_weight for s in separate)
    count = encoder.count_target(2)
    per_count = [w for t, w, label in zip(tree.input_ids, tree.weights, tree.labels)
                 if label != IGNORE and w == 2.0]
    assert len(per_count) == len(count)  # PER's count tokens weigh 2: it stands for two sequences
    compact = parallel_tree(EXAMPLE, encoder)
    assert compact.weights is None and compact.loss_tokens < tree.loss_tokens  # no marker in the loss
    weighted = parallel_tree(EXAMPLE, encoder, supervision="paper", count_weight=3.0)
    assert weighted.loss_weight == tree.loss_weight + 2 * 3 * len(count)  # LOC's count x3, PER's 2 x3
    zero = encoder.count_target(0)
    three = LabelSet.for_labels(["LOC", "ORG", "PER"], {"LOC": "location", "ORG": "organization", "PER": "person"})
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), three)
    for supervision in ("paper", "compact"):  # ORG is not mentioned: its count 0 weighs 0.25
        plain = parallel_tree(EXAMPLE, encoder, supervision=supervision)
        evened = parallel_tree(EXAMPLE, encoder, supervision=supervision, zero_count_weight=0.25)
        assert evened.loss_weight == pytest.approx(plain.loss_weight - 0.75 * len(zero))
        separate = parallel_sequences(EXAMPLE, encoder, supervision=supervision, zero_count_weight=0.25)
        assert sum(s.loss_weight for s in separate) == pytest.approx(evened.loss_weight)
    with pytest.raises(ValueError, match="supervision must be one of paper, compact; got 'both'"):
        parallel_tree(EXAMPLE, encoder, supervision="both")


def test_paper_supervision_packed_gives_the_loss_of_the_papers_separate_sequences(tokenizer, tiny_llama_dir):
    """The paper trains every (text, label, k) as its own sequence: the packed, weighted tree must give the same
    mean loss over the same targets, for a label with several mentions and one with none."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa")
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    nothing = Example("Anna", ("Anna",), ((0, 4),), (Entity(0, 4, "PER"),))
    examples = [EXAMPLE, nothing]
    for count_weight, zero_count_weight in ((1.0, 1.0), (2.5, 1.0), (1.0, 0.3)):
        weights = {"count_weight": count_weight, "zero_count_weight": zero_count_weight}
        packed = build_sequences(examples, encoder, pack=True, supervision="paper", **weights)
        separate = build_sequences(examples, encoder, pack=False, supervision="paper", **weights)
        with torch.no_grad():
            packed_sum, _ = sequence_loss(model, collate(packed, 0))
            separate_sum, _ = sequence_loss(model, collate(separate, 0))
        packed_mean = packed_sum.item() / sum(s.loss_weight for s in packed)
        separate_mean = separate_sum.item() / sum(s.loss_weight for s in separate)
        assert packed_mean == pytest.approx(separate_mean, rel=1e-5)
    # and the separate sequences are the plain causal-LM loss of each sequence, as a framework computes it
    with torch.no_grad():
        plain = []
        for sequence in build_sequences(examples, encoder, pack=False, supervision="paper"):
            ids = torch.tensor([sequence.input_ids])
            labels = torch.tensor([sequence.labels])
            logits = model(input_ids=ids).logits[0, :-1]
            plain.append(torch.nn.functional.cross_entropy(logits, labels[0, 1:], reduction="sum").item())
        packed_sum, _ = sequence_loss(model, collate(build_sequences(examples, encoder, supervision="paper"), 0))
    assert packed_sum.item() == pytest.approx(sum(plain), rel=1e-5)


def test_count_free_branches_answer_each_mention_then_none(tokenizer, tiny_llama_dir):
    three = LabelSet.for_labels(["LOC", "ORG", "PER"], {"LOC": "location", "ORG": "organization", "PER": "person"})
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-branches-v1"), three)
    separate = build_sequences([EXAMPLE], encoder, pack=False)
    views = [(tokenizer.decode([t for t, l in zip(s.input_ids, s.labels) if l == IGNORE])[-22:], _view(encoder, s)[1])
             for s in separate]
    # window 2: a label with n mentions trains branches 1..n (mentions) and n+1..max(n+1, 2) (none)
    assert [v[1] for v in views] == ["Paris<eos>", "none<eos>", "none<eos>", "none<eos>", "Peter<eos>",
                                     "Anna<eos>", "none<eos>"]
    assert views[1][0].endswith("location\n<mention 2>") and views[6][0].endswith("person\n<mention 3>")
    tree = build_sequences([EXAMPLE], encoder)[0]
    assert tree.kind == "tree" and tree.loss_tokens == sum(s.loss_tokens for s in separate)
    assert len(encoder.text_prefix(TEXT)) % 32 == 0  # the text part fills whole KV-cache blocks
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa")
    with torch.no_grad():
        packed_sum, _ = sequence_loss(model, collate([tree], 0))
        separate_sum, _ = sequence_loss(model, collate(separate, 0))
    assert packed_sum.item() == pytest.approx(separate_sum.item(), rel=1e-5)
    # none_weight: the none answers (4 of the 7 branches here) weigh less, packed or not, with the same loss
    none_tokens = len(encoder.none_target())
    light_tree = build_sequences([EXAMPLE], encoder, none_weight=0.25)[0]
    light = build_sequences([EXAMPLE], encoder, pack=False, none_weight=0.25)
    assert light_tree.loss_weight == pytest.approx(tree.loss_weight - 4 * 0.75 * none_tokens)
    assert sum(s.loss_weight for s in light) == pytest.approx(light_tree.loss_weight)
    with torch.no_grad():
        packed_sum, _ = sequence_loss(model, collate([light_tree], 0))
        separate_sum, _ = sequence_loss(model, collate(light, 0))
    assert packed_sum.item() == pytest.approx(separate_sum.item(), rel=1e-5)


def test_count_free_templates_are_checked():
    from padellm.errors import ConfigError
    from padellm.prompts.templates import ParallelTemplate

    base = dict(name="t", version=1, language="en", count_prompt="{text} {label}", mention_prompt="<{k}>",
                mention_target="{mention}")
    with pytest.raises(ConfigError, match="count-free template .* count_target must be empty"):
        ParallelTemplate(**base, count_target="{count}\n", none_target="<none>")
    with pytest.raises(ConfigError, match="window must be >= 1; got 0"):
        ParallelTemplate(**base, count_target="", none_target="<none>", window=0)
    with pytest.raises(ConfigError, match="none_target must be visible text"):
        ParallelTemplate(**base, count_target="", none_target="  ")
    assert ParallelTemplate(**base, count_target="", none_target="<none>").format == "count-free"
    assert ParallelTemplate(**base, count_target="{count}").format == "counted"
    with pytest.raises(ConfigError, match="format 'labelwise' does not match the template's fields, which make it 'counted'"):
        ParallelTemplate(**base, count_target="{count}", format="labelwise")
    with pytest.raises(ConfigError, match="label-wise template .* window must be 1; got 2"):
        ParallelTemplate(**{**base, "mention_prompt": ""}, count_target="", none_target="none", separator="\n", window=2)
    with pytest.raises(ConfigError, match="label-wise template .* none_target must be set"):
        ParallelTemplate(**{**base, "mention_prompt": ""}, count_target="{count}", separator="\n", window=1)
    with pytest.raises(ConfigError, match=r"'mention_prompt' must use exactly the placeholders \[\]"):
        ParallelTemplate(**base, count_target="", none_target="none", separator="\n", window=1)
    labelwise = ParallelTemplate(**{**base, "mention_prompt": ""}, count_target="", none_target="none", separator="\n",
                                 window=1)
    assert labelwise.format == "labelwise" and not format_of(labelwise).count_stage


def test_labelwise_branches_write_all_their_labels_mentions_in_one_sequence(tokenizer, tiny_llama_dir):
    three = LabelSet.for_labels(["LOC", "ORG", "PER"], {"LOC": "location", "ORG": "organization", "PER": "person"})
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-labelwise-v1"), three)
    separate = build_sequences([EXAMPLE], encoder, pack=False)
    views = [_view(encoder, s) for s in separate]
    # one branch per label, prompted with the label part alone: its mentions in text order, one per line, or none
    assert [v[1] for v in views] == ["Paris<eos>", "none<eos>", "Peter\nAnna<eos>"]
    assert views[2][0].endswith("person\nPeter\nAnna<eos>")  # after the text part and its filler
    assert all(s.input_ids[: len(encoder.text_prefix(TEXT))] == separate[0].input_ids[: len(encoder.text_prefix(TEXT))]
               for s in separate)
    tree = build_sequences([EXAMPLE], encoder)[0]
    assert tree.kind == "tree" and tree.loss_tokens == sum(s.loss_tokens for s in separate)
    assert len(tree.input_ids) < sum(len(s.input_ids) for s in separate)  # the text part once
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa")
    light_tree = build_sequences([EXAMPLE], encoder, none_weight=0.25)[0]
    light = build_sequences([EXAMPLE], encoder, pack=False, none_weight=0.25)
    assert light_tree.loss_weight == pytest.approx(tree.loss_weight - 0.75 * len(encoder.none_target()))
    with torch.no_grad():
        for packed, apart in ((tree, separate), (light_tree, light)):
            packed_sum, _ = sequence_loss(model, collate([packed], 0))
            separate_sum, _ = sequence_loss(model, collate(apart, 0))
            assert packed_sum.item() == pytest.approx(separate_sum.item(), rel=1e-5)
    # the decode limit a label-wise branch stretches is the whole label's output, not one mention
    labelwise = format_of(encoder.template)
    assert labelwise.generation_limit == "max_autoregressive_tokens"
    assert labelwise.longest_target([EXAMPLE], encoder) == len(encoder.label_target(["Peter", "Anna"]))
