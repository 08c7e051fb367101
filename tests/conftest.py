"""Shared fixtures: tiny random models built once per session from fixed seeds, and corpus-file helpers."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from padellm.data.datasets import shared_data_dir
from tiny_models import build_tiny_bert, build_tiny_causal_lm, build_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama", seed=0)


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory) -> Path:
    """A random Gemma 3 (the family that needs BOS) with Gemma's special tokens."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny-gemma3", "gemma3", seed=0)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", seed=0)


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory, tiny_llama_dir) -> tuple[Path, Path]:
    """(adapter folder, corpus folder): a parallel LoRA adapter (the counted format) trained for 2 steps on a
    2-sentence corpus."""
    from padellm.cli import load_finetune_config
    from padellm.training.lora import train

    folder = tmp_path_factory.mktemp("adapter")
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("EU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n")
    (corpus / "test.txt").write_text("Peter B-PER\nsaid O\n\nEU B-ORG\n")
    config = load_finetune_config(None, {"output_dir": str(folder / "out"), "base_model": str(tiny_llama_dir),
                                "prompt": "padellm-en-v1",
                                "data.dataset": str(corpus), "data.dev_split": "", "train.max_steps": "2",
                                "train.precision": "fp32", "lora.rank": "2"})
    train(config, progress=False)
    return folder / "out", corpus


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_llama_dir) -> dict[str, Path]:
    """{"parallel", "autoregressive", "corpus"}: two adapters trained for 6 steps at a high learning rate (so that
    LoRA visibly changes the tiny model) on a 3-sentence corpus with train/dev/test splits."""
    from padellm.cli import load_finetune_config
    from padellm.training.lora import train

    root = tmp_path_factory.mktemp("tiny-adapters")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("EU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n\n"
                                      "Paris B-LOC\n")
    (corpus / "test.txt").write_text("Peter B-PER\nsaid O\n\nEU B-ORG\n\nParis B-LOC\n")
    (corpus / "dev.txt").write_text("German B-MISC\n")
    adapters = {"corpus": corpus}
    for mode in ("parallel", "autoregressive"):
        # The parallel one has the paper's count stage (padellm-en-v1), which the count-stage tests need.
        prompt = {"parallel": "padellm-en-v1", "autoregressive": "autoregressive-en-v1"}[mode]
        config = load_finetune_config(None, {"output_dir": str(root / mode), "mode": mode, "base_model": str(tiny_llama_dir),
                                    "prompt": prompt,
                                    "data.dataset": str(corpus), "data.dev_split": "", "train.max_steps": "6",
                                    "train.lr": "0.05", "train.precision": "fp32", "lora.rank": "4"})
        train(config, progress=False)
        adapters[mode] = root / mode
    return adapters


def missing(what: str) -> None:
    """Skip a test that needs ``what``, saying why; in CI (``$CI`` set), where everything the suite needs is
    installed by ``.ci/run``, fail instead: a broken install must not pass as a row of skips."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: .ci/run installs everything the tests need, so this is a broken set-up)",
                    pytrace=False)
    pytest.skip(what)


def require(module: str):
    """``pytest.importorskip`` that fails in CI (see ``missing``)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing(f"{module} cannot be imported ({err})")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared corpora; tests that need them skip (saying why) where ../shared/data is absent, and fail in CI."""
    path = shared_data_dir()
    if path is None or not (path / "conll2003").is_dir():
        missing("../shared/data (the corpora) is not present on this machine; set PADELLM_DATA_DIR")
    return path


@pytest.fixture
def write(tmp_path):
    """``write(name, content, newline="\\n")`` -> path of a file with exactly that content (bytes kept)."""

    def _write(name: str, content: str, newline: str = "\n") -> Path:
        path = tmp_path / name
        path.write_bytes(content.replace("\n", newline).encode("utf-8"))
        return path

    return _write
