"""Fixtures of the ops tests: the collector and Jaeger binaries that deploy/build.sh builds."""

from __future__ import annotations

import contextlib
import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "build.sh"


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the binaries deploy/build.sh built (or found up to date)."""

    collector: Path
    jaeger: Path


@functools.cache
def build() -> Binaries:
    """Run deploy/build.sh once per test run: a no-op when the binaries match their pins.

    Raises:
        RuntimeError: the build failed; its own output says why.
    """
    result = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        msg = f"deploy/build.sh failed ({result.returncode}):\n{result.stderr}"
        raise RuntimeError(msg)
    collector, jaeger = result.stdout.split()
    return Binaries(collector=Path(collector), jaeger=Path(jaeger))


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
