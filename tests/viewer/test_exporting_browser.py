"""The single-file export opened in a real browser (Debian's Chromium, Playwright) from
``file://``, with every request recorded and every one but the file's own refused: there
must be none. The waterfall draws, navigates, folds and shows span details from the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
)

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from cvtrace.viewer.exporting import export_html
from tests.browser import READY
from tests.viewer.support import T0_NS, SpanSpec, ViewerServer, make_request, new_trace_id

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Offline:
    """A browser context whose every request is recorded, and refused unless it reads
    a local file; and every console error and uncaught exception of its pages."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        context.route("**/*", self._route)
        context.on("page", self._watch)

    def _route(self, route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def _watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", on_console)

    def open(self, path: Path, query: str = "") -> Page:
        page = self.context.new_page()
        page.goto(path.as_uri() + query)
        page.wait_for_function(READY, timeout=60_000)
        return page

    def check(self, page: Page, path: Path) -> None:
        """Nothing but the file was asked for, nothing went wrong, nothing was missing."""
        assert self.errors == []
        assert self.refused == []
        assert {url.split("?")[0] for url in self.requests} == {path.as_uri()}
        assert page.evaluate("window.cvtraceExport.missed") == []


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield Offline(context)
    context.close()


def tree_trace() -> tuple[list[SpanSpec], Any]:
    """A trace of 3 services: a root, 3 children with 4 grandchildren each, an error,
    events; the last grandchild's producer dropped 5 attributes and 1 event."""
    trace_id = new_trace_id()
    root = SpanSpec(
        "GET /checkout", trace_id, duration_ns=50_000_000, service="web", attrs={"http.route": "/x"}
    )
    specs = [root]
    for i in range(3):
        child = SpanSpec(
            f"call {i}",
            trace_id,
            parent_span_id=root.span_id,
            start_ns=T0_NS + (i * 15 + 1) * 1_000_000,
            duration_ns=12_000_000,
            service="api",
            events=[("retry", T0_NS + (i * 15 + 2) * 1_000_000, {"attempt": 2})],
        )
        specs.append(child)
        for j in range(4):
            specs.append(
                SpanSpec(
                    f"query {i}.{j}",
                    trace_id,
                    parent_span_id=child.span_id,
                    start_ns=child.start_ns + (j * 3 + 1) * 1_000_000,
                    duration_ns=2_000_000,
                    service="db",
                    attrs={"db.query.text": f"SELECT {i}, {j}"},
                    error=(i, j) == (1, 2),
                )
            )
    request = make_request(specs)
    truncated = request.resource_spans[2].scope_spans[0].spans[-1]
    truncated.dropped_attributes_count = 5
    truncated.dropped_events_count = 1
    return specs, request


def row(page: Page, index: int) -> Any:
    return page.locator(f'.wf-row[data-row="{index}"]')


def test_opens_from_a_file_with_no_request_and_works(
    offline: Offline, store: SpanStore, tmp_path: Path
) -> None:
    specs, request = tree_trace()
    store.write_request(request)
    path = tmp_path / "trace.html"
    path.write_text(export_html(create_app({"STORE": store}), specs[0].trace_id), "utf-8")
    page = offline.open(path)
    # the header states what it is
    assert page.locator("#trace-id").inner_text() == specs[0].trace_id.hex()
    assert page.locator(".services").inner_text().split() == [
        "Services", "web", "(1)", "api", "(3)", "db", "(12)"
    ]  # fmt: skip
    assert "UTC" in page.locator("#exported-at").inner_text()
    assert page.locator("#depth").inner_text() == "3"  # from the embedded waterfall.json
    # the waterfall and its overview drew
    assert page.locator(".wf-row[data-row]").count() == 16
    assert page.locator(".wf-minimap canvas").count() == 1
    assert row(page, 0).locator(".wf-name").inner_text() == "GET /checkout"
    # details of a span (from the embedded spans/<id>.json)
    row(page, 1).locator(".wf-name").click()
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'call 0'")
    details = page.locator("#details").inner_text()
    assert "retry" in details
    assert "attempt" in details
    assert specs[1].span_id.hex() in page.url  # the address names the span, as served
    # the hover's key attributes (the embedded notes.json, asked for with &rows=)
    bar = row(page, 2).locator(".wf-bar").bounding_box()
    assert bar is not None
    page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    page.wait_for_function(
        "() => document.querySelector('.tip')?.textContent.includes('SELECT 0, 0')", timeout=10_000
    )
    # keyboard navigation and the next error
    page.locator("#waterfall").focus()
    page.keyboard.press("j")
    page.wait_for_function(
        "() => document.querySelector('#details h2')?.textContent === 'query 0.0'"
    )
    page.locator(".next-error").click()
    page.wait_for_function(
        "() => document.querySelector('#details h2')?.textContent === 'query 1.2'"
    )
    # folding: the chevron of "call 2" hides its 4 spans
    row(page, 11).locator(".wf-chev").click()
    page.wait_for_function("() => document.querySelectorAll('.wf-row[data-row]').length === 12")
    assert "12 of 16 spans shown" in page.locator(".wf-toolbar").inner_text()
    page.locator(".expand-all").click()
    page.wait_for_function("() => document.querySelectorAll('.wf-row[data-row]').length === 16")
    offline.check(page, path)


def test_the_analyses_work_from_the_file(
    offline: Offline, store: SpanStore, tmp_path: Path
) -> None:
    """Critical path, search over attributes, statistics and flame graph: each from its
    embedded data-*-url answer, nothing asked of a viewer. (Predicates as functions: the
    file's policy refuses Playwright's evaluation of a string expression.)"""
    specs, request = tree_trace()
    store.write_request(request)
    path = tmp_path / "trace.html"
    path.write_text(export_html(create_app({"STORE": store}), specs[0].trace_id), "utf-8")
    page = offline.open(path)
    assert page.locator("#compare-with").count() == 0  # no viewer to compare in
    page.locator(".critical-path-toggle").click()
    page.wait_for_function(
        "() => document.getElementById('waterfall').dataset.criticalPathReady === '1'"
    )
    assert page.locator(".wf-row.cp-path").count() >= 1
    page.fill("#span-find", "select 0, 0")  # an attribute value (search.json)
    page.wait_for_function(
        "() => Number(document.getElementById('waterfall').dataset.matches) >= 1"
    )
    page.locator("#tab-stats").click()
    page.wait_for_function("() => document.getElementById('trace-stats').dataset.ready === '1'")
    assert page.locator("#stats-table tbody tr").count() >= 3
    page.locator("#tab-flame").click()
    page.wait_for_function("() => document.getElementById('flamegraph').dataset.ready === '1'")
    assert int(page.get_attribute("#flamegraph", "data-drawn") or "0") >= 3
    offline.check(page, path)


def test_truncated_spans_are_named_and_their_details_say_so(
    offline: Offline, store: SpanStore, tmp_path: Path
) -> None:
    specs, request = tree_trace()
    store.write_request(request)
    path = tmp_path / "trace.html"
    path.write_text(export_html(create_app({"STORE": store}), specs[0].trace_id), "utf-8")
    page = offline.open(path)
    note = page.locator("#export-truncated")
    assert note.is_visible()
    assert "1 span(s) were truncated by a size limit" in note.inner_text()
    assert "db: query 2.3 (5 attributes, 1 events)" in note.inner_text()
    # the span's link opens the file at that span, with its details
    note.locator("a").click()
    page.wait_for_function(READY)
    page.wait_for_function(
        "() => document.querySelector('#details h2')?.textContent === 'query 2.3'"
    )
    truncated = page.locator("#details .truncated")
    assert truncated.is_visible()
    assert "Truncated by a size limit: its producer dropped 5 attributes, 1 events" in (
        truncated.inner_text()
    )
    # "Link to this span" leads to the same file at the span
    href = page.locator("#details .actions a").get_attribute("href")
    assert href == f"?span={specs[-1].span_id.hex()}"
    offline.check(page, path)


def test_the_download_link_with_a_token(
    browser: Browser, offline: Offline, store: SpanStore, tmp_path: Path
) -> None:
    """The trace page's HTML link, in a viewer with a token, downloads the file that then
    opens offline; the served page's details say what was truncated too."""
    specs, request = tree_trace()
    store.write_request(request)
    with ViewerServer(create_app({"STORE": store, "TOKEN": "s3cret"})) as server:
        context = browser.new_context(accept_downloads=True)
        try:
            page = context.new_page()
            page.goto(f"{server.url}/trace/{specs[0].trace_id.hex()}?token=s3cret")
            page.wait_for_function(READY, timeout=60_000)
            page.locator('.wf-row[data-row="15"] .wf-name').click()
            page.wait_for_selector("#details .truncated")
            with page.expect_download() as download:
                page.locator("#download-html").click()
            assert download.value.suggested_filename == f"trace-{specs[0].trace_id.hex()}.html"
            path = tmp_path / download.value.suggested_filename
            download.value.save_as(path)
        finally:
            context.close()
    opened = offline.open(path)  # the viewer is gone: the file stands alone
    assert opened.locator(".wf-row[data-row]").count() == 16
    opened.locator('.wf-row[data-row="4"] .wf-name').click()
    opened.wait_for_function(
        "() => document.querySelector('#details h2')?.textContent === 'query 0.2'"
    )
    offline.check(opened, path)


def test_the_file_answers_only_what_it_holds(
    offline: Offline, store: SpanStore, tmp_path: Path
) -> None:
    """A URL the page extends with a parameter that picks part of an answer (rows=) is
    answered; one that asks another question (a search's q=) is not: a 404, logged and
    listed, never the answer without it (all spans); nothing leaves for the network."""
    specs, request = tree_trace()
    store.write_request(request)
    path = tmp_path / "trace.html"
    path.write_text(export_html(create_app({"STORE": store}), specs[0].trace_id), "utf-8")
    page = offline.open(path)
    asked = page.evaluate(
        """async () => {
        const header = document.getElementById('trace-header');
        const ask = async (url) => {
          const r = await fetch(url);
          return [r.status, r.ok ? Object.keys(await r.json()).length : 0];
        };
        return [
          await ask(header.dataset.notesUrl + '&rows=0-5'),
          await ask(header.dataset.figureUrl + '&q=query'),
          await ask('/api/traces/' + header.dataset.traceId + '/search?q=query'),
          await ask('https://example.com/steal'),
        ];
      }"""
    )
    notes, searched, unknown, elsewhere = asked
    # every row with notes (the root, the 12 queries): the page takes the ones it asked for
    assert notes == [200, 13]
    assert searched[0] == 404
    assert unknown[0] == 404
    assert elsewhere[0] == 404
    missed = page.evaluate("window.cvtraceExport.missed")
    assert len(missed) == 3
    assert missed[0].endswith("&q=query")
    assert [e for e in offline.errors if "is not in this file" not in e] == []
    assert len(offline.errors) == 3
    assert offline.refused == []  # answered by the file's fetch, not sent
