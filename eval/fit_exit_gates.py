"""Fit a trained FastNER model's learned exit gates (the ``gate:T`` operating points) on held-out sentences, and
save them into the model folder.

    python eval/fit_exit_gates.py --model runs/conll2003-fastner/model --dataset conll2003 --split dev

``padellm finetune`` (mode fastner) does this at the end of training when the config has a dev split; this script
fits them for a model trained before that, or on other data. Prints the fit report as JSON (for each exit: the
sentences seen, the share for which leaving there was safe, the gate's accuracy and the L2 strength that
cross-validation chose; per F1 budget, the tuned thresholds and their F1, cost and mean exit on these sentences).
"""

from __future__ import annotations

import argparse
import json
import sys

from padellm.training.fastner_gates import BUDGETS


def main(argv: list[str] | None = None) -> int:
    from padellm.errors import PadellmError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a FastNER model folder (runs/NAME/model)")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="dev", help="held-out sentences to fit on (not the training split)")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS),
                        help="F1 budgets (points lost at most on the fitting sentences) to tune per-exit thresholds "
                             "for: the budget:D operating points (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        budgets = parse_budgets(args.budgets)
        report = fit(args.model, args.dataset, args.split, budgets, progress=not args.no_progress)
    except PadellmError as err:
        print(f"fit_exit_gates: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


def parse_budgets(value: str) -> tuple[float, ...]:
    from padellm.baselines.exit_criteria import ExitConfig
    from padellm.errors import ConfigError

    try:
        budgets = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError as err:
        raise ConfigError(f"--budgets {value!r}: F1 points, comma-separated (e.g. 0.25,0.5,1)") from err
    try:
        for budget in budgets:
            ExitConfig("budget", budget)  # the criterion's own bounds
    except ConfigError as err:
        raise ConfigError(f"--budgets {value!r}: {err}") from err
    return budgets


def fit(folder: str, dataset: str, split: str, budgets: tuple[float, ...] = BUDGETS, progress: bool = True) -> dict:
    """Fit and save the gates of the model in ``folder``; their report."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from padellm.baselines.fastner import FastNER
    from padellm.baselines.fastner_data import check_vocabulary
    from padellm.data.datasets import load_dataset
    from padellm.errors import ConfigError
    from padellm.training.fastner import keep_labels
    from padellm.training.fastner_gates import fit_exit_gates

    model = FastNER.load(folder)
    tokenizer = AutoTokenizer.from_pretrained(Path(folder) / "encoder")
    examples = keep_labels(load_dataset(dataset, [split]).split(split), model.config.labels)
    if not examples:
        raise ConfigError(f"--split {split!r} of {dataset} has no sentences to fit the gates on")
    check_vocabulary(tokenizer, examples, f"FastNER {folder}", f"{dataset} {split}")
    gates = fit_exit_gates(model, tokenizer, examples, f"{dataset} {split}", budgets, progress=progress)
    gates.save(folder)
    return gates.report


if __name__ == "__main__":
    sys.exit(main())
