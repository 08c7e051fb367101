"""``python -m padellm.cli ...`` (e.g. under torchrun) is the ``padellm`` command."""

import sys

from padellm.cli import main

if __name__ == "__main__":
    sys.exit(main())
