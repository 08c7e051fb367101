"""FastNER training through `padellm finetune` (mode fastner) on a tiny random BERT and a tiny corpus."""

import json

import pytest

from padellm.baselines.fastner import FastNER
from padellm.baselines.fastner_inference import predict_examples
from padellm.cli import load_finetune_config, main
from padellm.data.datasets import load_dataset
from padellm.errors import ConfigError
from padellm.training import fastner as fastner_training
from padellm.training.fastner import train_fastner
from padellm.training.fastner_config import FastNERTrainingConfig

TRAIN = ("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\nBRUSSELS B-LOC\n1996-08-22 O\n\n"
         "Japan B-LOC\nbegan O\nthe O\ndefence O\n\nThe O\nEuropean B-ORG\nCommission I-ORG\nsaid O\n")


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text(TRAIN)
    (folder / "dev.txt").write_text("Peter B-PER\nsaid O\n\nGerman B-MISC\nadvice O\n")
    return folder


def overrides(corpus, encoder, out, **extra):
    return {"mode": "fastner", "output_dir": str(out), "data.dataset": str(corpus), "model.encoder": str(encoder),
            "model.max_width": "3", "model.biaffine_size": "16", "model.dropout": "0.1", "train.max_steps": "12",
            "train.batch_size": "2", "train.lr": "1e-3", "train.head_lr": "5e-3", "train.log_every": "4", **extra}


def test_finetune_command_trains_fastner(corpus, tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["finetune", "--no-progress"] + [f"--{k}={v}" for k, v in overrides(corpus, tiny_bert_dir, out).items()]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == metrics["steps"] == 12 and len(summary["dev_f1_per_exit"]) == 2
    losses = metrics["losses"]
    assert sum(losses[-3:]) < 0.6 * sum(losses[:3])
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [4, 8, 12]
    model = FastNER.load(out / "model")
    assert model.config.labels == ("LOC", "MISC", "ORG", "PER") and model.config.max_width == 3
    # The exit gates were fitted on the dev split and saved with the model.
    assert model.gates is not None and model.gates.report == metrics["exit_gates"]
    assert metrics["exit_gates"]["data"] == f"{corpus} dev" and metrics["exit_gates"]["exits"][0]["sentences"] == 2
    from transformers import AutoTokenizer

    examples = load_dataset(str(corpus), ["train"]).split("train")
    entities, exits = predict_examples(model, AutoTokenizer.from_pretrained(out / "model" / "encoder"), examples)
    assert exits == [2] * len(examples) and len(entities) == len(examples)
    assert main(argv) == 2  # the output folder holds a model already
    assert "already holds a trained model" in capsys.readouterr().err


def test_resume_reproduces_an_uninterrupted_run(corpus, tiny_bert_dir, tmp_path, monkeypatch):
    extra = {"data.dev_split": "", "train.checkpoint_every": "5"}
    reference = train_fastner(load_finetune_config(None, overrides(corpus, tiny_bert_dir, tmp_path / "a", **extra)),
                              progress=False)["losses"]
    real_save = fastner_training.save_checkpoint

    def killed(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(fastner_training, "save_checkpoint", killed)
    config = load_finetune_config(None, overrides(corpus, tiny_bert_dir, tmp_path / "b", **extra))
    with pytest.raises(KeyboardInterrupt):
        train_fastner(config, progress=False)
    monkeypatch.setattr(fastner_training, "save_checkpoint", real_save)
    resumed = train_fastner(config, resume=True, progress=False)["losses"]
    assert resumed == pytest.approx(reference, rel=1e-5)


def test_config_problems_are_listed_together(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_finetune_config(None, {"mode": "fastner", "output_dir": str(tmp_path), "model.kernel_size": "2",
                           "model.bypass_size": "-1", "train.exit_weights": "cubic", "train.lr": "0",
                           "data.max_train_examples": "-1"})
    problems = "\n".join(caught.value.problems)
    for expected in ("kernel_size must be odd", "bypass_size must be >= 0", "exit_weights must be one of linear, uniform",
                     "train.lr must be > 0", "max_train_examples must be >= 0"):
        assert expected in problems
    with pytest.raises(ConfigError, match="unknown key 'lora'"):
        load_finetune_config(None, {"mode": "fastner", "output_dir": "x", "lora.rank": "4"})
    assert isinstance(load_finetune_config(None, {"mode": "fastner", "output_dir": "x"}), FastNERTrainingConfig)


def load_script(name):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[2] / "eval" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_script(corpus, tiny_bert_dir, tmp_path):
    out = tmp_path / "run"
    train_fastner(load_finetune_config(None, overrides(corpus, tiny_bert_dir, out, **{"data.dev_split": ""})), progress=False)
    module = load_script("benchmark_fastner")
    result_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["--model", str(out / "model"), "--dataset", str(corpus), "--split", "train", "--batch-sizes", "1,2",
            "--pooling", "max", "--no-progress", "--costs", "--out", str(result_path), "--plot", str(plot_path)]
    assert module.main(argv) == 0
    result = json.loads(result_path.read_text())
    (model,) = result["results"].values()
    assert len(model["f1_per_exit"]) == 2 and model["bypass"] is True
    assert {k: model[k] for k in ("kernel_size", "bypass_size", "biaffine_size")} == {
        "kernel_size": 3, "bypass_size": 0, "biaffine_size": 16}
    for size in ("1", "2"):
        runs = model["batch_sizes"][size]
        assert len(runs) == 1 + 4 + 4 + 3 + 2  # full, entropy, confidence, patience, stable
        assert runs["full model"]["mean_exit"] == 2 and runs["full model"]["f1"] == model["f1_per_exit"][-1]
        assert all(1 <= r["mean_exit"] <= 2 for r in runs.values())
        assert runs["stable 1"]["mean_exit"] == 2  # two exits must agree first: on 2 layers, the last
        costs = model["exit_costs_ms"][size]
        assert set(costs) == {"layer", "bypass", "scorer", "threshold_criterion", "stable_criterion", "decode"}
        assert all(value > 0 for value in costs.values())
        for setting, run in runs.items():  # every sentence leaving at one exit: exactly that exit's predictions
            if run["mean_exit"] in (1, 2):
                assert run["f1"] == model["f1_per_exit"][int(run["mean_exit"]) - 1], setting
    assert plot_path.read_bytes().startswith(b"\x89PNG")  # what it draws: tests/evaluation/test_plots.py
    assert module.main([*argv, "--batch-sizes", "0"]) == 2
    assert module.main([*argv, "--repeats", "0"]) == 2


def test_gates_fitted_afterwards_are_benchmarked(corpus, tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "run"
    train_fastner(load_finetune_config(None, overrides(corpus, tiny_bert_dir, out, **{"data.dev_split": ""})), progress=False)
    assert FastNER.load(out / "model").gates is None  # no dev split: nothing to fit them on
    fit = load_script("fit_exit_gates")
    assert fit.main(["--model", str(out / "model"), "--dataset", str(corpus), "--split", "dev", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)  # stdout holds the report and nothing else
    assert report["data"] == f"{corpus} dev" and [e["sentences"] for e in report["exits"]] == [2]
    assert [t["max_drop"] for t in report["budgets"]["tuned"]] == [0.25, 0.5, 0.75, 1.0]  # the default budgets
    assert FastNER.load(out / "model").gates.report == report
    assert fit.main(["--model", str(out / "model"), "--dataset", str(corpus), "--split", "dev", "--budgets", "2,x",
                     "--no-progress"]) == 2
    assert "--budgets '2,x': F1 points, comma-separated" in capsys.readouterr().err
    assert fit.main(["--model", str(out / "model"), "--dataset", str(corpus), "--split", "dev", "--budgets", "0.5,2",
                     "--no-progress"]) == 0
    assert set(FastNER.load(out / "model").gates.budgets) == {0.5, 2.0}
    capsys.readouterr()
    assert fit.main(["--model", str(tmp_path), "--dataset", str(corpus), "--no-progress"]) == 2
    assert "is not a FastNER model folder" in capsys.readouterr().err
    result_path = tmp_path / "bench.json"
    benchmark = load_script("benchmark_fastner")
    assert benchmark.main([
        "--model", str(out / "model"), "--dataset", str(corpus), "--split", "train", "--batch-sizes", "2",
        "--only-gates", "--no-progress", "--out", str(result_path)]) == 0
    (model,) = json.loads(result_path.read_text())["results"].values()
    runs = model["batch_sizes"]["2"]
    assert model["exit_gates"] is True
    assert sorted(runs) == sorted(["full model"] + [f"gate {t:g}" for t in benchmark.GRID["gate"]]
                                  + ["budget 0.5 (tuned gates)", "budget 2 (tuned gates)"])
    assert all(1 <= r["mean_exit"] <= 2 for r in runs.values())


def test_an_encoder_that_cannot_see_the_text_is_refused(tmp_path, tiny_bert_dir, capsys):
    from transformers import AutoTokenizer

    from padellm.baselines.fastner_data import unknown_rate

    chinese = tmp_path / "zh"
    chinese.mkdir()
    # Characters outside the tiny encoder's vocabulary (the packaged MiniLM misses half of Resume's: 50.4 %).
    (chinese / "train.txt").write_text("王 B-NAME\n鑫 I-NAME\n龘 O\n\n翡 B-ORG\n翠 I-ORG\n琥 I-ORG\n珀 O\n")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert unknown_rate(tokenizer, load_dataset(str(chinese), ["train"]).split("train")) > 0.5
    argv = ["finetune", "--no-progress"] + [f"--{k}={v}" for k, v in
                                            overrides(chinese, tiny_bert_dir, tmp_path / "run", **{"data.dev_split": ""}).items()]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"model.encoder {tiny_bert_dir}: " in err and "of the subwords of" in err and "unknown token" in err
    assert not (tmp_path / "run" / "model").exists()  # refused before training


def test_english_text_is_seen(corpus, tiny_bert_dir):
    from transformers import AutoTokenizer

    from padellm.baselines.fastner_data import unknown_rate

    rate = unknown_rate(AutoTokenizer.from_pretrained(tiny_bert_dir), load_dataset(str(corpus), ["train"]).split("train"))
    assert rate < 0.05
