"""The viewer's pages in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from tests.viewer.support import (
    T0_NS,
    SpanSpec,
    ViewerServer,
    make_request,
    new_trace_id,
    simple_trace,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# null-safe: a navigation may be between documents when this is evaluated
READY = "document.body?.dataset.waterfallReady === '1'"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(store: SpanStore) -> Iterator[ViewerServer]:
    with ViewerServer(create_app({"STORE": store})) as srv:
        yield srv


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # console errors include Content-Security-Policy violations (by plotly.js too)
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    yield page
    page.wait_for_load_state("networkidle")  # requests in flight end before the server stops
    context.close()
    assert errors == []


def open_trace(page: Page, server: ViewerServer, trace_id: bytes, query: str = "") -> None:
    page.goto(f"{server.url}/trace/{trace_id.hex()}{query}")
    page.wait_for_function(READY, timeout=60_000)
    assert page.locator("text=Cannot draw").count() == 0
    assert page.locator("#waterfall .scatterlayer .point").count() > 0  # the rows in view drew


def bar_point(page: Page, row: int) -> dict[str, float]:
    """Return page coordinates a little right of where row ``row``'s bar starts."""
    point: dict[str, Any] = page.evaluate(
        """(row) => {
            const gd = document.getElementById('waterfall');
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const markers = gd.data.find((t) => t.meta === 'spans');
            const fl = gd._fullLayout;
            return {x: box.left + fl.xaxis.l2p(markers.x[row]) + 6,
                    y: box.top + fl.yaxis.l2p(row)};
        }""",
        row,
    )
    return point


def click_row(page: Page, row: int) -> None:
    point = bar_point(page, row)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#details h2.span-name", timeout=20_000)


def test_click_a_bar_shows_its_details(page: Page, server: ViewerServer, store: SpanStore) -> None:
    specs = simple_trace("web", child_service="db", children=3)
    specs[2].attrs = {"db.query.text": "SELECT * FROM circuits WHERE id = ?"}
    store.write_request(make_request(specs))
    open_trace(page, server, specs[0].trace_id)
    assert page.locator("#root-name").inner_text() == "GET /"
    assert page.locator(".waterfall .main-svg").count() > 0
    assert page.locator("#depth").inner_text() == "2"
    assert page.locator("#tree-warnings").is_hidden()
    # the hover names the span, its service and its key attributes (asked for apart)
    point = bar_point(page, 2)
    page.mouse.move(point["x"], point["y"])
    page.wait_for_function(
        "() => (document.querySelector('#waterfall .hoverlayer .hovertext')?.textContent || '')"
        ".includes('db.query.text: SELECT * FROM circuits')"
    )
    hover = page.locator("#waterfall .hoverlayer .hovertext").text_content() or ""
    assert "child 1" in hover
    assert "service: db" in hover
    click_row(page, 2)  # the second child
    details = page.locator("#details")
    assert details.locator("h2").inner_text() == "child 1"
    assert "SELECT * FROM circuits WHERE id = ?" in details.inner_text()
    assert "db" in details.inner_text()
    assert specs[2].span_id.hex() in page.url  # the address is now a deep link
    click_row(page, 0)
    page.wait_for_function("document.querySelector('#details h2').textContent === 'GET /'")
    # clicking a span's name, left of the plot, selects it too
    name = page.locator("#waterfall .yaxislayer-above text").nth(3).bounding_box()
    assert name is not None
    page.mouse.click(name["x"] + name["width"] / 2, name["y"] + name["height"] / 2)
    page.wait_for_function("document.querySelector('#details h2').textContent === 'child 2'")


def test_orphans_skew_and_errors_marked(page: Page, server: ViewerServer, store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=1_000_000, service="web")
    specs = [
        root,
        SpanSpec("early", trace_id, parent_span_id=root.span_id, start_ns=T0_NS - 500_000),
        SpanSpec("lost", trace_id, parent_span_id=b"\x07" * 8, start_ns=T0_NS + 1, error=True),
    ]
    store.write_request(make_request(specs))
    open_trace(page, server, trace_id)
    warnings = page.locator("#tree-warnings").inner_text()
    assert "⚠ 1 span(s) whose parent is missing" in warnings
    assert "⏱ 1 span(s) outside their parent's time" in warnings
    labels = page.locator("#waterfall .yaxislayer-above").text_content() or ""
    assert "early ⏱" in labels
    assert "lost ⚠" in labels
    symbols = page.evaluate(
        "() => document.getElementById('waterfall').data.find((t) => t.meta === 'spans')"
        ".marker.symbol"
    )
    assert symbols == ["circle", "circle", "x"]  # root, early, then the orphan (an error)
    point = bar_point(page, 2)
    page.mouse.move(point["x"], point["y"])
    hover = page.locator("#waterfall .hoverlayer .hovertext")
    hover.wait_for(timeout=20_000)
    text = hover.text_content() or ""
    assert "lost" in text
    assert "parent missing from trace" in text
    assert "error" in text


def test_hostile_span_name_stays_text(page: Page, server: ViewerServer, store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec(
        HOSTILE,
        trace_id,
        service=f"svc{HOSTILE}",
        duration_ns=5_000_000,
        attrs={"http.route": HOSTILE, HOSTILE: HOSTILE},
        events=[(HOSTILE, T0_NS + 10, {"why": HOSTILE})],
    )
    store.write_request(make_request([root]))
    page.goto(server.url + "/")
    assert HOSTILE in page.locator("#results").inner_text()
    open_trace(page, server, trace_id)
    assert page.locator("#root-name").inner_text() == HOSTILE
    click_row(page, 0)
    assert page.locator("#details h2").inner_text() == HOSTILE
    assert page.locator("#details").inner_text().count(HOSTILE) >= 4
    # plotly shows the escaped name as text in the axis label and the hover
    assert HOSTILE[:30] in (page.locator("#waterfall .yaxislayer-above").text_content() or "")
    assert page.evaluate("window.pwned") is None
    assert page.locator("img").count() == 0


def test_deep_link_collapse_and_search(page: Page, server: ViewerServer, store: SpanStore) -> None:
    specs = simple_trace("web", children=4)
    store.write_request(make_request(specs))
    open_trace(page, server, specs[0].trace_id, f"?span={specs[3].span_id.hex()}")
    page.wait_for_function("document.querySelector('#details h2')?.textContent === 'child 2'")
    open_trace(page, server, specs[0].trace_id, f"?span={specs[0].span_id.hex()}")
    page.wait_for_selector("#details a.toggle-subtree")
    with page.expect_navigation():
        page.click("#details a.toggle-subtree")  # collapse the root's subtree
    page.wait_for_function(READY)
    rows = page.evaluate(
        "document.getElementById('waterfall').data.find((t) => t.meta === 'spans').y.length"
    )
    assert rows == 1
    assert "▸4" in (page.locator("#waterfall .yaxislayer-above").text_content() or "")
    with page.expect_navigation():
        page.click("text=Expand all")
    page.wait_for_function(READY)
    rows = page.evaluate(
        "document.getElementById('waterfall').data.find((t) => t.meta === 'spans').y.length"
    )
    assert rows == 5
    page.goto(server.url + "/?service=web")
    with page.expect_navigation():
        page.click("a.trace-link")
    page.wait_for_function(READY)
    assert specs[0].trace_id.hex() in page.url


WINDOW = """() => {
    const gd = document.getElementById('waterfall');
    const m = gd.data.find((t) => t.meta === 'spans');
    return {first: m.y[0], count: m.y.length, canvas: gd.querySelectorAll('canvas').length};
}"""


def relayout_rows(page: Page, top: float, bottom: float) -> None:
    """Scroll the waterfall to rows ``top``..``bottom``; wait for the redraw."""
    page.evaluate(f"Plotly.relayout('waterfall', {{'yaxis.range': [{bottom}, {top}]}})")
    page.wait_for_function(
        """([top, bottom]) => {
            const m = document.getElementById('waterfall').data.find((t) => t.meta === 'spans');
            // groups of rows sit at their middle row: allow a group's height
            const slack = (bottom - top) / 200;
            return m.y.length > 0 && m.y[0] <= Math.max(0, top) + slack &&
                   m.y[m.y.length - 1] >= bottom - 1 - slack;
        }""",
        arg=[top, bottom],
    )


def test_ten_thousand_spans_interactive(page: Page, server: ViewerServer, store: SpanStore) -> None:
    """A 10,000-span trace draws, answers a click, and draws other rows when scrolled."""
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=10**9, service="web")
    specs = [root]
    parents = [root]
    for i in range(9_999):
        parent = parents[i // 8] if i // 8 < len(parents) else root
        span = SpanSpec(
            f"op {i}",
            trace_id,
            parent_span_id=parent.span_id,
            start_ns=T0_NS + i * 10_000,
            duration_ns=50_000,
            service=f"svc{i % 4}",
        )
        specs.append(span)
        parents.append(span)
    for i in range(0, len(specs), 2000):
        store.write_request(make_request(specs[i : i + 2000]))
    open_trace(page, server, trace_id)
    click_row(page, 3)
    assert page.locator("#span-count").inner_text() == "10000"
    # how fast: `python -m bench bigtrace` (BENCHMARKS.md), not a timed test
    # only the rows around the view are drawn (as SVG), not 10,000
    window = page.evaluate(WINDOW)
    assert window["first"] == 0
    assert 60 <= window["count"] <= 200
    # scrolled far down: those rows are drawn, labelled, and a click selects the right one
    relayout_rows(page, 7000 - 0.5, 7030 - 0.5)
    labels = page.locator("#waterfall .yaxislayer-above").text_content() or ""
    assert page.evaluate(WINDOW)["count"] <= 200
    target = page.evaluate(
        """(row) => {
            const gd = document.getElementById('waterfall');
            const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const m = gd.data.find((t) => t.meta === 'spans');
            return {x: r.left + r.width / 2, y: r.top + gd._fullLayout.yaxis.l2p(row),
                    spanId: m.customdata[m.y.indexOf(row)]};
        }""",
        7010,
    )
    assert target["spanId"]
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function(
        "(id) => document.getElementById('details').dataset.spanId === id", arg=target["spanId"]
    )
    name = page.locator("#details h2").inner_text()
    assert name.startswith("op ")
    assert name in labels
    # the whole trace in view: groups of rows, a couple of pixels each
    relayout_rows(page, -0.5, 9999.5)
    window = page.evaluate(WINDOW)
    assert 100 <= window["count"] <= 2000
    assert window["canvas"] == 0
    hover = page.evaluate(
        "() => document.getElementById('waterfall').data.find((t) => t.meta === 'spans')"
        ".hovertext[0]"
    )
    assert hover.startswith("rows 0\u2013")
    # and back to a few rows: one row each again
    relayout_rows(page, 20 - 0.5, 60 - 0.5)
    window = page.evaluate(WINDOW)
    assert window["first"] == 0
    assert 60 <= window["count"] <= 200
    # a deep link to a span far down opens the view at its row
    open_trace(page, server, trace_id, f"?span={target['spanId']}")
    page.wait_for_function(
        "(id) => document.getElementById('details').dataset.spanId === id", arg=target["spanId"]
    )
    low, high = sorted(
        page.evaluate("document.getElementById('waterfall')._fullLayout.yaxis.range")
    )
    assert low < 7010 < high


def test_search_page_scatter_and_operation_list(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = simple_trace("web", root_name="GET /only")
    store.write_request(make_request(specs))
    store.write_request(make_request(simple_trace("api", root_name="POST /other")))
    page.goto(server.url + "/")
    page.select_option("#service-select", "web")
    page.wait_for_function("document.querySelectorAll('#operation-select option').length === 4")
    options = page.locator("#operation-select option").all_inner_texts()
    assert options == ["all operations", "GET /only", "child 0", "child 1"]
    page.select_option("#operation-select", "GET /only")
    page.click("button[type=submit]")
    page.wait_for_selector("#durations .main-svg")
    assert page.locator("a.trace-link").count() == 1
    # a point of the duration scatter opens its trace
    point = page.evaluate(
        """() => {
            const gd = document.getElementById('durations');
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const fl = gd._fullLayout, t = gd.data[0];
            return {x: box.left + fl.xaxis.l2p(fl.xaxis.d2l(t.x[0])),
                    y: box.top + fl.yaxis.l2p(t.y[0])};
        }"""
    )
    page.mouse.move(point["x"], point["y"])
    # plotly's hover label shows that it has the point under the cursor: only then is a
    # click a click on the point (on a loaded machine the first move can come too early)
    page.wait_for_selector("#durations .hoverlayer .hovertext")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(f"**/trace/{specs[0].trace_id.hex()}")
    page.wait_for_function(READY)
    page.wait_for_load_state("networkidle")  # the hover's attributes too
