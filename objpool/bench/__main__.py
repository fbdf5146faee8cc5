"""`python -m objpool.bench`: see `objpool.bench._cli`."""

import os
import sys

from ._cli import main

if __name__ == "__main__":
    status: int
    try:
        status = main()
    except BrokenPipeError:  # e.g. `python -m objpool.bench | head`: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)
