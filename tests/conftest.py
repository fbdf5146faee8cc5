"""Shared test settings: Hypothesis profiles, and releasing the slices a test held.

The default profile keeps the whole suite well under 2 minutes per interpreter on 2 cores;
`HYPOTHESIS_PROFILE=more-examples` is for a slower, deeper run before a release.
"""

import gc
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import objpool
from held import release_all_held

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "more-examples",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def release_held() -> Iterator[None]:
    """Release the slices the test kept with `held.hold()`, as its scope ends."""
    yield
    release_all_held()


def pytest_report_header() -> str:
    """Say which objpool the run tests: CI wants the installed one, not the checkout."""
    build = "compiled hot path" if objpool.COMPILED else "pure Python"
    return f"objpool {objpool.__version__}, {build}, from {objpool.__file__}"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything imported so far (pytest, Hypothesis, the test modules) out of the
    collector's sight: the tests' many full collections then scan only what the tests made.
    Nothing a test makes is frozen, so leaks and cycles are still found."""
    gc.collect()
    gc.freeze()
