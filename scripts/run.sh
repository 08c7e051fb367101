#!/usr/bin/env bash
# The main job: set up (or reuse) .venv/, prepare the packaged base models in the local cache, show
# CoNLL-2003's statistics, and score the shipped PaDeLLM and autoregressive adapters on a seeded sample of
# CoNLL-2003 test sentences (greedy decoding on the transformers reference backend). The vLLM decoding engine
# will turn this into a live extraction and latency demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
padellm models prepare all
padellm data stats conll2003
for mode in parallel autoregressive; do
  python eval/score_adapter.py --adapter "adapters/conll2003-$mode" --dataset conll2003 --split test \
    --sample "${PADELLM_DEMO_SAMPLE:-64}" --out "runs/demo-$mode.json" --summary
done
