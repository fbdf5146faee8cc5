"""The two builds, compared: the same seeded operation scripts run on the compiled build and
on the Python reference, in two child processes, and every operation's result, exception
type and message, and the pools' stats agree (see `tests/differential_driver.py`).

Each twin repeats its reference for speed; this is what says the repetition is faithful,
beyond the suite passing on both: a message, a boundary or a check the twin gets wrong shows
up as the first record where the traces part.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import objpool
from child import environment, python

SEEDS = range(1, 41)  # 40 scripts of 150 steps: about 6,000 operations and 600 stats each build
DRIVER = os.path.join(os.path.dirname(__file__), "differential_driver.py")


def trace(pure: bool) -> list[str]:
    env = environment()
    env["OBJPOOL_PURE_PYTHON"] = "1" if pure else "0"
    out = subprocess.run(
        python(DRIVER, *map(str, SEEDS)), env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.splitlines()


@pytest.mark.skipif(not objpool.COMPILED, reason="this install has one build only (pure Python): nothing to compare")
def test_both_builds_answer_every_operation_alike() -> None:
    compiled, reference = trace(pure=False), trace(pure=True)
    assert len(compiled) == len(reference) > 6000
    parted = [(c, r) for c, r in zip(compiled, reference) if c != r]
    if parted:
        first_c, first_r = (json.loads(line) for line in parted[0])
        seed, step, operation = first_c[:3]
        pytest.fail(
            f"{len(parted)} records differ; the first, seed {seed} step {step} ({operation}):\n"
            f"  compiled:  {json.dumps(first_c[3])[:600]}\n"
            f"  reference: {json.dumps(first_r[3])[:600]}"
        )
