"""Both builds answer every integer argument alike, huge ones included.

The same calls run in two child processes, one on the compiled build and one on the Python
reference (`OBJPOOL_PURE_PYTHON=1`), and their results, exception types and messages are
compared call by call. A compiled twin converts an int to a C integer only after the
reference's checks have run on the Python int: before, `ByteBuffer.commit(2**63)` raised
`OverflowError` compiled and `BufferFullError` in Python.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import objpool
from child import environment, python

SCRIPT = r'''
import json, sys
from objpool import BufPool, ByteBuffer, Pool, SizedPool
from objpool.sv2 import BufferFromSystemMemory, BufferPool, PooledBuffer

VALUES = [0, 1, 7, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 2**70,
          -1, -2**31, -2**63, -2**63 - 1, -2**64, True]

class Widget:
    def reset(self):
        pass

def outcome(call):
    try:
        result = call()
    except BaseException as exc:
        return [type(exc).__name__, str(exc)]
    return ["ok", type(result).__name__ if hasattr(result, "release") else repr(result)[:80]]

def calls(v):
    yield "ByteBuffer.commit", lambda: ByteBuffer(16).commit(v)
    yield "ByteBuffer.reserve", lambda: len(ByteBuffer(16).reserve(v))
    yield "BufPool.allocate", lambda: BufPool(64, 640).allocate(v)
    yield "BufPool max_memory", lambda: BufPool(64, v)
    yield "SizedPool.allocate", lambda: SizedPool(max_size=8192).allocate(v) if v <= 8192 else SizedPool(max_size=8192).allocate(-1 - v)
    yield "SizedPool max_retained", lambda: SizedPool(max_retained=v)
    yield "SizedPool.trim", lambda: SizedPool().trim(v)
    if v < 2**10 or v > 2**62:  # any size between would be allocated: gigabytes, or objects
        yield "ByteBuffer", lambda: ByteBuffer(v)
        yield "Pool capacity", lambda: Pool(Widget, v)
        yield "BufPool buffer_size", lambda: BufPool(v, 2**10)
        yield "BufferFromSystemMemory.get_writable", lambda: len(BufferFromSystemMemory(64).get_writable(v))
        yield "BufferPool.get_writable", lambda: len(BufferPool(64).get_writable(v))
        yield "PooledBuffer.get_writable", lambda: len(PooledBuffer(Pool(lambda: ByteBuffer(64), 2)).get_writable(v))

json.dump([[name, repr(v), outcome(call)] for v in VALUES for name, call in calls(v)], sys.stdout)
'''


def outcomes(pure: bool) -> list[list[object]]:
    env = environment()
    env["OBJPOOL_PURE_PYTHON"] = "1" if pure else "0"
    run = subprocess.run(python("-c", SCRIPT), env=env, capture_output=True, text=True, timeout=120, check=True)
    rows: list[list[object]] = json.loads(run.stdout)
    return rows


@pytest.mark.skipif(not objpool.COMPILED, reason="this install has one build: nothing to compare it with")
def test_both_builds_treat_every_int_alike() -> None:
    compiled, pure = outcomes(pure=False), outcomes(pure=True)
    assert len(compiled) == len(pure) > 100
    assert [row for row in compiled if row not in pure] == []
