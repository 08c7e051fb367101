#!/usr/bin/env bash
# The test command: set up (or reuse) .venv/, then run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the slow tests that use the real packaged models.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
# pytest's own exit status is the result: 5 ("no tests collected") fails like any other non-zero status.
exec python -m pytest "$@"
