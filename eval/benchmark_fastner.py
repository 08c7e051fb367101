"""FastNER: F1 of every exit, and F1 against speed-up for each early-exit criterion over a threshold grid, at
batch sizes 1 and 32, for one or more trained models (e.g. with and without the convolutional bypass).

    python eval/benchmark_fastner.py --model runs/conll2003-fastner/model \\
        --model runs/conll2003-fastner-nobypass/model --dataset conll2003 --split test \\
        --out runs/fastner-conll2003.json --plot docs/fastner-conll2003.png

Prints a table per model and batch size, the best speed-up within 1 F1 point of the full model (with --costs,
also what one layer and each part of an exit cost), writes every figure as JSON and draws the trade-off curves.
Each setting is timed ``--repeats`` times in rotating order (the full model among them) and its fastest pass counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

GRID = {"entropy": [0.2, 0.1, 0.05, 0.02], "confidence": [0.95, 0.99, 0.995, 0.999], "patience": [1, 2, 3],
        "stable": [1, 2], "gate": [0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98]}
"""The operating points measured; ``gate`` (and ``budget``: every F1 budget the gates were tuned for) only for
models with fitted exit gates."""


def architecture(config) -> dict:
    """The exit heads' shape, so that a result says which heads its costs belong to."""
    return {"bypass": config.bypass, "kernel_size": config.kernel_size, "bypass_size": config.bypass_size,
            "biaffine_size": config.biaffine_size}


def exit_configs(poolings: list[str], min_layer: int = 1):
    from padellm.baselines.exit_criteria import ExitConfig

    configs = []
    for pooling in poolings:
        configs += [ExitConfig("entropy", t, pooling, min_layer=min_layer) for t in GRID["entropy"]]
        configs += [ExitConfig("confidence", t, pooling, min_layer=min_layer) for t in GRID["confidence"]]
    configs += [ExitConfig(c, patience=p, min_layer=min_layer) for c in ("patience", "stable") for p in GRID[c]]
    return configs


def gate_configs(gates, min_layer: int = 1):
    from padellm.baselines.exit_criteria import ExitConfig

    return ([ExitConfig("gate", t, min_layer=min_layer) for t in GRID["gate"]]
            + [ExitConfig("budget", budget, min_layer=min_layer) for budget in gates.budgets])


def fastest_passes(model, batches, settings, repeats: int, progress) -> dict:
    """Each setting's pass over ``batches`` (its name -> ``Pass``), ``repeats`` times in rotating order so that a
    slow spell of the machine hits every setting alike; the fastest pass of each counts (F1 and exits do not
    change between passes)."""
    from padellm.baselines.fastner_inference import measure

    runs = {}
    for repeat in range(repeats):
        shift = repeat % len(settings)
        for config in settings[shift:] + settings[:shift]:
            run = measure(model, batches, config)
            if config.name not in runs or run.seconds < runs[config.name].seconds:
                runs[config.name] = run
            progress.update()
    progress.close()
    return {config.name: runs[config.name] for config in settings}


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    from padellm.baselines.exit_criteria import ExitConfig
    from padellm.baselines.fastner import FastNER
    from padellm.baselines.fastner_inference import exit_costs, measure, operating_point, prepare_batches
    from padellm.data.datasets import load_dataset
    from padellm.errors import ConfigError, PadellmError
    from padellm.evaluation.command import sample_indices
    from padellm.evaluation.environment import environment
    from padellm.evaluation.plots import plot_exit_tradeoff

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a trained FastNER model folder (repeat)")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=0, help="seeded sample of N sentences (0: the whole split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--pooling", default="max", help="poolings of the entropy and confidence criteria "
                                                         "(comma-separated: max, mean)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="passes per setting, in rotating order; the fastest counts (this machine is noisy)")
    parser.add_argument("--only-gates", action="store_true",
                        help="measure the full model and the learned exit gates only (not the other criteria)")
    parser.add_argument("--min-layer", type=int, default=1,
                        help="no exit head runs before this layer (saves the heads where few sentences leave)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--costs", action="store_true",
                        help="also time one layer and each part of an exit (bypass, scorer, criteria, decoding), "
                             "per batch size")
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument("--plot", help="write a PNG of the trade-off curves here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"--batch-sizes {args.batch_sizes!r}: positive integers, comma-separated")
        if args.repeats < 1:
            raise ConfigError(f"--repeats must be >= 1; got {args.repeats}")
        configs = ([] if args.only_gates
                   else exit_configs([p.strip() for p in args.pooling.split(",") if p.strip()], args.min_layer))
        split = load_dataset(args.dataset, [args.split]).split(args.split)
        examples = [split[i] for i in sample_indices(len(split), args.sample, args.seed)]
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        results = {}
        for folder in args.model:
            model = FastNER.load(folder)
            tokenizer = AutoTokenizer.from_pretrained(Path(folder) / "encoder")
            name = Path(folder).parent.name if Path(folder).name == "model" else Path(folder).name
            label = f"{name} ({'bypass' if model.config.bypass else 'no bypass'})"
            batches = {size: prepare_batches(model, tokenizer, examples, size) for size in sizes}
            f1_per_exit = [measure(model, batches[max(sizes)], layers=layer).f1
                           for layer in range(1, model.num_layers + 1)]
            result = {"folder": str(folder), **architecture(model.config), "layers": model.num_layers,
                      "f1_per_exit": f1_per_exit, "exit_gates": model.gates is not None, "batch_sizes": {}}
            settings = configs + (gate_configs(model.gates, args.min_layer) if model.gates is not None else [])
            for size in sizes:
                measure(model, batches[size][: max(1, 64 // size)])  # warm-up
                runs = fastest_passes(model, batches[size], [ExitConfig()] + settings, args.repeats,
                                      tqdm(total=args.repeats * (1 + len(settings)), desc=f"{label}, batch {size}",
                                           disable=args.no_progress))
                best = operating_point(runs["full model"], {k: v for k, v in runs.items() if k != "full model"})
                result["batch_sizes"][str(size)] = {k: {"f1": v.f1, "seconds": round(v.seconds, 3),
                                                        "mean_exit": round(v.mean_exit, 3)} for k, v in runs.items()}
                result.setdefault("operating_point", {})[str(size)] = (
                    {"setting": best[0], "speed_up": round(best[1], 2), **result["batch_sizes"][str(size)][best[0]]}
                    if best else None)
                full = runs["full model"]
                print(f"\n{label}, batch size {size}, {len(examples)} sentences: full model F1 {full.f1:.2f} in "
                      f"{full.seconds:.2f} s")
                print(f"{'setting':<28} {'F1':>6} {'speed-up':>8} {'mean exit':>9}")
                for setting, p in runs.items():
                    print(f"{setting:<28} {p.f1:>6.2f} {full.seconds / p.seconds:>8.2f} {p.mean_exit:>9.2f}")
                if best:
                    print(f"best within 1 F1 point: {best[0]} ({best[1]:.2f}x)")
                if args.costs:
                    costs = exit_costs(model, batches[size])
                    result.setdefault("exit_costs_ms", {})[str(size)] = costs
                    print("ms per batch, per layer: " + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
            results[label] = result
            print(f"\n{label}: F1 per exit {f1_per_exit}")
    except PadellmError as err:
        print(f"benchmark_fastner: error: {err}", file=sys.stderr)
        return 2
    if args.plot:
        title = f"FastNER on {args.dataset} {args.split} ({len(examples)} sentences, {os.cpu_count()} CPUs)"
        print(f"wrote {plot_exit_tradeoff(results, args.plot, title)}", file=sys.stderr)
    if args.out:
        record = {"command": " ".join(sys.argv), "dataset": args.dataset, "split": args.split,
                  "sentences": len(examples), "environment": environment(), "results": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
