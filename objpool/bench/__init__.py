"""objpool's benchmarks: `python -m objpool.bench --quick` (under a minute), or the full run.

Every figure is a median of interleaved samples with its spread, and every comparison is a
ratio measured in the same run against the no-pool way of doing the same work.
"""

from ._cli import main as main

__all__ = ["main"]
