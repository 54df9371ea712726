"""The compare, service map and metrics pages in a real browser (Debian's Chromium)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page

from cvtrace.store import SpanStore
from tests.browser import READY
from tests.viewer.support import SpanSpec, ViewerServer, make_request
from tests.viewer.test_analyses_api import MS, cross_service_traffic, request_trace

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def point_of(page: Page, plot: str, meta: str, index: int) -> dict[str, float]:
    """Return page coordinates of point ``index`` of the plotly trace with ``meta``."""
    point: dict[str, Any] = page.evaluate(
        """([plot, meta, index]) => {
            const gd = document.getElementById(plot);
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const trace = gd.data.find((t) => t.meta === meta);
            const fl = gd._fullLayout;
            return {x: box.left + fl.xaxis.l2p(fl.xaxis.d2l(trace.x[index])),
                    y: box.top + fl.yaxis.l2p(fl.yaxis.d2l(trace.y[index]))};
        }""",
        [plot, meta, index],
    )
    return point


def click_point(page: Page, plot: str, meta: str, index: int) -> None:
    """Hover a point, as a mouse would on its way, then click it.

    plotly's click reports the points of the last hover: a click at once at a new
    place reports the previous hover's point.
    """
    point = point_of(page, plot, meta, index)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.wait_for_function(
        """([plot, meta, index]) => (document.getElementById(plot)._hoverdata || [])
            .some((p) => p.data.meta === meta && p.pointNumber === index)""",
        arg=[plot, meta, index],
        timeout=10_000,
    )
    page.mouse.click(point["x"], point["y"])


def open_compare(page: Page, server: ViewerServer, store: SpanStore) -> list[SpanSpec]:
    """Store a typical request (2 queries) and a slow one (6, and a call to preview);
    open the page comparing them; return the slow one's spans."""
    typical = request_trace(2)
    slow = request_trace(6, preview_ms=20)
    store.write_request(make_request(typical + slow))
    a, b = typical[0].trace_id.hex(), slow[0].trace_id.hex()
    page.goto(f"{server.url}/compare?a={a}&b={b}")  # the page is 1400 px wide
    page.wait_for_function("() => document.body.dataset.compareReady === '1'", timeout=30_000)
    return slow


def test_compare_shows_where_the_time_went(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    slow = open_compare(page, server, store)
    b = slow[0].trace_id.hex()
    rows = page.locator("#compare-table tbody tr")
    assert rows.count() == 4
    texts = [rows.nth(i).locator("td.path").inner_text() for i in range(4)]
    assert texts == [
        "circuits: GET /circuits/<id>",
        "circuits: POST",
        "preview: POST /render",
        "circuits: SELECT circuits",
    ]
    classes = [rows.nth(i).get_attribute("class") or "" for i in range(4)]
    assert classes[1] == classes[2] == "only-b"  # the call to preview: only in the slow one
    assert classes[3] == "changed"  # 2 queries in A, 6 in B
    summary = page.locator("#compare-summary").inner_text()
    assert "B took 24.0ms more than A (29.0ms vs 5.00ms)" in summary
    assert "preview: POST /render +19.8ms self time (only in B)" in summary
    assert "circuits: SELECT circuits +4.00ms self time (2 → 6 spans)" in summary
    # each side links to its own trace, at the path's first span
    with page.expect_navigation():
        rows.nth(3).locator("a.side-b").click()
    assert f"/trace/{b}" in page.url
    assert f"span={slow[1].span_id.hex()}" in page.url
    page.wait_for_function(READY, timeout=60_000)


def test_compare_table_gives_the_paths_the_room(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    open_compare(page, server, store)
    layout: dict[str, Any] = page.evaluate(
        """() => {
            const table = document.getElementById('compare-table');
            const cells = Array.from(table.querySelectorAll('tbody td.path'));
            const first = table.querySelector('tbody tr').children;
            const align = (el) => getComputedStyle(el).textAlign;
            const heads = Array.from(table.querySelectorAll('thead th'));
            return {
                cut: cells.filter((td) => td.scrollWidth > td.clientWidth)
                    .map((td) => td.textContent),
                titled: cells.every((td) => td.title === td.textContent),
                pathWidth: first[0].offsetWidth,
                widestNumber: Math.max(...Array.from(first).slice(1).map((td) => td.offsetWidth)),
                heads: heads.map((th) => [th.textContent, align(th)]),
                numbers: align(table.querySelector('tbody td.num')),
            };
        }"""
    )
    assert layout["cut"] == []  # "circuits: GET /circuits/<id>" in full
    assert layout["titled"]
    assert layout["pathWidth"] > 3 * layout["widestNumber"]
    assert layout["numbers"] == "right"
    assert layout["heads"] == [
        ["Path (service: operation)", "left"],
        ["A", "center"],  # each group heading over its three columns
        ["B", "center"],
        ["Δ total", "right"],  # the others over their right-aligned numbers
        ["Δ self", "right"],
        *[[name, "right"] for name in ("count", "total", "self") * 2],
    ]


def test_compare_offers_traces_of_the_same_shape(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    outlier = request_trace(30)
    sibling = request_trace(2)
    store.write_request(make_request(outlier + sibling + request_trace(2, preview_ms=1)))
    page.goto(f"{server.url}/compare?a={outlier[0].trace_id.hex()}")
    page.wait_for_function("() => document.body.dataset.compareReady === '1'", timeout=30_000)
    choices = page.locator("#same-shape a")
    assert choices.count() == 1  # the one calling preview has another shape
    with page.expect_navigation():
        choices.first.click()
    page.wait_for_function("() => document.body.dataset.compareReady === '1'", timeout=30_000)
    assert page.locator("#compare-table tbody tr").count() == 2


def test_map_click_through(page: Page, server: ViewerServer, store: SpanStore) -> None:
    now_ms = time.time_ns() // MS
    traces = cross_service_traffic(store, now_ms)
    page.goto(f"{server.url}/map?window=1h")
    page.wait_for_function("() => document.body.dataset.mapReady === '1'", timeout=30_000)
    assert "2 services, 5 calls between them" in page.locator("#map-status").inner_text()
    labels = page.locator("#map .textpoint").all_text_contents()
    assert "5 calls, 20.0% errors" in labels
    # a call (the dot on its arrow): the traces that contain it, newest first
    click_point(page, "map", "calls", 0)
    page.wait_for_selector("#map-panel[data-ready='1']", timeout=20_000)
    assert page.locator("#map-panel h2").inner_text() == "circuits → preview"
    links = page.locator("#map-panel a.trace-link")
    assert links.count() == 5
    assert traces[9][0].trace_id.hex() in (links.first.get_attribute("href") or "")
    # a service: its calls, its metrics, its slowest traces
    click_point(page, "map", "services", 1)  # services are sorted: circuits, preview
    page.wait_for_function(
        "() => document.querySelector('#map-panel h2')?.textContent === 'preview'", timeout=20_000
    )
    page.wait_for_selector("#map-panel a.slow-link", timeout=20_000)
    assert "called by circuits: 5 (1 errors)" in page.locator("#map-panel").inner_text()
    with page.expect_navigation():
        page.locator("#map-panel a.slow-link").click()
    assert "service=preview" in page.url
    assert "min_duration=2ms" in page.url
    assert page.locator("#results a.trace-link").count() == 5  # all five took 2.8 ms
    page.go_back()
    page.wait_for_function("() => document.body.dataset.mapReady === '1'", timeout=30_000)
    click_point(page, "map", "services", 1)
    with page.expect_navigation():
        page.locator("#map-panel a.red-link").click()
    # the service's RED charts; a point opens the traces of that moment
    page.wait_for_function("() => document.body.dataset.redReady === '1'", timeout=30_000)
    assert page.locator("#metrics-service").inner_text() == "preview"
    for chart in ("red-rate", "red-errors", "red-latency"):
        assert page.locator(f"#{chart} .scatterlayer .trace").count() >= 1
    index = page.evaluate(
        "() => document.getElementById('red-rate').data[0].y.findIndex((v) => v > 0)"
    )
    latency = page.evaluate("() => document.getElementById('red-latency').data.map((t) => t.name)")
    assert latency == ["p50", "p95", "p99"]  # of the whole service
    click_point(page, "red-rate", "POST /render", index)
    page.wait_for_url("**/?*service=preview*", timeout=20_000)
    assert "operation=POST+%2Frender" in page.url or "operation=POST%20%2Frender" in page.url
    assert page.locator("#results a.trace-link").count() >= 1


def test_metrics_of_one_operation(page: Page, server: ViewerServer, store: SpanStore) -> None:
    cross_service_traffic(store, time.time_ns() // MS)
    page.goto(f"{server.url}/metrics?service=circuits&window=1h")
    page.wait_for_function("() => document.body.dataset.redReady === '1'", timeout=30_000)
    options = page.locator("#red-operation option").all_inner_texts()
    assert options == ["all operations", "GET /circuits/<id>"]
    with page.expect_navigation():
        page.select_option("#red-operation", "GET /circuits/<id>")
        page.click("form button")
    page.wait_for_function("() => document.body.dataset.redReady === '1'", timeout=30_000)
    assert page.locator("#metrics-operation").inner_text() == "GET /circuits/<id>"
    legend = page.locator("#red-latency .legendtext").all_text_contents()
    assert legend == [f"GET /circuits/<id> {q}" for q in ("p50", "p95", "p99")]  # as text
    # another service forgets the operation
    page.select_option("form select[name=service]", "preview")
    assert page.input_value("#red-operation") == ""


def test_charts_follow_the_theme(page: Page, server: ViewerServer, store: SpanStore) -> None:
    """plotly draws its own background: the charts turn dark with the page, and back."""
    cross_service_traffic(store, time.time_ns() // MS)
    page.emulate_media(color_scheme="light")
    page.goto(f"{server.url}/metrics?service=circuits&window=1h")
    page.wait_for_function("() => document.body.dataset.redReady === '1'", timeout=30_000)
    paper = "document.getElementById('red-rate')._fullLayout.paper_bgcolor"
    font = "document.getElementById('red-rate')._fullLayout.font.color"
    assert page.evaluate(paper) == "rgb(255, 255, 255)"
    page.click("#theme-button")  # auto -> light
    page.click("#theme-button")  # light -> dark
    page.wait_for_function(f"() => {paper} === 'rgb(21, 25, 30)'")  # the dark theme's --bg
    assert page.evaluate(font) == "rgb(230, 232, 235)"
    # a page drawn in the dark theme starts dark
    page.goto(f"{server.url}/map?window=1h")
    page.wait_for_function("() => document.body.dataset.mapReady === '1'", timeout=30_000)
    assert page.evaluate("document.getElementById('map')._fullLayout.paper_bgcolor") == (
        "rgb(21, 25, 30)"
    )
    page.click("#theme-button")  # dark -> auto: the system's light
    page.wait_for_function(
        "() => document.getElementById('map')._fullLayout.paper_bgcolor === 'rgb(255, 255, 255)'"
    )
