"""Child Python processes that import the very objpool this test process imported.

CI tests the installed package, a developer the checkout: a child started with `-P` (no
current directory on `sys.path`) and this objpool's parent directory first on `PYTHONPATH`
gets the same one either way.
"""

from __future__ import annotations

import os
import sys

import objpool


def python(*args: str) -> list[str]:
    """The command line of a child interpreter running `args`."""
    return [sys.executable, "-P", *args]


def environment() -> dict[str, str]:
    """This process's environment, with this objpool's parent directory first on `PYTHONPATH`."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(objpool.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env
