"""``python -m padellm_serve``: the same as ``padellm serve``."""

import sys

from padellm_serve.cli import main

if __name__ == "__main__":  # vLLM starts its engine processes with spawn, which re-imports this module
    sys.exit(main())
