"""Ready for a lent GPU machine: vLLM on CUDA (tensor parallelism 1) against the transformers reference, LoRA
requests on a shared base-model engine (the GPU default), a shipped adapter's dev sample, and LoRA training on
CUDA. Marked ``gpu`` (deselected by default); on a GPU machine, after ``bash scripts/setup_env.sh`` (which installs
``vllm`` where ``nvidia-smi`` sees a GPU):

    bash scripts/test.sh -m gpu

Where no CUDA device is visible every test skips, saying so: the one skip CI may show."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device on this machine (the gpu tests need one)")]

TEXTS = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "Paris",
         "The European Commission said on Thursday it disagreed with German advice ."]


@pytest.fixture(scope="module", autouse=True)
def vllm():
    from conftest import require

    return require("vllm")


def decoded(result) -> list:
    return [[(e.start, e.end, e.label) for e in entities] for entities in result.entities]


@pytest.mark.parametrize("lora", ["request", "merged"])
def test_vllm_on_cuda_decodes_what_the_reference_decodes(tiny_adapters, lora):
    """Both adapters of the tiny model on one GPU, as LoRA requests (the GPU default) and merged: the same
    entities and the same tokens generated as the transformers reference, in float32."""
    from padellm import load
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_config import VLLMConfig

    config = DecodeConfig(max_mention_tokens=8, max_autoregressive_tokens=32, count_rule="quantile",
                          count_quantile=0.9)
    for mode in ("parallel", "autoregressive"):
        reference = load(tiny_adapters[mode], "transformers", decode_config=config).run(TEXTS)
        with load(tiny_adapters[mode], "vllm", decode_config=config,
                  vllm_config=VLLMConfig(lora=lora, dtype="float32", tensor_parallel_size=1,
                                         gpu_memory_utilization=0.3, max_model_len=512)) as ner:
            ours = ner.run(TEXTS)
        assert decoded(ours) == decoded(reference), mode
        tokens = ("count_tokens", "branch_tokens") if mode == "parallel" else ("generated_tokens",)
        assert [ours.stats[k] for k in tokens] == [reference.stats[k] for k in tokens], mode


def test_a_shipped_adapter_on_cuda_scores_its_floor(shared_data):
    """The shipped CoNLL-2003 parallel adapter on vLLM CUDA in bfloat16 (the GPU's own precision): the dev sample
    of tests/test_shipped_adapters.py must clear the same floor."""
    from padellm import load
    from padellm.engine.vllm_config import VLLMConfig
    from test_shipped_adapters import ADAPTERS, MARGIN, dev_sample, recorded_f1, sample_f1

    folder = next(f for f in ADAPTERS if f.name == "conll2003-parallel")
    examples = dev_sample(folder)
    with load(folder, "vllm", vllm_config=VLLMConfig(dtype="bfloat16", gpu_memory_utilization=0.3)) as ner:
        predicted = ner.run([ex.text for ex in examples]).entities
    assert sample_f1(examples, predicted) >= recorded_f1(folder) - MARGIN


def test_lora_training_runs_on_cuda(tmp_path, tiny_llama_dir, tiny_adapters):
    """A few LoRA steps on the GPU (bf16 where the card supports it): the loss falls and the adapter loads back."""
    from padellm.adapters import load_adapter
    from padellm.cli import load_finetune_config
    from padellm.training.lora import train

    config = load_finetune_config(None, {"output_dir": str(tmp_path / "out"), "base_model": str(tiny_llama_dir),
                                         "prompt": "padellm-en-v1", "data.dataset": str(tiny_adapters["corpus"]),
                                         "data.dev_split": "", "train.max_steps": "12", "train.lr": "0.01",
                                         "lora.rank": "4"})
    metrics = train(config, progress=False)
    assert metrics["device"].startswith("cuda")
    assert metrics["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert sum(metrics["losses"][-3:]) / 3 < metrics["losses"][0]
    assert load_adapter(tmp_path / "out").mode == "parallel"
