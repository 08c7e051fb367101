"""A user's own Chinese-capable base model (a Hugging Face folder; here a tiny random Llama whose byte-level
tokenizer was trained with Chinese text) goes through the same commands as SmolLM2: fine-tune with the Chinese
templates, extract, serve."""

import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from padellm.cli import main
from padellm.data.datasets import load_dataset
from padellm_serve.app import create_app
from padellm_serve.config import ServerConfig
from padellm_serve.service import NERService

from threaded_backend import threaded_loader

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from oracle import GoldBackend  # noqa: E402

SENTENCES = [[("高", "B-NAME"), ("勇", "I-NAME"), ("：", "O"), ("男", "O"), ("，", "O"), ("中", "B-CONT"), ("国", "I-CONT"),
              ("国", "I-CONT"), ("籍", "I-CONT")],
             [("现", "O"), ("任", "O"), ("清", "B-ORG"), ("华", "I-ORG"), ("大", "I-ORG"), ("学", "I-ORG"), ("教", "B-TITLE"),
              ("授", "I-TITLE")]]


@pytest.fixture(scope="module")
def chinese_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume-like")
    body = "\n".join("\n".join(f"{c} {t}" for c, t in s) + "\n" for s in SENTENCES)
    (folder / "train.txt").write_text(body + "\n" + body)
    (folder / "dev.txt").write_text(body)
    (folder / "labels.yaml").write_text("CONT: 国籍\nNAME: 人名\nORG: 组织名\nTITLE: 职称\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("mode,prompt", [("parallel", "padellm-zh-v1"), ("parallel", "padellm-zh-branches-v1"),
                                         ("parallel", "padellm-zh-labelwise-v1"), ("autoregressive", "autoregressive-zh-v1")])
def test_train_extract_and_serve_with_a_chinese_base_model(chinese_corpus, tiny_llama_dir, tmp_path, capsys, mode,
                                                           prompt, monkeypatch):
    out = tmp_path / mode
    flags = {"mode": mode, "prompt": prompt, "base_model": str(tiny_llama_dir), "output_dir": str(out),
             "data.dataset": str(chinese_corpus), "data.label_names": str(chinese_corpus / "labels.yaml"), "data.dev_sample": "2",
             "train.max_steps": "3", "train.batch_size": "2", "train.precision": "fp32", "lora.rank": "4"}
    assert main(["finetune", "--no-progress", *[f"--{k}={v}" for k, v in flags.items()]]) == 0
    capsys.readouterr()
    assert "人名" in (out / "labels.yaml").read_text(encoding="utf-8")  # the Chinese label names travel along
    text = "高勇：男，中国国籍"
    assert main(["extract", "--adapter", str(out), "--backend", "transformers", "--max-count", "2",
                 "--max-mention-tokens", "8", "--max-autoregressive-tokens", "24", text]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["text"] == text and isinstance(record["entities"], list)  # a 3-step random model finds nothing

    # The server, on the trained adapter's own templates and tokenizer, with a backend that writes the gold answer
    # (a tiny random model finds no entity): the Chinese mentions come back at their character offsets.
    gold = load_dataset(str(chinese_corpus), ["dev"]).split("dev")

    gold_loader = threaded_loader(lambda loaded: GoldBackend(gold, loaded.encoder))
    service = NERService([out], ServerConfig(warmup=False), {"max_count": 4, "max_mention_tokens": 16,
                                                             "max_autoregressive_tokens": 64}, loader=gold_loader)
    with TestClient(create_app(service)) as client:
        while client.get("/health").json()["status"] == "loading":
            pass
        response = client.post("/v1/ner", json={"input": [text, "现任清华大学教授"], "mode": mode})
        assert response.status_code == 200, response.text
        assert [[(e["start"], e["end"], e["label"], e["text"]) for e in r["entities"]]
                for r in response.json()["results"]] == [
            [(0, 2, "NAME", "高勇"), (5, 9, "CONT", "中国国籍")], [(2, 6, "ORG", "清华大学"), (6, 8, "TITLE", "教授")]]
