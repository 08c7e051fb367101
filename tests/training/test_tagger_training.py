"""The BIO taggers through `padellm finetune` (mode tagger) on a tiny random BERT: the early-exit tagger, a CRF
teacher, and a one-layer CRF student distilled from it."""

import json

import pytest

from padellm.baselines.tagger import Tagger
from padellm.cli import load_finetune_config, main
from padellm.errors import ConfigError

TRAIN = ("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\nBRUSSELS B-LOC\n1996-08-22 O\n\n"
         "Japan B-LOC\nbegan O\nthe O\ndefence O\n\nThe O\nEuropean B-ORG\nCommission I-ORG\nsaid O\n")


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text(TRAIN)
    (folder / "dev.txt").write_text("Peter B-PER\nsaid O\n\nGerman B-MISC\nadvice O\n")
    return folder


def run(corpus, encoder, out, capsys, **extra):
    flags = {"mode": "tagger", "output_dir": str(out), "data.dataset": str(corpus), "model.encoder": str(encoder),
             "model.dropout": "0.0", "train.max_steps": "30", "train.batch_size": "5", "train.lr": "1e-3",
             "train.head_lr": "1e-2", "train.log_every": "10", "train.checkpoint_every": "15", **extra}
    assert main(["finetune", "--no-progress", *[f"--{k}={v}" for k, v in flags.items()]]) == 0
    summary = json.loads(capsys.readouterr().out)
    return summary, json.loads((out / "metrics.json").read_text())


def test_early_exit_tagger_crf_teacher_and_distilled_student(corpus, tiny_bert_dir, tmp_path, capsys):
    summary, metrics = run(corpus, tiny_bert_dir, tmp_path / "earlyexit", capsys)
    assert summary["kind"] == "earlyexit" and len(summary["dev_f1_per_layer"]) == 2
    assert metrics["losses"][-1] < 0.5 * metrics["losses"][0]
    assert Tagger.load(tmp_path / "earlyexit" / "model").crf is None

    summary, teacher = run(corpus, tiny_bert_dir, tmp_path / "teacher", capsys, **{"model.crf": "true"})
    assert summary["kind"] == "crf" and len(summary["dev_f1_per_layer"]) == 1
    assert teacher["losses"][-1] < 0.5 * teacher["losses"][0]

    summary, student = run(corpus, tiny_bert_dir, tmp_path / "student", capsys,
                           **{"model.crf": "true", "model.layers": "1", "distill.teacher": str(tmp_path / "teacher"),
                              "distill.k": "3", "distill.gold_weight": "0.5"})
    assert summary["kind"] == "distilled" and student["layers"] == 1
    assert student["losses"][-1] < 0.6 * student["losses"][0]  # the distillation loss falls


def test_self_sampling_fine_tunes_a_trained_early_exit_tagger(corpus, tiny_bert_dir, tmp_path, capsys):
    run(corpus, tiny_bert_dir, tmp_path / "earlyexit", capsys, **{"train.max_steps": "10"})
    sampling = {"model.init": str(tmp_path / "earlyexit"), "self_sampling.max_threshold": "0.6",
                "self_sampling.window": "0", "train.max_steps": "6", "train.log_every": "2"}
    summary, metrics = run(corpus, tiny_bert_dir, tmp_path / "ss", capsys, **sampling)
    assert summary["kind"] == "earlyexit" and metrics["self_sampling"] == {"max_threshold": 0.6, "window": 0}
    assert metrics["init"] == str(tmp_path / "earlyexit")
    log = [json.loads(line) for line in (tmp_path / "ss" / "train_log.jsonl").read_text().splitlines()]
    assert all(1.0 <= row["mean_exit"] <= 2.0 and 0 < row["computed"] <= 1.0 for row in log)
    # It starts from the trained tagger (its loss is already low), and the sampled thresholds are seeded.
    assert metrics["losses"][0] < 0.5 * json.loads((tmp_path / "earlyexit" / "metrics.json").read_text())["losses"][0]
    _, again = run(corpus, tiny_bert_dir, tmp_path / "ss-again", capsys, **sampling)
    assert again["losses"] == metrics["losses"]


def test_bad_tagger_configs_are_named(tmp_path, corpus, tiny_bert_dir, capsys):
    with pytest.raises(ConfigError) as info:
        load_finetune_config(None, {"mode": "tagger", "output_dir": "x", "distill.teacher": "t", "distill.k": "0",
                                    "model.layers": "-1"})
    problems = "\n".join(info.value.problems)
    assert "distill.k must be >= 1; got 0" in problems and "model.layers must be >= 0" in problems
    assert "distillation trains a CRF student; set model.crf: true" in problems
    with pytest.raises(ConfigError, match="self-sampling fine-tunes the early-exit"):
        load_finetune_config(None, {"mode": "tagger", "output_dir": "x", "model.crf": "true",
                                    "self_sampling.max_threshold": "0.5"})
    run(corpus, tiny_bert_dir, tmp_path / "plain", capsys, **{"train.max_steps": "2"})
    argv = ["finetune", "--no-progress", "--mode=tagger", f"--output_dir={tmp_path / 'student'}",
            f"--data.dataset={corpus}", f"--model.encoder={tiny_bert_dir}", "--model.crf=true",
            f"--distill.teacher={tmp_path / 'plain'}"]
    assert main(argv) == 2
    assert "not a CRF tagger (train it with model.crf: true)" in capsys.readouterr().err
    argv = ["finetune", "--no-progress", "--mode=tagger", f"--output_dir={tmp_path / 'init'}",
            f"--data.dataset={corpus}", f"--model.encoder={tiny_bert_dir}", "--model.crf=true",
            f"--model.init={tmp_path / 'plain'}"]
    assert main(argv) == 2
    assert "an off-ramp tagger, but model.crf is true" in capsys.readouterr().err


def test_cached_teacher_targets_equal_fresh_ones_in_any_batch(corpus, tiny_bert_dir):
    import torch
    from transformers import AutoTokenizer

    from padellm.baselines.distillation import teacher_targets
    from padellm.baselines.tagger import TaggerConfig, encode
    from padellm.data.corpus import read_conll
    from padellm.training.tagger import TeacherCache

    examples, _ = read_conll(corpus / "train.txt")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    teacher = Tagger.from_encoder(tiny_bert_dir, TaggerConfig(labels=("LOC", "MISC", "ORG", "PER"), crf=True)).eval()
    cache = TeacherCache(teacher, k=3)
    cache.targets([0, 1, 2], encode(examples[:3], tokenizer, teacher.config))  # one padding
    order = [4, 2, 0]  # another batch, another padding: sentence 4 is computed now, 2 and 0 come from the cache
    batch = encode([examples[i] for i in order], tokenizer, teacher.config)
    cached = cache.targets(order, batch)
    fresh = teacher_targets(teacher.crf, teacher(batch)[-1], batch.word_mask, 3)
    assert torch.equal(cached.paths, fresh.paths) and len(cache.per_sentence) == 4
    assert torch.allclose(cached.weights, fresh.weights, atol=1e-5)
    mask = batch.word_mask.unsqueeze(-1)
    assert torch.allclose(cached.marginals * mask, fresh.marginals * mask, atol=1e-5)
