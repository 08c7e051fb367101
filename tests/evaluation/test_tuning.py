"""padellm tune: the count rule chosen on dev data, saved with the adapter and used from then on."""

import json
import math
import shutil

import pytest

from padellm.cli import main
from padellm.engine.decoding import DecodeConfig
from padellm.errors import ConfigError
from padellm.evaluation.tuning import Trial, best_trial, candidates, counts_under


def test_candidates_and_their_counts():
    assert candidates((0.6, 0.4)) == [{"count_rule": "argmax"}, {"count_rule": "quantile", "count_quantile": 0.4},
                                      {"count_rule": "quantile", "count_quantile": 0.6}]
    # digits 0..9: P(0)=0.55, P(1)=0.35, P(2)=0.1
    scores = [tuple(math.log(p) if p else float("-inf") for p in (0.55, 0.35, 0.1, 0, 0, 0, 0, 0, 0, 0))]
    assert counts_under(scores, DecodeConfig()) == [0]
    assert counts_under(scores, DecodeConfig(count_rule="quantile", count_quantile=0.6)) == [1]
    assert counts_under(scores, DecodeConfig(count_rule="quantile", count_quantile=0.95)) == [2]
    assert counts_under(scores, DecodeConfig(count_rule="quantile", count_quantile=0.95, max_count=1)) == [1]


def test_best_trial_prefers_the_earliest_of_equal_scores():
    trials = [Trial({"count_rule": "argmax"}, 0.5, 0.5, 0.5, 3), Trial({"count_quantile": 0.4}, 0.7, 0.7, 0.7, 4),
              Trial({"count_quantile": 0.6}, 0.7, 0.6, 0.8, 5)]
    assert best_trial(trials).settings == {"count_quantile": 0.4}
    with pytest.raises(ConfigError, match="no candidate"):
        best_trial([])


def test_tune_writes_the_best_rule_and_load_uses_it(tiny_adapters, tmp_path, capsys):
    from padellm.ner import load

    adapter = tmp_path / "parallel"
    shutil.copytree(tiny_adapters["parallel"], adapter)
    argv = ["tune", "--adapter", str(adapter), "--dataset", str(tiny_adapters["corpus"]), "--split", "test",
            "--sample", "0", "--quantiles", "0.5,0.9", "--backend", "transformers", "--no-progress"]
    assert main([*argv, "--dry-run"]) == 0
    record = json.loads(capsys.readouterr().out)  # stdout is the one JSON object
    assert not (adapter / "decode.yaml").exists()
    assert [t.get("count_quantile") for t in record["trials"]] == [None, 0.5, 0.9]
    assert record["sentences"] == 3 and record["chosen"] in [
        {k: v for k, v in t.items() if k.startswith("count_")} for t in record["trials"]]
    best = max(t["f1"] for t in record["trials"])
    first_best = next(t for t in record["trials"] if t["f1"] == best)
    assert record["chosen"] == {k: v for k, v in first_best.items() if k.startswith("count_")}
    # a higher quantile never states fewer mentions
    stated = [t["mentions_stated"] for t in record["trials"][1:]]
    assert stated == sorted(stated)

    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == record  # deterministic
    text = (adapter / "decode.yaml").read_text()
    assert text.startswith("# Chosen by `padellm tune --adapter") and "F1" in text
    assert load(adapter, "transformers").decode_config == DecodeConfig(**record["chosen"])


def test_tune_refuses_bad_input_before_decoding(tiny_adapters, capsys):
    base = ["tune", "--dataset", str(tiny_adapters["corpus"]), "--backend", "transformers", "--no-progress"]
    assert main([*base, "--adapter", str(tiny_adapters["autoregressive"]), "--split", "test"]) == 2
    assert "tuning chooses how parallel decoding trades precision for recall" in capsys.readouterr().err
    assert main([*base, "--adapter", str(tiny_adapters["parallel"]), "--split", "validation"]) == 2
    assert "has no 'validation' split (it has: " in capsys.readouterr().err
    assert main([*base, "--adapter", str(tiny_adapters["parallel"]), "--split", "test", "--quantiles", "0.5,x"]) == 2
    assert "--quantiles: comma-separated numbers" in capsys.readouterr().err
    assert main([*base, "--adapter", str(tiny_adapters["parallel"]), "--split", "test", "--quantiles", "1.5"]) == 2
    assert "count_quantile must be in (0, 1); got 1.5" in capsys.readouterr().err


def count_free_adapter(folder, prompt, corpus, base_model):
    """A count-free tiny adapter with ``prompt``, trained for 4 steps at a high learning rate."""
    from padellm.cli import load_finetune_config
    from padellm.training.lora import train

    train(load_finetune_config(None, {"output_dir": str(folder), "mode": "parallel", "prompt": prompt,
                                      "base_model": str(base_model), "data.dataset": str(corpus),
                                      "data.dev_split": "", "train.max_steps": "4", "train.lr": "0.05",
                                      "train.precision": "fp32", "lora.rank": "4"}), progress=False)
    return folder


def test_tune_chooses_a_count_free_adapters_none_bias(tiny_adapters, tiny_llama_dir, tmp_path, capsys):
    from padellm.ner import load

    adapter = count_free_adapter(tmp_path / "branches", "padellm-en-branches-v1", tiny_adapters["corpus"],
                                 tiny_llama_dir)
    argv = ["tune", "--adapter", str(adapter), "--dataset", str(tiny_adapters["corpus"]), "--split", "test",
            "--sample", "0", "--none-biases=-100,0,-2", "--backend", "transformers", "--no-progress"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert [t["none_bias"] for t in record["trials"]] == [0.0, -2.0, -100.0]  # nearest 0 first
    # A bias of -100 forbids the none answer: every branch writes a mention, up to max_count per label.
    stated = [t["mentions_stated"] for t in record["trials"]]
    assert stated == sorted(stated) and stated[-1] == 3 * 4 * DecodeConfig().max_count
    best = max(record["trials"], key=lambda t: t["f1"])
    assert record["chosen"] == {"none_bias": best["none_bias"]}
    assert load(adapter, "transformers").decode_config.none_bias == best["none_bias"]
    assert "per bias" in (adapter / "decode.yaml").read_text()
    assert main([*argv[:-3], "--none-biases=-1,x", "--backend", "transformers"]) == 2
    assert "--none-biases: comma-separated logit offsets" in capsys.readouterr().err
    assert main([*argv, "--end-biases=-1"]) == 2  # one mention per branch: EOS ends the mention, not a list
    assert "end biases apply to label-wise templates" in capsys.readouterr().err


def test_tune_chooses_a_labelwise_adapters_none_and_end_bias(tiny_adapters, tiny_llama_dir, tmp_path, capsys):
    from padellm.ner import load

    adapter = count_free_adapter(tmp_path / "labelwise", "padellm-en-labelwise-v1", tiny_adapters["corpus"],
                                 tiny_llama_dir)
    argv = ["tune", "--adapter", str(adapter), "--dataset", str(tiny_adapters["corpus"]), "--split", "test",
            "--sample", "0", "--none-biases=0,-100", "--end-biases=0,-100", "--backend", "transformers",
            "--no-progress"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    # the smallest change first; of equal changes, the none bias's first
    assert [(t["none_bias"], t["end_bias"]) for t in record["trials"]] == [(0.0, 0.0), (-100.0, 0.0),
                                                                          (0.0, -100.0), (-100.0, -100.0)]
    best = max(record["trials"], key=lambda t: t["f1"])
    assert record["chosen"] == {"none_bias": best["none_bias"], "end_bias": best["end_bias"]}
    config = load(adapter, "transformers").decode_config
    assert (config.none_bias, config.end_bias) == (best["none_bias"], best["end_bias"])
    assert main([*argv[:-4], "--end-biases=x", "--backend", "transformers"]) == 2
    assert "--end-biases: comma-separated logit offsets" in capsys.readouterr().err
