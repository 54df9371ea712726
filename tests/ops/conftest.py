"""Fixtures of the ops tests: the collector and Jaeger binaries that deploy/build.sh builds."""

from __future__ import annotations

import contextlib

import pytest

from tests.ops.binaries import Binaries, build


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before the first test that needs them, outside any test's timeout.

    `make test` has built them already (`make collector`); a bare `pytest` on a fresh
    checkout builds them here, which takes minutes the first time.
    """
    if any("binaries" in getattr(item, "fixturenames", ()) for item in session.items):
        # A failure is reported by the `binaries` fixture, as an error of each test
        # that needs it.
        with contextlib.suppress(RuntimeError):
            build()


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The collector distribution and Jaeger, built from their Go modules in deploy/."""
    return build()
