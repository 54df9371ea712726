"""The search page's import action (``static/import.js``) in Debian's Chromium."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from tests.browser import Recorder
from tests.viewer.support import ViewerServer, make_request, simple_trace

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _jaeger_download(tmp_path: Path) -> tuple[bytes, str]:
    """A trace as another viewer's user downloads it."""
    specs = simple_trace("elsewhere", children=2)
    source = SpanStore(tmp_path / "source.sqlite3")
    source.write_request(make_request(specs))
    client = create_app({"STORE": source}).test_client()
    trace_id = specs[0].trace_id.hex()
    return client.get(f"/api/traces/{trace_id}?download=1").data, trace_id


def _status(page: Page) -> str:
    page.wait_for_function(
        "() => document.getElementById('import-status').textContent.includes(':')"
    )
    return page.locator("#import-status").inner_text()


@pytest.fixture
def token_server(store: SpanStore) -> Iterator[ViewerServer]:
    with ViewerServer(create_app({"STORE": store, "TOKEN": "s3cret"})) as srv:
        yield srv


def test_picked_file_is_imported_with_the_token(
    page: Page,
    token_server: ViewerServer,
    store: SpanStore,
    tmp_path: Path,
) -> None:
    data, trace_id = _jaeger_download(tmp_path)
    page.goto(f"{token_server.url}/?token=s3cret")  # the cookie carries the token from here
    page.set_input_files(
        "#import-file",
        files=[
            FilePayload(
                name="trace.json.gz", mimeType="application/gzip", buffer=gzip.compress(data)
            )
        ],
    )
    text = _status(page)
    assert text.startswith("trace.json.gz: 1 trace, 3 spans (3 new)")
    assert store.span_count() == 3
    page.click("#import-refresh")
    page.wait_for_selector(f"a.trace-link[href$='{trace_id}']")


def test_dropped_files_and_a_bad_one(
    recorder: tuple[BrowserContext, Recorder],
    page: Page,
    store: SpanStore,
    tmp_path: Path,
) -> None:
    recorder[1].expected = ["/api/import"]  # notes.txt alone: 400, nothing imported
    data, trace_id = _jaeger_download(tmp_path)
    with ViewerServer(create_app({"STORE": store})) as server:
        page.goto(server.url + "/")
        page.evaluate(
            """([text]) => {
                const dt = new DataTransfer();
                dt.items.add(new File([text], "trace.json"));
                dt.items.add(new File(["not a trace\\n"], "notes.txt"));
                document.body.dispatchEvent(
                    new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""",
            [data.decode()],
        )
        page.wait_for_function(
            # the summary, not the "importing notes.txt…" progress line that precedes it
            "() => document.getElementById('import-status').textContent.includes('notes.txt:')"
        )
        status = page.locator("#import-status")
        text = status.inner_text()
        assert "trace.json: 1 trace, 3 spans (3 new)" in text
        assert "notes.txt: file: not a trace file read here" in text
        # the success line in the page's text colour, the failure's lines in red
        lines: list[list[str]] = status.evaluate(
            """(s) => Array.from(s.querySelectorAll('.import-line')).map((line) =>
                [line.textContent, getComputedStyle(line).color])"""
        )
        normal = page.evaluate("getComputedStyle(document.body).color")
        red = page.evaluate(
            """() => { const e = document.createElement('span'); e.className = 'error';
                document.body.appendChild(e); const c = getComputedStyle(e).color;
                e.remove(); return c; }"""
        )
        assert red != normal
        good = [color for line, color in lines if line.startswith("trace.json:")]
        bad = [color for line, color in lines if "notes.txt" in line]
        assert good == [normal]
        assert len(bad) >= 2  # the summary line and the problem
        assert set(bad) == {red}
        assert store.get_trace(bytes.fromhex(trace_id))
