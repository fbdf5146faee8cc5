"""objpool's benchmarks: `objpool-bench --quick` (under a minute), or the full run.

A distribution of its own (`benchmarks/` in objpool's repository), outside the library's
wheel, using objpool's public API only; it measures whichever objpool it imports, and its
header says which build that is.

Every figure is a median of interleaved samples with its spread, and every comparison is a
ratio measured in the same run against the no-pool way of doing the same work.
"""

from ._cli import main as main

__all__ = ["main"]
