"""`padellm eval` end to end on tiny models: the parallel and autoregressive adapters on the transformers backend
and a FastNER model at two operating points, on the tiny corpus's test split."""

import json

import pytest

from padellm.cli import main
from padellm.types import Entity

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def fastner_model(tiny_adapters, tiny_bert_dir, tmp_path_factory):
    from padellm.training.fastner import train_fastner
    from padellm.cli import load_finetune_config

    out = tmp_path_factory.mktemp("fastner")
    config = load_finetune_config(None, {"mode": "fastner", "output_dir": str(out), "data.dataset": str(tiny_adapters["corpus"]),
                                "data.dev_split": "", "model.encoder": str(tiny_bert_dir), "model.max_width": "3",
                                "model.biaffine_size": "16", "train.max_steps": "4", "train.batch_size": "2"})
    train_fastner(config, progress=False)
    return out / "model"


def argv(tiny_adapters, fastner_model, out, *extra):
    return ["eval", "--dataset", str(tiny_adapters["corpus"]), "--split", "test",
            "--systems", "parallel,autoregressive,fastner", "--parallel",
            str(tiny_adapters["parallel"]), "--autoregressive", str(tiny_adapters["autoregressive"]), "--fastner",
            str(fastner_model), "--fastner-exits", "none,patience:1", "--backend", "transformers", "--warmup", "1",
            "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def run(tiny_adapters, fastner_model, tmp_path_factory):
    """One evaluation of every system (the data lacks the adapters' MISC label: a subset, allowed explicitly)."""
    out = tmp_path_factory.mktemp("eval")
    assert main(argv(tiny_adapters, fastner_model, out, "--allow-label-subset")) == 0
    return out, json.loads((out / "results.json").read_text())


SYSTEMS = ["parallel", "autoregressive", "fastner (full model)", "fastner (patience 1)"]


def test_results_cover_every_system_and_figure(run, tiny_adapters):
    out, results = run
    summary = results["summary"]
    assert list(summary["systems"]) == list(results["systems"]) == SYSTEMS
    assert summary["sentences"] == 3 and results["data"]["sample_indices"] == [0, 1, 2]
    assert results["warmup"] == {"sentences": 1, "source": "dev split"}
    assert summary["reference"] == "autoregressive" and set(summary["speedup"]) == set(SYSTEMS) - {"autoregressive"}
    for name, entry in summary["systems"].items():
        assert set(entry["latency_ms"]) == {"mean", "p50", "p95", "p99", "min", "max"}
        assert entry["batch"]["sentences_per_s"] > 0 and len(results["latencies_ms"][name]) == 3
        assert set(entry["span"]["micro"]) >= {"precision", "recall", "f1"} and "per_label" in entry["string"]
        ratio = summary["speedup"].get(name)
        if ratio:
            assert ratio["mean_latency"] == pytest.approx(
                summary["systems"]["autoregressive"]["latency_ms"]["mean"] / entry["latency_ms"]["mean"])
    parallel, autoregressive = summary["systems"]["parallel"], summary["systems"]["autoregressive"]
    assert set(parallel["stage_mean_ms"]) == {"count", "branches", "dedup_align"}
    assert set(autoregressive["stage_mean_ms"]) == {"generate", "align"}
    assert parallel["stats"]["count_prompts"] == 3 * 4 and autoregressive["sequences_per_sentence"] == 1
    full, patience = summary["systems"]["fastner (full model)"], summary["systems"]["fastner (patience 1)"]
    assert full["mean_exit_layer"] == 2 and full["exit_layers"] == {"2": 3}
    # Patience 1 needs one exit that agrees with the one before: on a 2-layer model, never before the last layer.
    assert patience["mean_exit_layer"] == 2 and patience["exit_layers"] == {"2": 3}
    assert patience["span"] == full["span"]
    assert results["environment"]["cpus_available"] >= 1 and "torch" in results["environment"]["libraries"]
    assert results["command"].startswith("padellm eval --dataset") and results["seed"] == 0
    assert results["systems"]["fastner (patience 1)"]["settings"]["exit"]["criterion"] == "patience"
    assert results["data"]["labels"] == ["LOC", "ORG", "PER"]


def micro_f1(gold: list[set], predicted: list[set]) -> tuple[int, int, int, float]:
    """Micro F1 over per-text sets, written independently of padellm.metrics: (tp, predicted, gold, f1)."""
    tp = sum(len(g & p) for g, p in zip(gold, predicted))
    n_pred, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    precision, recall = (tp / n_pred if n_pred else 0.0), (tp / n_gold if n_gold else 0.0)
    return tp, n_pred, n_gold, (2 * precision * recall / (precision + recall) if tp else 0.0)


def test_figures_agree_with_the_written_predictions(run):
    out, results = run
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == results["data"]["sample_indices"]
    texts = [r["text"] for r in records]
    gold = [[Entity(e["start"], e["end"], e["label"]) for e in r["gold"]] for r in records]
    for name, entry in results["summary"]["systems"].items():
        predicted = [[Entity(e["start"], e["end"], e["label"]) for e in r["predictions"][name]] for r in records]
        spans = (lambda text, entities: {(e.start, e.end, e.label) for e in entities})
        strings = (lambda text, entities: {(text[e.start:e.end], e.label) for e in entities})  # the paper's sets
        for matcher, key in (("span", spans), ("string", strings)):
            expected = micro_f1([key(t, g) for t, g in zip(texts, gold)], [key(t, p) for t, p in zip(texts, predicted)])
            micro = entry[matcher]["micro"]
            assert (micro["tp"], micro["tp"] + micro["fp"], micro["support"]) == expected[:3], (name, matcher)
            assert micro["f1"] == pytest.approx(expected[3])
        assert [r["latency_ms"][name] for r in records] == pytest.approx(results["latencies_ms"][name], abs=1e-3)


def test_report_and_plots(run):
    out, results = run
    report = (out / "report.md").read_text()
    for heading in ("# padellm eval: corpus test", "## Results", "## Per label: exact spans",
                    "## Per label: string sets (paper)", "## LLM decoding stages", "## Figures", "## Systems"):
        assert heading in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    for name in SYSTEMS:
        f1 = 100 * results["summary"]["systems"][name]["span"]["micro"]["f1"]
        assert any(line.startswith(f"| {name} | {f1:.2f} |") for line in rows)
    assert "| autoregressive |" in report and "1.00x" in report
    assert results["command"] in report
    for image in ("f1_latency.png", "stages.png", "latency.png"):
        assert (out / image).read_bytes().startswith(b"\x89PNG") and f"]({image})" in report


def test_label_mismatch_is_a_clear_error(tiny_adapters, fastner_model, tmp_path, capsys):
    assert main(argv(tiny_adapters, fastner_model, tmp_path / "a")) == 2
    err = capsys.readouterr().err
    assert "predicts MISC, which corpus test never uses" in err and "--allow-label-subset" in err
    other = tmp_path / "genes.txt"
    other.write_text("IL-2 B-protein\ngene O\n")
    assert main(argv(tiny_adapters, fastner_model, tmp_path / "b", "--dataset", str(other), "--split", "data")) == 2
    err = capsys.readouterr().err
    assert "has labels protein that parallel" in err and "it knows LOC, MISC, ORG, PER" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_settings_are_named(tiny_adapters, fastner_model, tmp_path, capsys):
    assert main(argv(tiny_adapters, fastner_model, tmp_path, "--sample", "9", "--allow-label-subset")) == 2
    assert "sample 9 exceeds the 3 sentences" in capsys.readouterr().err
    assert main(argv(tiny_adapters, fastner_model, tmp_path, "--systems", "parallel,bert")) == 2
    assert "systems must be a comma-separated subset" in capsys.readouterr().err
    assert main(argv(tiny_adapters, fastner_model, tmp_path, "--fastner-exits", "entropy:2,patience")) == 2
    err = capsys.readouterr().err
    assert "'entropy:2'" in err and "threshold must be in [0, 1]" in err and "'patience': expected patience:N" in err
    assert main(argv(tiny_adapters, fastner_model, tmp_path / "gate", "--fastner-exits", "gate:0.5",
                     "--allow-label-subset")) == 2
    assert f"gate needs exit gates and {fastner_model} has none; `python eval/fit_exit_gates.py" in capsys.readouterr().err
    assert main(argv(tiny_adapters, fastner_model, tmp_path / "budget", "--fastner-exits", "budget:0.5",
                     "--allow-label-subset")) == 2
    assert f"budget needs exit gates and {fastner_model} has none" in capsys.readouterr().err
    assert main(argv(tiny_adapters, fastner_model, tmp_path, "--fastner-exits", "budget:-1")) == 2
    assert "threshold (F1 points) must be in [0, 100] for budget; got -1" in capsys.readouterr().err
    assert main(argv(tiny_adapters, fastner_model, tmp_path, "--parallel", str(tiny_adapters["autoregressive"]))) == 2
    assert "was trained for autoregressive decoding" in capsys.readouterr().err
    assert main(argv(tiny_adapters, fastner_model, tmp_path, "--split", "validation")) == 2
    assert "has no 'validation' split (it has: train, dev, test)" in capsys.readouterr().err


def test_an_earlier_run_is_never_overwritten(run, tiny_adapters, fastner_model, capsys):
    out, results = run
    before = (out / "results.json").read_text()
    assert main(argv(tiny_adapters, fastner_model, out, "--allow-label-subset")) == 2
    assert f"out: {out} holds the results of an earlier run" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before


def test_oracle_counts_give_the_branches_the_gold_counts(tiny_adapters, tmp_path, capsys):
    out = tmp_path / "oracle"
    assert main(["eval", "--dataset", str(tiny_adapters["corpus"]), "--split", "test", "--systems", "parallel",
                 "--parallel", str(tiny_adapters["parallel"]), "--backend", "transformers", "--warmup", "0",
                 "--no-batch-mode", "--oracle-counts", "--allow-label-subset", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    systems = results["summary"]["systems"]
    assert list(systems) == ["parallel", "parallel (oracle counts)"]
    oracle = systems["parallel (oracle counts)"]["counts"]["all"]
    assert oracle["exact"] == 1.0 and oracle["gold_mentions"] == oracle["stated_mentions"] == 3
    stated = systems["parallel"]["counts"]
    assert stated["all"]["pairs"] == 3 * 4 and set(stated["per_label"]) == {"LOC", "MISC", "ORG", "PER"}
    assert "stage_mean_ms" in systems["parallel (oracle counts)"]
    report = (out / "report.md").read_text()
    assert "## Count stage" in report and "| parallel | all | 12 |" in report
    assert main(["eval", "--dataset", str(tiny_adapters["corpus"]), "--systems", "autoregressive",
                 "--oracle-counts", "--out", str(tmp_path / "x")]) == 2
    assert "oracle_counts needs the parallel system" in capsys.readouterr().err


def test_bio_taggers_as_systems_with_their_operating_points(tiny_adapters, tiny_bert_dir, tmp_path, capsys):
    """The early-exit tagger at three operating points (full model, SENTEE, TOKEE) and a distilled CRF student,
    side by side in one padellm eval run."""
    from padellm.cli import load_finetune_config
    from padellm.training.tagger import train_tagger

    common = {"mode": "tagger", "data.dataset": str(tiny_adapters["corpus"]), "data.dev_split": "",
              "model.encoder": str(tiny_bert_dir), "train.max_steps": "4", "train.batch_size": "2"}
    train_tagger(load_finetune_config(None, {**common, "output_dir": str(tmp_path / "exit")}), progress=False)
    train_tagger(load_finetune_config(None, {**common, "output_dir": str(tmp_path / "teacher"), "model.crf": "true"}),
                 progress=False)
    train_tagger(load_finetune_config(None, {**common, "output_dir": str(tmp_path / "student"), "model.crf": "true",
                                             "model.layers": "1", "distill.teacher": str(tmp_path / "teacher"),
                                             "distill.k": "2"}), progress=False)
    out = tmp_path / "eval"
    assert main(["eval", "--dataset", str(tiny_adapters["corpus"]), "--split", "test", "--systems",
                 "earlyexit,distilled", "--earlyexit", str(tmp_path / "exit"), "--earlyexit-exits",
                 "none,sentence:1.0,token:1.0:0", "--distilled", f"{tmp_path / 'student'},{tmp_path / 'teacher'}",
                 "--warmup", "1", "--no-progress", "--allow-label-subset", "--out", str(out)]) == 0
    systems = json.loads((out / "results.json").read_text())["summary"]["systems"]
    # Several folders of one kind: each named by its run.
    assert set(systems) == {"earlyexit (full model)", "earlyexit (SENTEE 1)", "earlyexit (TOKEE 1 w0)",
                            "distilled student (full model)", "distilled teacher (full model)"}
    assert systems["earlyexit (full model)"]["mean_exit_layer"] == 2  # the tiny BERT's 2 layers
    assert systems["earlyexit (SENTEE 1)"]["mean_exit_layer"] == 1 == systems["earlyexit (TOKEE 1 w0)"]["mean_exit_layer"]
    # FLOPs as the papers count them: every word leaves after layer 1 of 2, so about half the token-layers
    # ([CLS] and [SEP] run on while a word of their sentence runs; here none does).
    assert systems["earlyexit (full model)"]["compute"]["share"] == 1.0
    assert systems["earlyexit (TOKEE 1 w0)"]["compute"]["flops_speedup"] == pytest.approx(2.0)
    assert systems["distilled student (full model)"]["compute"]["full_model_token_layers"] * 2 == \
        systems["distilled teacher (full model)"]["compute"]["full_model_token_layers"]
    report = (out / "report.md").read_text()
    assert "## Encoder compute (BIO taggers)" in report and "| earlyexit (TOKEE 1 w0) |" in report
    compute = report[report.index("## Encoder compute (BIO taggers)"):]
    tokee = next(line for line in compute.splitlines() if line.startswith("| earlyexit (TOKEE 1 w0) |")).split(" | ")
    assert tokee[3] == "2.00x" and tokee[4].endswith("x")  # FLOPs, and wall-clock against its full-model system
    assert "earlyexit (TOKEE 1 w0)" in capsys.readouterr().out  # the table on stdout
    assert main(["eval", "--dataset", str(tiny_adapters["corpus"]), "--systems", "distilled", "--distilled",
                 str(tmp_path / "exit"), "--out", str(tmp_path / "bad")]) == 2
    assert "is an off-ramp tagger; distilled needs a CRF tagger" in capsys.readouterr().err
    assert main(["eval", "--systems", "earlyexit", "--earlyexit", str(tmp_path / "exit"), "--earlyexit-exits",
                 "token:x", "--out", str(tmp_path / "bad2")]) == 2
    assert "earlyexit_exits: 'token:x'" in capsys.readouterr().err
