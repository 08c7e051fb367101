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
padellm models prepare all >&2  # where the models are: a log line here; stdout is the demo's
# The parallel adapter decodes with the settings `padellm tune` chose for it on CoNLL-2003 dev
# (adapters/conll2003-parallel/decode.yaml).
python eval/demo.py "$@"
