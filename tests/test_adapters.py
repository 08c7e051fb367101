import importlib.util
import json
from pathlib import Path

import pytest

from padellm.adapters import load_adapter
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
