"""eval/demo.py (what `bash scripts/run.sh` runs): which sentences it tags with which shipped adapters."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "eval" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_corpus_it_tags_its_own_english_and_chinese_sentences(demo, monkeypatch, tmp_path):
    monkeypatch.setenv("PADELLM_DATA_DIR", str(tmp_path / "no-such-folder"))
    sets, source = demo.example_sets([], sample=8, seed=1)
    assert [dataset for dataset, _, _ in sets] == ["conll2003", "resume_zh"]
    english, chinese = sets[0][1], sets[1][1]
    assert len(english) >= 5 and len(chinese) >= 3 and all(s.strip() for s in english + chinese)
    assert "no corpus folder" in source and "PADELLM_DATA_DIR" in source
    from padellm.adapters import shipped_adapter

    for dataset, _, _ in sets:  # each set has both shipped adapters to compare
        assert shipped_adapter("parallel", dataset) and shipped_adapter("autoregressive", dataset)


def test_given_sentences_go_to_the_adapters_of_their_language(demo):
    (dataset, texts, warmup), = demo.example_sets(["王芳现任北京银行财务部副经理。"], 8, 1)[0]
    assert dataset == "resume_zh" and texts == ["王芳现任北京银行财务部副经理。"] and warmup
    (dataset, _, _), = demo.example_sets(["Peter went to Paris ."], 8, 1)[0]
    assert dataset == "conll2003"


def test_with_the_corpus_it_samples_conll2003_test_sentences(demo, shared_data):
    (dataset, texts, warmup), = demo.example_sets([], 5, 1)[0]
    assert dataset == "conll2003" and len(texts) == 5 and len(warmup) == 3 and not set(texts) & set(warmup)
