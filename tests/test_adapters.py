import importlib.util
import json
from pathlib import Path

import pytest

from padellm.adapters import load_adapter, shipped_adapter
from padellm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_load_adapter_restores_model_and_prompt(tiny_adapter):
    folder, _ = tiny_adapter
    adapter = load_adapter(folder)
    assert adapter.mode == "parallel"
    assert adapter.encoder.label_set.labels == ("MISC", "ORG", "PER")
    assert adapter.encoder.template.name == "padellm-en"


def test_load_adapter_refuses_foreign_folders(tmp_path, tiny_adapter):
    with pytest.raises(ConfigError, match="lacks prompt.yaml and labels.yaml"):
        load_adapter(tmp_path)
    folder, _ = tiny_adapter
    for name in ("adapter_config.json", "adapter_model.safetensors", "config.yaml", "prompt.yaml"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(ConfigError, match="lacks labels.yaml"):
        load_adapter(tmp_path)


def test_score_adapter_script(tiny_adapter, tmp_path, capsys):
    folder, corpus = tiny_adapter
    spec = importlib.util.spec_from_file_location("score_adapter", ROOT / "eval" / "score_adapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "new" / "scores.json"  # parent folders are created
    assert module.main(["--adapter", str(folder), "--dataset", str(corpus), "--split", "test", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sentences"] == 2 and result["mode"] == "parallel"
    assert result["span"]["micro"]["support"] == 2
    assert result["decode_stats"]["count_prompts"] == 2 * 3
    assert json.loads(capsys.readouterr().out) == result
    assert module.main(["--adapter", str(tmp_path), "--dataset", str(corpus)]) == 2
    assert module.main(["--adapter", str(folder), "--dataset", str(corpus), "--split", "test", "--summary"]) == 0
    assert "parallel decoding, F1" in capsys.readouterr().out


def test_score_adapter_records_a_split_in_metrics_json(tiny_adapter, tmp_path, capsys):
    import shutil

    folder, corpus = tiny_adapter
    copy = shutil.copytree(folder, tmp_path / "adapter")
    spec = importlib.util.spec_from_file_location("score_adapter", ROOT / "eval" / "score_adapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--adapter", str(copy), "--dataset", str(corpus), "--split", "test", "--record"]
    assert module.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["steps"] == json.loads((folder / "metrics.json").read_text())["steps"]  # the rest kept
    assert metrics["test"]["span"] == printed["span"] and metrics["test"]["sentences"] == 2
    assert metrics["test"]["recorded_by"] == "python eval/score_adapter.py " + " ".join(argv)
    with pytest.raises(SystemExit):
        module.main([*argv, "--sample", "1"])
    assert "drop --sample" in capsys.readouterr().err


def test_adapter_weights_stored_in_bfloat16_take_half_the_space_and_load_back(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from padellm.adapters import store_weights_as

    weights = {"a.lora_A.weight": torch.randn(8, 64), "b.lora_B.weight": torch.randn(64, 8), "steps": torch.tensor([3])}
    save_file(weights, tmp_path / "adapter_model.safetensors")
    before = (tmp_path / "adapter_model.safetensors").stat().st_size
    store_weights_as(tmp_path, "bfloat16")
    after = load_file(tmp_path / "adapter_model.safetensors")
    assert after["a.lora_A.weight"].dtype == torch.bfloat16 and after["steps"].dtype == torch.int64
    assert (tmp_path / "adapter_model.safetensors").stat().st_size < 0.6 * before
    assert after["b.lora_B.weight"].float().allclose(weights["b.lora_B.weight"], rtol=1e-2)


SHIPPED = sorted(p for p in (ROOT / "adapters").iterdir() if p.is_dir())


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_adapter_is_complete_and_small(folder):
    """What ``padellm extract --adapter adapters/NAME`` reads on a fresh clone, short of the model itself."""
    import yaml
    from safetensors import safe_open

    from padellm.engine.decode_settings import read_decode_settings
    from padellm.formats import format_of
    from padellm.prompts.templates import load_prompt
    from padellm.prompts.labels import load_label_names

    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    dataset, mode = config["data"]["dataset"], config["mode"]
    template, label_set = load_prompt(folder)
    assert template.mode == mode
    assert shipped_adapter(format_of(template).system, dataset) == folder  # what padellm eval --dataset D decodes
    assert label_set.as_mapping() == load_label_names(dataset)  # every label of the corpus, by its shipped name
    read_decode_settings(folder)  # raises, naming the file, on an unknown field or a bad value
    rank = json.loads((folder / "adapter_config.json").read_text())["r"]
    with safe_open(folder / "adapter_model.safetensors", framework="pt") as weights:
        names = list(weights.keys())
        assert names and all(weights.get_slice(n).get_dtype() == "BF16" for n in names)
        assert all(rank in weights.get_slice(n).get_shape() for n in names)
    assert (folder / "adapter_model.safetensors").stat().st_size < 6 * 2**20


def test_shipped_adapter_tells_the_structured_baseline_from_the_compact_one(tmp_path, monkeypatch):
    """Both are autoregressive adapters of one dataset; the template decides which system each one is."""
    import yaml

    import padellm.adapters

    for name, prompt in (("a-compact", "autoregressive-en-v1"), ("b-structured", "autoregressive-struct-en-v1")):
        (tmp_path / name).mkdir()
        labels = ROOT / "adapters" / "conll2003-autoregressive" / "labels.yaml"
        (tmp_path / name / "labels.yaml").write_bytes(labels.read_bytes())
        (tmp_path / name / "prompt.yaml").write_bytes((ROOT / "prompts" / f"{prompt}.yaml").read_bytes())
        config = {"mode": "autoregressive", "data": {"dataset": "corpus"}}
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setattr(padellm.adapters, "SHIPPED_ADAPTERS", tmp_path)
    assert shipped_adapter("autoregressive", "corpus") == tmp_path / "a-compact"
    assert shipped_adapter("structured", "corpus") == tmp_path / "b-structured"
    with pytest.raises(ConfigError, match="no shipped parallel adapter for corpus"):
        shipped_adapter("parallel", "corpus")


def test_no_shipped_adapter_names_mode_dataset_and_the_way_out():
    with pytest.raises(ConfigError, match="no shipped parallel adapter for wnut17 under .*adapters; pass --adapter"):
        shipped_adapter("parallel", "wnut17")
