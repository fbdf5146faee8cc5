"""mypy, with the repo's own mypy.ini, rejects objpool misuse and accepts correct use.

One mypy run (per test session) checks every snippet below plus tests/typing_checks.py, each
snippet in its own file; then each test looks at one file's errors. A snippet marks every
line that must fail with `# E: [code] regex`: the line must get an error with that code
whose message matches the regex, and no other line of the snippet may get any error, so a
snippet cannot pass by failing for an unrelated reason. The positive snippet must get no
error at all, so these tests fail if mypy is not really checking.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from mypy import api as mypy_api

from objpool import OwnedRef

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import typing_checks  # noqa: E402  # tests/ is not a package; the path is set just above

PRELUDE = """\
from __future__ import annotations

from objpool import ByteBuffer, OwnedRef, Pool, PoolStats, Reset, SizedPool


class A:
    def reset(self) -> None: ...


class B:
    def reset(self) -> None: ...


class SubA(A): ...


class Plain:
    pass


def new_list() -> list[int]:
    return []


def takes_str(s: str) -> None: ...


pa = Pool(A, 2)
pb = Pool(B, 2)
sized = SizedPool()
"""

NEGATIVE: dict[str, str] = {
    # The core overload rule: a factory whose objects have no reset() needs reset=.
    "list_factory_without_reset": """
        Pool(list, 8)  # E: [type-var] ^Value of type variable "R" of "Pool" cannot be "list\\[
    """,
    "lambda_factory_without_reset": """
        Pool(lambda: 3, 2)  # E: [type-var] ^Value of type variable "R" of "Pool" cannot be "int"$
    """,
    "class_without_reset": """
        Pool(Plain, 2)  # E: [type-var] ^Value of type variable "R" of "Pool" cannot be "Plain"$
    """,
    "reset_with_wrong_signature": """
        class NeedsArg:
            def reset(self, hard: bool) -> None: ...

        Pool(NeedsArg, 2)  # E: [type-var] ^Value of type variable "R" of "Pool" cannot be "NeedsArg"$
    """,
    "from_items_without_reset": """
        Pool.from_items([1, 2])  # E: [type-var] ^Value of type variable "R" of "from_items" of "Pool" cannot be "int"$
    """,
    # Handles are typed by what they lend: another pool's handle is a type error...
    "foreign_ref_type": """
        pb.deallocate(pa.allocate())  # E: [arg-type] ^Argument 1 to "deallocate" of "Pool" has incompatible type "OwnedRef\\[A\\]"; expected "OwnedRef\\[B\\]"$
    """,
    # ...even of a subclass: Pool[T] takes T back, so T (and OwnedRef's T) is invariant.
    "subclass_ref_is_not_base_ref": """
        psub = Pool(SubA, 2)
        pa.deallocate(psub.allocate())  # E: [arg-type] ^Argument 1 to "deallocate" of "Pool" has incompatible type "OwnedRef\\[SubA\\]"; expected "OwnedRef\\[A\\]"$
    """,
    # A SizedPool lends and takes back ByteBuffers only.
    "sized_pool_takes_back_byte_buffers_only": """
        sized.deallocate(pa.allocate())  # E: [arg-type] ^Argument 1 to "deallocate" of "SizedPool" has incompatible type "OwnedRef\\[A\\]"; expected "OwnedRef\\[ByteBuffer\\]"$
    """,
    "sized_pool_size_is_an_int": """
        sized.allocate("4096")  # E: [arg-type] ^Argument 1 to "allocate" of "SizedPool" has incompatible type "str"; expected "int"$
    """,
    "sized_pool_thread_cache_is_a_bool_or_none": """
        SizedPool(thread_cache="yes")  # E: [arg-type] ^Argument "thread_cache" to "SizedPool" has incompatible type "str"; expected "bool \\| None"$
    """,
    "pool_is_not_a_ref": """
        pa.deallocate(pa)  # E: [arg-type] ^Argument 1 to "deallocate" of "Pool" has incompatible type "Pool\\[A\\]"; expected "OwnedRef\\[A\\]"$
    """,
    # A reset= that cannot take the factory's objects.
    "reset_of_wrong_type_annotated": """
        p: Pool[list[int]] = Pool(new_list, 8, reset=takes_str)  # E: [arg-type] ^Argument "reset" to "Pool" has incompatible type "Callable\\[\\[str\\], None\\]"; expected "Callable\\[\\[list\\[int\\]\\], object\\]"$
    """,
    # Without an annotation mypy finds no T that fits both; the message is less precise.
    "reset_of_wrong_type_inferred": """
        Pool(new_list, 8, reset=takes_str)  # E: [misc] ^Cannot infer value of type parameter "T" of "Pool"$
        Pool(list, 8, reset=dict.clear)  # E: [misc] ^Cannot infer value of type parameter "T" of "Pool"$
    """,
    "from_items_reset_of_wrong_type": """
        Pool.from_items([[1]], reset=takes_str)  # E: [arg-type] ^Argument "reset" to "from_items" of "Pool" has incompatible type "Callable\\[\\[str\\], None\\]"; expected "Callable\\[\\[list\\[int\\]\\], object\\]"$
    """,
    "try_allocate_must_be_narrowed": """
        pa.try_allocate().value  # E: [union-attr] ^Item "None" of "OwnedRef\\[A\\] \\| None" has no attribute "value"$
    """,
    "with_gives_the_object_type": """
        with pa.allocate() as w:
            n: int = w  # E: [assignment] ^Incompatible types in assignment \\(expression has type "A", variable has type "int"\\)$
    """,
    "ref_value_is_read_only": """
        pa.allocate().value = A()  # E: [misc] ^Property "value" defined in "OwnedRef" is read-only$
    """,
    "stats_are_immutable": """
        pa.stats().lent = 0  # E: [misc] ^Property "lent" defined in "PoolStats" is read-only$
    """,
    "bytebuffer_write_takes_bytes": """
        ByteBuffer(8).write("text")  # E: [arg-type] ^Argument 1 to "write" of "ByteBuffer" has incompatible type "str"; expected "Buffer"$
    """,
    "bytebuffer_readinto_needs_binary_source": """
        def read_text(path: str) -> None:
            with open(path) as f:
                ByteBuffer(8).readinto(f)  # E: [arg-type] ^Argument 1 to "readinto" of "ByteBuffer" has incompatible type "TextIOWrapper
    """,
}

# mypy accepts these although they are wrong (the result is typed Pool[A], which is true, but
# the explicit argument is silently dropped). `[any]` accepts any error code: once the core
# makes mypy reject them, the strict xfail below fails and the case moves to NEGATIVE.
KNOWN_HOLES: dict[str, str] = {
    # The Reset overload types `self` as Pool[R], so mypy ignores an explicit type argument
    # and infers Pool[A]: the call is accepted instead of reporting that A is not int.
    "explicit_type_argument_ignored": """
        Pool[int](A, 2)  # E: [any] .
    """,
    "explicit_type_argument_ignored_by_from_items": """
        Pool[int].from_items([A()])  # E: [any] .
    """,
}

POSITIVE = """
    def serve(pool: Pool[A], scratch: Pool[list[int]], buffers: Pool[ByteBuffer]) -> int:
        ref = pool.try_allocate()
        if ref is None:
            return -1
        with ref as a, scratch.allocate() as xs, buffers.allocate() as buf:
            xs.append(1)
            buf.write(b"abc")
            a.reset()
        held: OwnedRef[A] = pool.allocate()
        held.release()
        stats: PoolStats = pool.stats()
        return stats.allocations + len(xs)

    scratch: Pool[list[int]] = Pool(list, 8, reset=list.clear)
    anything: Pool[Reset] = Pool.from_items([A(), B(), ByteBuffer(4)])
    serve(pa, scratch, Pool(lambda: ByteBuffer(16), 2))
    pb.deallocate(pb.allocate())
"""

MARK = re.compile(r"#\s*E:\s*\[(?P<code>[a-z-]+)\]\s*(?P<regex>.*?)\s*$")
ERROR = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")


@dataclass(frozen=True)
class MypyError:
    """One `error:` line of mypy's output."""

    line: int
    code: str | None
    message: str


@dataclass(frozen=True)
class MypyRun:
    """mypy's errors by file stem, and its raw output for failure messages."""

    errors: dict[str, list[MypyError]]
    output: str
    exit_status: int


def snippet_source(body: str) -> str:
    return PRELUDE + "\n" + textwrap.dedent(body).strip() + "\n"


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    """Check every snippet and tests/typing_checks.py in one mypy run, with the repo's settings."""
    tmp = tmp_path_factory.mktemp("typing")
    paths = [REPO / "tests" / "typing_checks.py"]
    for name, body in {**NEGATIVE, **KNOWN_HOLES, "positive": POSITIVE}.items():
        path = tmp / f"snippet_{name}.py"
        path.write_text(snippet_source(body), encoding="utf-8")
        paths.append(path)
    # objpool's editable install is an import hook, which mypy cannot follow: point mypy at
    # the checkout, as running it from the repo root does.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MYPYPATH", str(REPO))
        stdout, stderr, status = mypy_api.run(
            [
                "--config-file",
                str(REPO / "mypy.ini"),
                "--cache-dir",
                str(tmp / ".mypy_cache"),
                "--no-error-summary",
                "--no-pretty",
                "--show-absolute-path",
                *map(str, paths),
            ]
        )
    assert "" == stderr, stderr
    errors: dict[str, list[MypyError]] = {path.stem: [] for path in paths}
    for out_line in stdout.splitlines():
        match = ERROR.match(out_line)
        if match is None:
            assert ": note: " in out_line, f"unexpected mypy output: {out_line!r}"
            continue
        stem = Path(match["file"]).stem
        assert stem in errors, f"error in a file not checked on purpose: {out_line!r}"
        errors[stem].append(MypyError(int(match["line"]), match["code"], match["message"]))
    return MypyRun(errors, stdout, status)


def check_marked_errors(name: str, body: str, run: MypyRun) -> None:
    """Every marked line fails as marked, and no other line fails."""
    source = snippet_source(body)
    marks = {
        number: m for number, line in enumerate(source.splitlines(), 1) if (m := MARK.search(line)) is not None
    }
    assert marks, f"snippet {name} marks no line"
    errors = run.errors[f"snippet_{name}"]
    unexpected = [e for e in errors if e.line not in marks]
    assert [] == unexpected, run.output
    for number, mark in marks.items():
        found = [e for e in errors if e.line == number]
        assert found, f"mypy accepted line {number} of snippet {name}: {source.splitlines()[number - 1]!r}"
        assert any(
            mark["code"] in (e.code, "any") and re.search(mark["regex"], e.message) for e in found
        ), f"line {number} of {name}: expected [{mark['code']}] {mark['regex']!r}, got {found}"


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_mypy_rejects(mypy_run: MypyRun, name: str) -> None:
    check_marked_errors(name, NEGATIVE[name], mypy_run)


@pytest.mark.xfail(
    reason="mypy drops an explicit type argument when the overload types self (the result, Pool[A], "
    "is still true); __new__ overloads would close this but stop rejecting Pool(list, 8)",
    raises=AssertionError,
    strict=True,
)
@pytest.mark.parametrize("name", sorted(KNOWN_HOLES))
def test_mypy_rejects_known_hole(mypy_run: MypyRun, name: str) -> None:
    check_marked_errors(name, KNOWN_HOLES[name], mypy_run)


@pytest.mark.parametrize(
    "use",
    [
        lambda ref: ref.release(),
        lambda ref: ref.pool,
        lambda ref: ref.__exit__(None, None, None),
    ],
    ids=["release", "pool", "exit"],
)
def test_forged_handle_fails_with_type_error(use: Callable[[OwnedRef[int]], object]) -> None:
    """mypy accepts `OwnedRef()` (it has no __init__ to refuse it), so every use must raise.

    `_pool.py` promises TypeError for each use of such an inert handle; `.value`, `.alive`
    and `Pool.deallocate` keep that promise, these three raise AttributeError instead.
    """
    forged: OwnedRef[int] = OwnedRef()
    with pytest.raises(TypeError, match=r"^this OwnedRef was not made by Pool\.allocate\(\)"):
        use(forged)


def test_mypy_accepts_correct_use(mypy_run: MypyRun) -> None:
    assert [] == mypy_run.errors["snippet_positive"], mypy_run.output


def test_typing_checks_file_passes_mypy(mypy_run: MypyRun) -> None:
    """tests/typing_checks.py: every `assert_type` holds."""
    assert [] == mypy_run.errors["typing_checks"], mypy_run.output


def test_mypy_exit_status_says_errors_were_found(mypy_run: MypyRun) -> None:
    """A sanity check on the harness itself: mypy ran and reported the negative cases."""
    assert 1 == mypy_run.exit_status
    assert len(NEGATIVE) <= sum(map(len, mypy_run.errors.values()))


@pytest.mark.parametrize("check", typing_checks.RUNTIME_CHECKS, ids=lambda f: f.__name__)
def test_typing_checks_run(check: Callable[[], None]) -> None:
    """The forms pinned in typing_checks.py also work at runtime."""
    check()
