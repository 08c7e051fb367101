"""Dev scoring (what ``padellm finetune`` writes into metrics.json) against answers whose score is known by hand: a
backend that writes a known answer (the gold one, or the gold one with a mention missing)."""

import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.training.dev_scoring import backend_scores
from padellm.types import Example

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from oracle import GoldBackend  # noqa: E402
from test_gold_round_trip import ENGLISH, EXAMPLES  # noqa: E402


@pytest.fixture(scope="module")
def encoder(tiny_llama_dir):
    return PromptEncoder(AutoTokenizer.from_pretrained(tiny_llama_dir), load_template("padellm-en-v1"), ENGLISH)


def test_the_gold_answer_scores_one(encoder):
    examples = EXAMPLES["en"]
    scores = backend_scores(GoldBackend(examples, encoder), encoder, examples, progress=False)
    assert scores["sentences"] == 3
    assert scores["span"]["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 5, "fp": 0, "fn": 0,
                                       "support": 5}
    assert scores["string"]["micro"]["f1"] == 1.0
    assert scores["counts"]["all"] == {"pairs": 6, "exact": 1.0, "under": 0.0, "over": 0.0, "gold_mentions": 5,
                                       "stated_mentions": 5, "errors": {"0": 6}}
    assert scores["decode_stats"]["branches"] == 5  # one per gold mention


def test_a_missed_mention_costs_exactly_its_recall(encoder):
    """The model writes the gold answer less Peter (PER 9-14): 4 of 5 found, none wrong; one of 6 counts wrong."""
    examples = EXAMPLES["en"]
    first = examples[0]
    missing_peter = Example(first.text, first.tokens, first.token_spans,
                            tuple(e for e in first.entities if e.start != 9))
    backend = GoldBackend([missing_peter, *examples[1:]], encoder)
    scores = backend_scores(backend, encoder, examples, progress=False)
    assert scores["span"]["micro"] == {"precision": 1.0, "recall": 0.8, "f1": pytest.approx(8 / 9), "tp": 4,
                                       "fp": 0, "fn": 1, "support": 5}
    assert scores["span"]["per_label"]["PER"]["recall"] == pytest.approx(2 / 3)
    assert scores["span"]["per_label"]["LOC"]["f1"] == 1.0
    assert scores["counts"]["all"]["errors"] == {"-1": 1, "0": 5}  # PER stated 1 where gold has 2
    assert scores["counts"]["per_label"]["PER"]["under"] == pytest.approx(1 / 3)
