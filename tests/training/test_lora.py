import json

import pytest
import torch

from padellm.cli import load_finetune_config
from padellm.errors import ConfigError
from padellm.training import lora as training
from padellm.training.lora import train

SENTENCES = [
    [("EU", "B-ORG"), ("rejects", "O"), ("German", "B-MISC"), ("call", "O")],
    [("Peter", "B-PER"), ("Blackburn", "I-PER")],
    [("Japan", "B-LOC"), ("began", "O"), ("the", "O"), ("defence", "O")],
    [("Werner", "B-PER"), ("Zwingmann", "I-PER"), ("said", "O"), ("Germany", "B-LOC")],
    [("The", "O"), ("European", "B-ORG"), ("Commission", "I-ORG"), ("said", "O")],
    [("Syria", "B-LOC"), ("lost", "O")],
]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    body = "\n".join("\n".join(f"{t} {g}" for t, g in s) + "\n" for s in SENTENCES)
    (folder / "train.txt").write_text(body + "\n" + body)
    (folder / "dev.txt").write_text(body)
    return folder


def config(corpus, tiny_llama_dir, out, **overrides):
    values = {"output_dir": str(out), "base_model": str(tiny_llama_dir), "data.dataset": str(corpus),
              "data.dev_sample": "4", "lora.rank": "4", "train.batch_size": "4", "train.max_steps": "6",
              "train.checkpoint_every": "3", "train.log_every": "1", "train.precision": "fp32", "train.lr": "0.01"}
    if overrides.get("mode") != "autoregressive":
        values["prompt"] = "padellm-en-v1"  # the paper's counted format unless a test names another
    values.update(overrides)
    return load_finetune_config(None, values)


@pytest.mark.parametrize("mode", ["parallel", "autoregressive", "parallel:padellm-en-branches-v1",
                                  "parallel:padellm-en-labelwise-v1"])
def test_loss_falls_and_the_output_folder_is_complete(corpus, tiny_llama_dir, tmp_path, mode):
    out = tmp_path / "out"
    mode, _, prompt = mode.partition(":")
    extra = {"prompt": prompt} if prompt else {}
    # One batch of every sequence per step, so that the curve shows learning rather than batch-to-batch noise.
    # (A random 2-layer model with frozen random embeddings plateaus near 5.0 from ln(512) = 6.2.)
    metrics = train(config(corpus, tiny_llama_dir, out, mode=mode, **{"train.max_steps": "24", "train.batch_size": "12"},
                           **extra), progress=False)
    losses = metrics["losses"]
    assert len(losses) == 24 and sum(losses[-4:]) / 4 < 0.85 * losses[0]
    for name in ("adapter_config.json", "adapter_model.safetensors", "prompt.yaml", "labels.yaml", "config.yaml",
                 "train_log.jsonl", "metrics.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(out / "adapter_model.safetensors").values()} == {torch.bfloat16}  # half size
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dev"]["sentences"] == 4 and 0 <= saved["dev"]["span"]["micro"]["f1"] <= 1
    assert saved["train_sentences"] == 12 and saved["tokens_per_s"] > 0
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == list(range(1, 25))
    with pytest.raises(ConfigError, match="already holds a trained adapter"):
        train(config(corpus, tiny_llama_dir, out, mode=mode), progress=False)


@pytest.mark.parametrize("architecture", ["qwen2", "gemma3"])
def test_other_families_train_and_decode_through_the_same_pipeline(corpus, tmp_path, architecture):
    """A Qwen or Gemma folder a user brings trains by ``--base_model DIR`` (LoRA on all linear layers, the LM head
    at the loss positions only) and decodes, with the family's BOS at the start of every prompt."""
    from padellm.adapters import load_adapter
    from padellm.engine.backend import TransformersBackend
    from padellm.formats import decode
    from tiny_models import build_tiny_causal_lm

    base = build_tiny_causal_lm(tmp_path / architecture, architecture)
    out = tmp_path / "out"
    metrics = train(config(corpus, base, out, **{"train.max_steps": "12", "train.batch_size": "12",
                                                 "data.dev_split": ""}), progress=False)
    assert sum(metrics["losses"][-3:]) / 3 < 0.9 * metrics["losses"][0]
    adapter = load_adapter(out)
    assert adapter.encoder.bos_ids == ((2,) if architecture == "gemma3" else ())
    result = decode(["Peter Blackburn"], adapter.encoder, TransformersBackend(adapter.model, adapter.encoder.eos_id))
    assert len(result.entities) == 1 and all(e.end <= len("Peter Blackburn") for e in result.entities[0])


def test_resume_reproduces_an_uninterrupted_run(corpus, tiny_llama_dir, tmp_path, monkeypatch):
    # dropout: the RNG state must be restored too
    extra = {"data.dev_split": "", "lora.dropout": "0.1", "train.log_every": "2"}
    reference = train(config(corpus, tiny_llama_dir, tmp_path / "a", **extra), progress=False)["losses"]

    save = training.save_checkpoint

    def killed_after_checkpoint(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # as if the process were killed right after step 3's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", killed_after_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(config(corpus, tiny_llama_dir, tmp_path / "b", **extra), progress=False)
    monkeypatch.setattr(training, "save_checkpoint", save)
    assert (tmp_path / "b" / "checkpoints" / "step-0000003").is_dir()
    resumed = train(config(corpus, tiny_llama_dir, tmp_path / "b", **extra), resume=True, progress=False)["losses"]
    assert resumed == pytest.approx(reference, rel=1e-6)
    def log(name):
        return [(r["step"], r["loss"]) for r in map(json.loads, (tmp_path / name / "train_log.jsonl").read_text().splitlines())]

    assert [step for step, _ in log("b")] == [2, 4, 6]  # logged every 2 steps, checkpointed at 3: a window spans it
    assert [loss for _, loss in log("b")] == pytest.approx([loss for _, loss in log("a")], rel=1e-6)


def test_a_run_stopped_by_max_minutes_leaves_dev_scoring_to_the_resumed_run(corpus, tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    stopped = train(config(corpus, tiny_llama_dir, out, **{"train.max_minutes": "1e-9"}), progress=False)
    assert not stopped["completed"] and stopped["steps"] == 1 and "dev" not in stopped
    assert "dev" not in json.loads((out / "metrics.json").read_text())
    assert (out / "checkpoints" / "step-0000001").is_dir()
    finished = train(config(corpus, tiny_llama_dir, out), resume=True, progress=False)
    assert finished["completed"] and finished["steps"] == 6 and finished["dev"]["sentences"] == 4
    assert not (out / "checkpoints").exists()


def test_a_run_from_init_adapter_continues_where_that_adapter_stopped(corpus, tiny_llama_dir, tmp_path):
    extra = {"data.dev_split": "", "train.batch_size": "12"}
    first = train(config(corpus, tiny_llama_dir, tmp_path / "a", **extra, **{"train.max_steps": "12"}),
                  progress=False)["losses"]
    fresh = train(config(corpus, tiny_llama_dir, tmp_path / "fresh", **extra, **{"train.max_steps": "1"}),
                  progress=False)["losses"]
    # One batch holds every sequence, so the first step's loss is the loss of the weights the run starts from: the
    # first run's final weights (a little below its last logged loss, taken before its last update), not fresh ones.
    continued = train(config(corpus, tiny_llama_dir, tmp_path / "b", init_adapter=str(tmp_path / "a"),
                             **extra, **{"train.max_steps": "1", "train.lr": "1e-9"}), progress=False)
    assert continued["init_adapter"] == str(tmp_path / "a")
    assert continued["losses"][0] < first[-1] < 0.9 * fresh[0]
    with pytest.raises(ConfigError) as refused:
        train(config(corpus, tiny_llama_dir, tmp_path / "c", init_adapter=str(tmp_path / "a"), mode="autoregressive",
                     **{"lora.rank": "8"}), progress=False)
    assert "was trained with mode 'parallel'; this run has 'autoregressive'" in str(refused.value)
    assert "was trained with lora.rank 4; this run has 8" in str(refused.value)
    with pytest.raises(ConfigError, match="is not an adapter folder"):
        train(config(corpus, tiny_llama_dir, tmp_path / "d", init_adapter=str(corpus)), progress=False)
    with pytest.raises(ConfigError, match="init_adapter must not be output_dir"):
        config(corpus, tiny_llama_dir, tmp_path / "a", init_adapter=str(tmp_path / "a"))


def test_resume_without_checkpoint(corpus, tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(config(corpus, tiny_llama_dir, tmp_path / "none"), resume=True, progress=False)


def test_bad_config_lists_every_problem_before_training(corpus, tmp_path):
    (corpus / "empty").mkdir()
    (corpus / "empty" / "train.txt").write_text("\n")
    with pytest.raises(ConfigError) as info:
        training.prepare_run(load_finetune_config(None, {
            "output_dir": str(tmp_path / "x"), "base_model": str(tmp_path / "no-model"),
            "data.dataset": str(corpus), "data.labels": "PER,WEAPON", "prompt": "autoregressive-en-v1"}))
    problems = "\n".join(info.value.problems)
    assert "unknown label(s) ['WEAPON']" in problems
    assert "is a autoregressive template but mode is 'parallel'" in problems
    assert "base_model" in problems and "no-model" in problems
    with pytest.raises(ConfigError) as info:
        training.prepare_run(load_finetune_config(None, {
            "output_dir": str(tmp_path / "x"), "base_model": str(tmp_path / "no-model"), "data.dataset": str(corpus),
            "prompt": "padellm-en-branches-v1", "data.supervision": "paper", "data.zero_count_weight": "0.3"}))
    problems = "\n".join(info.value.problems)
    assert "data.supervision: the count-free prompt 'padellm-en-branches-v1' has no count stage" in problems
    assert "data.zero_count_weight: the count-free prompt" in problems and "data.count_weight" not in problems
    with pytest.raises(ConfigError, match="data.none_weight: prompt 'padellm-en-v1' has a count stage"):
        training.prepare_run(load_finetune_config(None, {
            "output_dir": str(tmp_path / "x"), "base_model": str(tmp_path / "no-model"), "data.dataset": str(corpus),
            "prompt": "padellm-en-v1", "data.none_weight": "0.5"}))
    with pytest.raises(ConfigError) as info:
        load_finetune_config(None, {"output_dir": "x", "lora.rank": "0", "train.lr": "-1", "data.dataset": str(tmp_path / "missing")})
    assert len(info.value.problems) == 2 and "lora.rank must be > 0; got 0" in str(info.value)
    with pytest.raises(ConfigError) as info:
        training.prepare_run(load_finetune_config(None, {"output_dir": "x", "data.dataset": str(tmp_path / "missing"),
                                                "base_model": "no-such-packaged-model"}))
    assert "no such dataset" in str(info.value) and "no-such-packaged-model" in str(info.value)


def test_empty_dataset_is_an_error(tmp_path, tiny_llama_dir):
    (tmp_path / "train.txt").write_text("EU O\n")
    with pytest.raises(ConfigError, match="has no entities"):
        training.prepare_run(load_finetune_config(None, {"output_dir": "x", "data.dataset": str(tmp_path / "train.txt"),
                                                "base_model": str(tiny_llama_dir), "data.dev_split": ""}))


def test_shipped_configs_are_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[2].glob("finetune/configs/*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# padellm finetune --config finetune/configs/"), path
        load_finetune_config(path, {"output_dir": "x"})


@pytest.mark.slow
def test_real_base_model_trains_a_few_steps(shared_data, tmp_path):
    """The packaged SmolLM2 end to end: 3 steps on 24 CoNLL-2003 sentences, then dev decoding of 4."""
    metrics = train(load_finetune_config(None, {
        "output_dir": str(tmp_path / "out"), "data.dataset": "conll2003", "data.max_train_examples": "24",
        "data.dev_sample": "4", "train.max_steps": "3", "train.batch_size": "8"}), progress=False)
    assert metrics["steps"] == 3 and metrics["final_loss"] < 10 and metrics["dev"]["sentences"] == 4


def test_two_processes_train_what_one_process_with_two_micro_batches_trains(corpus, tiny_llama_dir, tmp_path):
    """``torchrun --nproc_per_node 2`` (what ``accelerate launch`` starts) on CPU: each process takes one of a
    step's two micro-batches, and the weighted loss and its gradient are those of one process with grad_accum 2."""
    import os
    import shutil
    import subprocess
    import sys

    from safetensors.torch import load_file

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    flags = {"base_model": str(tiny_llama_dir), "prompt": "padellm-en-v1", "data.dataset": str(corpus),
             "data.dev_sample": "4", "lora.rank": "4", "train.batch_size": "3", "train.max_steps": "4", "train.checkpoint_every": "2",
             "train.log_every": "1", "train.precision": "fp32", "train.lr": "0.01"}
    argv = [arg for key, value in flags.items() for arg in (f"--{key}", value)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "padellm.cli", "finetune", "--mode",
                               "parallel", "--output_dir", str(tmp_path / "two"), "--no-progress", *argv],
                              env=environment, timeout=600, capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert len(launched.stdout.splitlines()) == 1  # one summary: the main process's
    one = train(config(corpus, tiny_llama_dir, tmp_path / "one", **{**flags, "train.grad_accum": "2"}), progress=False)
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert two["tokens"] == one["tokens"] and two["dev"]["sentences"] == 4
    weights = [load_file(tmp_path / run / "adapter_model.safetensors") for run in ("one", "two")]
    for name, tensor in weights[0].items():
        assert weights[1][name].allclose(tensor, atol=1e-5), name
    assert len((tmp_path / "two" / "train_log.jsonl").read_text().splitlines()) == 4  # written once, not twice


def test_decode_limits_grow_to_what_the_training_data_teaches(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    from padellm.engine.decode_settings import read_decode_settings
    from padellm.prompts.encoding import PromptEncoder
    from padellm.prompts.templates import load_template
    from padellm.prompts.labels import LabelSet
    from padellm.training.lora import write_generation_limits
    from padellm.types import Entity, Example

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    labels = LabelSet.for_labels(["ORG"], {"ORG": "organization"})
    short = Example("EU said", ("EU", "said"), ((0, 2), (3, 7)), (Entity(0, 2, "ORG"),))
    long_name = " ".join(["Commission"] * 30)
    long = Example(long_name, tuple(long_name.split()), tuple((11 * i, 11 * i + 10) for i in range(30)),
                   (Entity(0, len(long_name), "ORG"),))
    parallel = PromptEncoder(tokenizer, load_template("padellm-en-v1"), labels)
    assert write_generation_limits(tmp_path, [short], parallel) == {} and not (tmp_path / "decode.yaml").exists()
    written = write_generation_limits(tmp_path, [short, long], parallel)
    needed = len(parallel.mention_target(long_name))
    assert needed > 32 and written == {"max_mention_tokens": -(-5 * needed // 4)}
    assert read_decode_settings(tmp_path) == written  # what load / extract / serve / eval decode with
    autoregressive = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), labels)
    words = " ".join(["Commission"] * 100)
    many = Example(words, tuple(words.split()), tuple((11 * i, 11 * i + 10) for i in range(100)),
                   tuple(Entity(11 * i, 11 * i + 10, "ORG") for i in range(100)))
    assert set(write_generation_limits(tmp_path, [many], autoregressive)) == {"max_autoregressive_tokens"}
    assert set(read_decode_settings(tmp_path)) == {"max_mention_tokens", "max_autoregressive_tokens"}  # merged
    # a label-wise branch writes a label's every mention: max_count grows with the most a label has in a text
    labelwise = PromptEncoder(tokenizer, load_template("padellm-en-labelwise-v1"), labels)
    (tmp_path / "labelwise").mkdir()
    written = write_generation_limits(tmp_path / "labelwise", [many], labelwise)
    assert written["max_count"] == 125 and set(written) == {"max_count", "max_autoregressive_tokens"}
    assert write_generation_limits(tmp_path / "few", [short], labelwise) == {}


# Written for this test: at most one entity a sentence, most labels of a sentence have no mention.
SPARSE = [
    [("Anna", "B-PER"), ("Weber", "I-PER"), ("sang", "O"), ("tonight", "O")],
    [("the", "O"), ("river", "O"), ("rose", "O")],
    [("rain", "O"), ("fell", "O"), ("in", "O"), ("Lisbon", "B-LOC")],
    [("nobody", "O"), ("came", "O")],
    [("Acme", "B-ORG"), ("Corp", "I-ORG"), ("hired", "O"), ("staff", "O")],
    [("prices", "O"), ("went", "O"), ("up", "O")],
    [("Olympic", "B-MISC"), ("fans", "O"), ("cheered", "O")],
    [("we", "O"), ("waited", "O")],
]


RECIPE = ("mode", "prompt", "lora.rank", "lora.alpha", "lora.dropout", "lora.target_modules", "train.lr",
          "train.warmup_ratio", "train.weight_decay", "train.max_grad_norm", "data.supervision", "data.pack",
          "data.none_weight")


def recipe(config) -> dict:
    return {key: getattr(getattr(config, key.split(".")[0]), key.split(".")[1]) if "." in key else getattr(config, key)
            for key in RECIPE}


@pytest.mark.parametrize("recipe_config", ["conll2003-labelwise", "resume-parallel", "conll2003-autoregressive",
                                           "resume-autoregressive", "conll2003-parallel-gemma",
                                           "conll2003-autoregressive-gemma"])
def test_the_cli_defaults_are_the_shipped_recipe(recipe_config, tmp_path, tiny_gemma_dir, shipped_corpus):
    """``padellm finetune --mode M`` with no config file resolves to the format and settings of the first epoch of
    the shipped adapters of that mode and language (the old default, the counted format at lr 3e-4, predicted no
    mention at all on a sparse corpus)."""
    from pathlib import Path

    shipped = load_finetune_config(Path(__file__).resolve().parents[2] / "finetune" / "configs" / f"{recipe_config}.yaml")
    defaults = load_finetune_config(None, {"output_dir": str(tmp_path / "out"), "mode": shipped.mode,
                                           "base_model": str(tiny_gemma_dir),
                                           "data.dataset": shipped_corpus(shipped.data.dataset)})
    assert load_finetune_config(None, {"output_dir": "x"}).base_model == "gemma3-270m"
    resolved = training.prepare_run(defaults).config
    expected = recipe(shipped)
    if not expected["prompt"]:  # the config leaves it to the default (SmolLM2's compact baseline: the same lines)
        expected["prompt"] = {"parallel": "padellm-en-labelwise-v1", "autoregressive": "autoregressive-en-v1"}[shipped.mode]
    assert recipe(resolved) == expected


@pytest.fixture
def shipped_corpus(tmp_path):
    """A two-sentence corpus in the language of a shared dataset (the default prompt follows the data)."""

    def build(dataset: str) -> str:
        folder = tmp_path / dataset
        folder.mkdir()
        if dataset == "resume_zh":
            rows = "高 B-NAME\n勇 I-NAME\n， O\n男 O\n\n现 O\n任 O\n教 B-TITLE\n授 I-TITLE\n"
        else:
            rows = "Anna B-PER\nWeber I-PER\nsang O\n\nrain O\nfell O\nin O\nLisbon B-LOC\n"
        (folder / "train.txt").write_text(rows)
        (folder / "dev.txt").write_text(rows)
        return str(folder)

    return build


# Written for this test: at most one entity a sentence, so that most (sentence, label) branches answer none.
@pytest.mark.slow
def test_the_defaults_alone_find_mentions_in_a_sparse_corpus(shared_data, tmp_path):
    """The packaged Gemma 3 270M trained by the defaults alone on CoNLL-2003 training sentences with at most one
    entity (a short run), then decoded on such dev sentences: it predicts mentions (the old default predicted none)."""
    from padellm.adapters import load_adapter
    from padellm.data.datasets import load_dataset
    from padellm.data.corpus import write_jsonl
    from padellm.engine.backend import TransformersBackend
    from padellm.formats import decode
    from padellm.metrics import score

    dataset = load_dataset("conll2003")
    folder = tmp_path / "sparse"
    folder.mkdir()
    for split, n in (("train", 400), ("dev", 40)):
        write_jsonl(folder / f"{split}.jsonl", [ex for ex in dataset.splits[split] if len(ex.entities) <= 1][:n])
    metrics = train(load_finetune_config(None, {"output_dir": str(tmp_path / "out"), "data.dataset": str(folder),
                                                "data.dev_split": "", "train.max_steps": "40"}), progress=False)
    assert metrics["base_model"] == "gemma3-270m"
    dev = load_dataset(str(folder)).splits["dev"]
    adapter = load_adapter(tmp_path / "out")
    result = decode([ex.text for ex in dev], adapter.encoder, TransformersBackend(adapter.model, adapter.encoder.eos_id))
    found = sum(len(entities) for entities in result.entities)
    f1 = score([ex.text for ex in dev], [ex.entities for ex in dev], result.entities).micro.f1
    assert found >= 10 and f1 >= 0.3, (found, f1)
