"""`python -m objpool.bench`: see `objpool.bench._cli`."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
