"""Fixtures of the ops tests: the collector and Jaeger binaries that deploy/build.sh builds,
and one end-to-end run of the pipeline they make (tests/ops/pipeline_run.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from cvtrace.demo.postgres import ThrowawayPostgres
from tests.ops.binaries import Binaries, build
from tests.ops.pipeline_run import PipelineRun, pipeline_run


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


@pytest.fixture(scope="session")
def pipeline(
    binaries: Binaries, postgres: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PipelineRun]:
    """The demo (on PostgreSQL) and the probe through the real collector into Jaeger, the
    viewer and a New Relic stand-in; Jaeger and the viewer keep running until the session
    ends."""
    workdir = tmp_path_factory.mktemp("pipeline")
    database_url = postgres.create_database("pipeline")
    try:
        with pipeline_run(binaries, workdir, database_url) as run:
            yield run
    finally:
        postgres.drop_database("pipeline")
