"""Import each module named on the command line first, each in a fresh copy of an interpreter
that has loaded no objpool module yet; print the ones that failed, with their errors.

A fresh interpreter per module costs ~0.25 s of CPU each, mostly the standard library
(asyncio alone is ~70 ms): this process imports once what objpool needs from outside the
package, then forks one child per module, so that each child pays for objpool's own modules
only. Every child starts with no `objpool` module in `sys.modules`: an import cycle, or a
module that works only because another was imported before it, fails there.

Usage: python import_first.py MODULE [MODULE ...]   (exit status 1 if any failed)
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable


def in_child(body: Callable[[int], object]) -> tuple[int, bytes]:
    """Run `body(write_fd)` in a forked child; return its exit status and what it wrote."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        status = 0
        try:
            body(write)
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            status = 1
        os._exit(status)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def dependencies(write: int) -> None:
    """The child's body that lists what objpool imports from outside itself."""
    importlib.import_module("objpool")
    importlib.import_module("objpool.sv2")
    outside = sorted(name for name in sys.modules if name.partition(".")[0] != "objpool")
    os.write(write, "\n".join(outside).encode())


def main(modules: list[str]) -> int:
    status, listed = in_child(dependencies)
    if status:
        print(listed.decode(), file=sys.stderr)
        return 1
    for name in listed.decode().split():
        try:
            importlib.import_module(name)
        except Exception:  # a module another one imports lazily, or a platform's own: not ours
            pass
    assert not [name for name in sys.modules if name.partition(".")[0] == "objpool"]
    failed = 0
    for module in modules:

        def first_import(write: int, module: str = module) -> None:
            importlib.import_module(module)

        status, errors = in_child(first_import)
        if status:
            failed += 1
            print(f"{module}:\n{errors.decode()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
