"""Shared fixtures: a clean environment and a reset cvtrace around every test; OTLP
receivers, a throwaway PostgreSQL server, and Chromium (imported only by the tests that
ask for it: the SDK-range venvs have no Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from cvtrace import _guard, testing
from cvtrace.demo.postgres import PostgresError, ThrowawayPostgres
from cvtrace.store import SpanStore
from tests.otlp_receiver import GrpcOtlpReceiver, HttpOtlpReceiver

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.browser import Recorder


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_*, CVTRACE_* or NEW_RELIC_* variable from the outside leaks into a test.

    Tests set the ones they need with ``monkeypatch``, undone after the test. (It is
    also returned, so that a test written when this fixture had to be asked for runs.)
    """
    for name in list(os.environ):
        if name.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(autouse=True)
def _reset_cvtrace(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts and ends with cvtrace uninstalled; cvtrace's own errors raise."""
    monkeypatch.setattr(_guard, "RAISE", True)
    testing.reset()
    yield
    testing.reset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpanStore]:
    """A span store in a fresh SQLite file, without retention."""
    span_store = SpanStore(tmp_path / "spans.sqlite3", max_spans=0)
    yield span_store
    span_store.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """A real PostgreSQL server on 127.0.0.1, started on first use, deleted at the end.

    Debian's server programs (``make system-deps`` installs them); about 2 s to start.
    Tests create their own databases in it (``create_database``).
    """
    server = ThrowawayPostgres()
    try:
        server.start()
    except PostgresError as error:
        pytest.fail(f"no PostgreSQL for the tests: {error}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def otlp_http() -> Iterator[HttpOtlpReceiver]:
    """A real OTLP/HTTP receiver on 127.0.0.1 that decodes and keeps what it gets."""
    with HttpOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def otlp_grpc() -> Iterator[GrpcOtlpReceiver]:
    """A real OTLP/gRPC receiver on 127.0.0.1 that decodes and keeps what it gets."""
    with GrpcOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by a module's tests."""
    from playwright.sync_api import sync_playwright

    from bench.common import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def recorder(browser: Browser) -> Iterator[tuple[BrowserContext, Recorder]]:
    """A fresh browser context (1400x900) and the recorder of its requests and errors."""
    from tests.browser import Recorder

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield context, Recorder(context)
    context.close()


@pytest.fixture
def page(recorder: tuple[BrowserContext, Recorder]) -> Iterator[Page]:
    """A page whose requests all go to the origin of its first one (the viewer's)."""
    context, record = recorder
    page = context.new_page()
    yield page
    page.wait_for_load_state("networkidle")  # requests in flight end before the server stops
    assert record.errors == []
    assert record.urls, "the page asked for nothing: the recorder is not recording"
    first = urlsplit(record.urls[0])
    assert record.elsewhere(f"{first.scheme}://{first.netloc}") == []
