"""The package's import graph has no cycle: no two modules import each other, directly or
through others, and so no module works only because of where an import line stands (a
compiled twin importing back from its half-loaded reference, say). Read from the sources,
`.py` and `.pyx` alike, `TYPE_CHECKING` imports included; and each module, imported first in
an interpreter that has loaded no other objpool module, imports."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import child
from objpool._compiled import TWINS, _built

# The sources beside these tests (the checkout, or the unpacked sdist), not the installed
# package: an installed wheel holds the compiled modules, not their .pyx sources.
ROOT = Path(__file__).resolve().parent.parent / "objpool"
PYX_IMPORT = re.compile(r"^\s*(?:from\s+(objpool[\w.]*)\s+c?import|c?import\s+(objpool[\w.]*))", re.MULTILINE)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".pyx", ".pxd"):
        return {a or b for a, b in PYX_IMPORT.findall(text)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if node.module:
                    found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import _fork`
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    paths = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".pyx")]
    names = {module_name(p): p for p in paths}
    # A module's own packages are always imported before it, by Python: not an edge.
    return {
        name: {m for m in imports_of(path, name) if m in names and m != name and not name.startswith(m + ".")}
        for name, path in names.items()
    }


def test_the_graph_sees_the_modules_and_their_imports() -> None:
    edges = graph()
    assert "objpool._ownedref" in edges["objpool._pool"]
    assert "objpool.sv2._decoding" in edges["objpool.sv2._ccodec"]  # a .pyx's imports are read too
    assert "objpool._fork" in edges["objpool._pool"]  # `from . import _fork`


def test_no_module_imports_itself_through_others() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(edges[name]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert [] == cycles


def test_each_module_imports_first_in_a_fresh_interpreter() -> None:
    """What the static graph cannot see (an import inside a function, a name asked of a
    half-loaded module) shows when a module is the first one imported. One child process
    forks a fresh copy of itself per module (see tests/import_first.py)."""
    modules = sorted(name for name in graph() if name not in TWINS or _built(name))
    assert len(modules) > 20
    proc = subprocess.run(
        child.python(str(Path(__file__).parent / "import_first.py"), *modules),
        env=child.environment(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_objpool_imports_under_cprofile(tmp_path: Path) -> None:
    """Importing suspends a Python tracer while it calibrates handle reuse; a C profiler
    (cProfile) cannot be handed back to `sys.setprofile` and stays on: `python -m cProfile
    app.py` once failed at `import objpool`."""
    script = tmp_path / "app.py"
    script.write_text("import objpool\nprint('imported', objpool.COMPILED)\n")
    proc = subprocess.run(
        child.python("-m", "cProfile", "-o", str(tmp_path / "out.prof"), str(script)),
        env=child.environment(), capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("imported")
