"""`python -m objpool_bench` (the same as the `objpool-bench` command): see `objpool_bench._cli`."""

import os
import sys

from ._cli import main


def run() -> None:
    """The `objpool-bench` command."""
    status: int
    try:
        status = main()
    except BrokenPipeError:  # e.g. `objpool-bench | head`: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    run()
