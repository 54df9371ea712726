"""The trace page's analyses in a real browser (Debian's Chromium): the critical-path
toggle, self time, the statistics and flame graph tabs, the in-trace search, "compare
with…", and the search page's "same shape" link."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from cvtrace.store import SpanStore
from tests.viewer.support import SpanSpec, ViewerServer, make_request
from tests.viewer.test_analyses_api import request_trace
from tests.viewer.test_browser import open_trace

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def demo_like(store: SpanStore, queries: int = 12, preview_ms: int = 20) -> list[SpanSpec]:
    """A request with an N+1 of ``queries`` SELECTs, then a call to preview (slow)."""
    specs = request_trace(queries, preview_ms=preview_ms)
    for i, spec in enumerate(specs):
        if spec.name == "SELECT circuits":
            spec.attrs = {"db.query.text": f"SELECT * FROM circuits WHERE id = {i}"}
    specs[-1].attrs = {"http.route": "/render", "preview.format": "svg"}
    store.write_request(make_request(specs))
    return specs


def rows_of(page: Page, cls: str) -> list[int]:
    found: list[int] = page.evaluate(
        f"Array.from(document.querySelectorAll('.wf-row.{cls}[data-row]'))"
        ".map((r) => Number(r.dataset.row)).sort((a, b) => a - b)"
    )
    return found


def test_critical_path_toggle_highlights_the_path_and_dims_the_rest(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = demo_like(store)
    open_trace(page, server, specs[0].trace_id)
    assert page.locator(".cp-seg").count() == 0
    page.click(".critical-path-toggle")
    page.wait_for_function(
        "() => document.getElementById('waterfall').dataset.criticalPathReady === '1'"
    )
    assert page.get_attribute(".critical-path-toggle", "aria-pressed") == "true"
    names = page.evaluate(
        "Array.from(document.querySelectorAll('.wf-row.cp-path')).map((r) => "
        "r.querySelector('.wf-name').textContent)"
    )
    # the root, every query (back to back), the call and preview's span
    assert sorted(set(names)) == ["GET /circuits/<id>", "POST", "POST /render", "SELECT circuits"]
    assert "POST /render" in names
    assert page.locator(".wf-row.cp-dim").count() == 0  # every span of this one is on it
    segs = page.locator('.wf-row.cp-path:has(.wf-name:text-is("POST /render")) .cp-seg')
    assert segs.count() >= 1
    page.click(".critical-path-toggle")
    assert page.get_attribute(".critical-path-toggle", "aria-pressed") == "false"
    assert page.locator(".wf-row.cp-path").count() == 0
    assert page.evaluate(
        "Array.from(document.querySelectorAll('.cp-seg')).every((s) => s.style.display === 'none')"
    )


def test_critical_path_dims_parallel_work_off_the_path(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = request_trace(0)
    root = specs[0]
    root.duration_ns = 10_000_000
    short = SpanSpec(
        "short",
        root.trace_id,
        parent_span_id=root.span_id,
        start_ns=root.start_ns + 1_000_000,
        duration_ns=2_000_000,
        service="circuits",
    )
    long = SpanSpec(
        "long",
        root.trace_id,
        parent_span_id=root.span_id,
        start_ns=root.start_ns + 1_000_000,
        duration_ns=8_000_000,
        service="circuits",
    )
    store.write_request(make_request([root, short, long]))
    open_trace(page, server, root.trace_id)
    page.click(".critical-path-toggle")
    page.wait_for_function(
        "() => document.getElementById('waterfall').dataset.criticalPathReady === '1'"
    )
    dim = page.evaluate(
        "Array.from(document.querySelectorAll('.wf-row.cp-dim'))"
        ".map((r) => r.querySelector('.wf-name').textContent)"
    )
    assert dim == ["short"]
    assert page.locator('.wf-row.cp-path:has(.wf-name:text-is("long"))').count() == 1


def test_self_time_on_hover_and_in_details(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = demo_like(store, queries=4, preview_ms=0)
    open_trace(page, server, specs[0].trace_id)
    # the root: 7 ms, of which 4 ms of queries: 3 ms of its own, 43% of the trace
    page.hover('.wf-row[data-row="0"] .wf-bar')
    tip = page.locator(".tip:not([hidden])").first
    tip.wait_for()
    assert "self time3ms (43% of the trace)" in tip.inner_text().replace("\n", "")
    page.click('.wf-row[data-row="0"] .wf-name')
    page.wait_for_selector("#details .facts-list")
    facts = page.locator("#details .facts-list").inner_text()
    assert "self time" in facts
    assert "3ms (43% of the trace)" in facts


def test_statistics_tab_groups_and_sorts(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = demo_like(store, queries=12)
    open_trace(page, server, specs[0].trace_id)
    page.click("#tab-stats")
    page.wait_for_function("() => document.getElementById('trace-stats').dataset.ready === '1'")
    assert page.is_hidden("#waterfall")
    first = page.locator("#stats-table tbody tr").first.locator("td")
    # the N+1: one row, its count and total
    assert first.nth(1).inner_text() == "SELECT circuits"
    assert first.nth(2).inner_text() == "12"
    assert first.nth(3).inner_text() == "12ms"
    assert page.locator("#stats-table tbody tr").count() == 4
    # sort by total: the root first; again: ascending
    page.click('#stats-table th[data-key="totalDuration"]')
    assert (
        page.locator("#stats-table tbody tr").first.locator("td").nth(1).inner_text()
        == "GET /circuits/<id>"
    )
    page.click('#stats-table th[data-key="totalDuration"]')
    assert page.get_attribute("#trace-stats", "data-sort") == "totalDuration:asc"
    # by service: circuits and preview
    page.select_option("#stats-group", "service")
    services = page.locator("#stats-table tbody tr td.svc-cell").all_inner_texts()
    assert sorted(s.split(" (")[0] for s in services) == ["circuits", "preview"]
    # the address names the tab: a reload opens it
    assert page.url.endswith("#statistics")
    page.reload()
    page.wait_for_function("() => document.getElementById('trace-stats').dataset.ready === '1'")
    assert page.is_visible("#stats-table")
    # an operation's link finds its spans in the waterfall
    page.click('#stats-table button.find-op:text-is("POST /render")')
    assert page.is_visible("#waterfall")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '1'")


def test_search_highlights_rows_and_minimap_next_and_previous(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = demo_like(store, queries=12)
    open_trace(page, server, specs[0].trace_id)
    before = page.evaluate("document.querySelector('.wf-minimap canvas').toDataURL()")
    # an attribute value (only in search.json)
    page.fill("#span-find", "where id = 3")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '1'")
    assert page.locator(".wf-row.match").count() == 1
    after = page.evaluate("document.querySelector('.wf-minimap canvas').toDataURL()")
    assert after != before  # the match is drawn on the overview too
    # an attribute key, with key=value
    page.fill("#span-find", "preview.format=svg")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '1'")
    assert rows_of(page, "match") == [
        int(page.evaluate("document.querySelector('.wf-row.match').dataset.row"))
    ]
    # a name: 12 matches; next and previous walk them, wrapping round
    page.fill("#span-find", "select")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '12'")
    page.click(".find-next")
    assert page.inner_text("#find-count") == "match 1 of 12"
    first = page.get_attribute("#waterfall", "data-selected")
    page.press("#span-find", "Enter")
    assert page.inner_text("#find-count") == "match 2 of 12"
    page.click(".find-prev")
    page.click(".find-prev")
    assert page.inner_text("#find-count") == "match 12 of 12"
    assert page.get_attribute("#waterfall", "data-selected") != first
    # filters: service, status, least duration
    page.fill("#span-find", "")
    page.select_option("#find-service", label="preview")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '1'")
    page.select_option("#find-service", "")
    page.fill("#find-min-duration", "15ms")
    # the root (35 ms), the call (20 ms) and preview's span (19.8 ms)
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '3'")
    page.fill("#find-min-duration", "")
    page.select_option("#find-status", "unset")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '15'")
    page.select_option("#find-status", "")
    # typed key by key (each key narrows the last matches), then backspaced
    page.fill("#span-find", "")
    page.type("#span-find", "where id = 1")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '4'")
    page.type("#span-find", "1")  # "= 11"
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '1'")
    page.press("#span-find", "Backspace")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '4'")
    # a span id's first digits: from the 4th, typed on, a span of the trace
    span_id = specs[5].span_id.hex()
    page.fill("#span-find", "")
    page.type("#span-find", span_id[:3])
    page.type("#span-find", span_id[3])
    page.wait_for_function(
        "() => Number(document.getElementById('waterfall').dataset.matches) >= 1"
    )
    assert span_id in page.evaluate(
        "Array.from(document.querySelectorAll('.wf-row.match')).map((r) => r.dataset.row)"
        ".map((r) => cvtrace.waterfall.spanIdAt(Number(r)))"
    )
    page.keyboard.press("Escape")  # leaves the box
    page.locator("#waterfall").focus()
    page.keyboard.press("Escape")  # clears the search
    assert page.locator(".wf-row.match").count() == 0


def test_flame_graph_merges_paths_and_zooms_on_click(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = demo_like(store, queries=12)
    open_trace(page, server, specs[0].trace_id)
    page.click("#tab-flame")
    page.wait_for_function("() => document.getElementById('flamegraph').dataset.ready === '1'")
    nodes: list[dict[str, Any]] = page.evaluate(
        "document.getElementById('flamegraph')._flame.nodes()"
    )
    assert {(n["operation"], n["count"]) for n in nodes} == {
        ("GET /circuits/<id>", 1),
        ("SELECT circuits", 12),
        ("POST", 1),
        ("POST /render", 1),
    }
    root = next(n for n in nodes if n["operation"] == "GET /circuits/<id>")
    call = next(n for n in nodes if n["operation"] == "POST")
    assert page.get_attribute("#flamegraph", "data-zoom") == str(root["id"])
    box = page.evaluate(f"document.getElementById('flamegraph')._flame.rectOf({call['id']})")
    whole = page.evaluate(f"document.getElementById('flamegraph')._flame.rectOf({root['id']})")
    assert box["w"] < whole["w"] * 0.7  # 20 ms of 35
    page.mouse.click(box["x"] + box["w"] / 2, box["y"] + 10)
    assert page.get_attribute("#flamegraph", "data-zoom") == str(call["id"])
    zoomed = page.evaluate(f"document.getElementById('flamegraph')._flame.rectOf({call['id']})")
    assert zoomed["w"] == pytest.approx(whole["w"], abs=1)
    # the trail above: its root, clicked, zooms out
    page.mouse.click(whole["x"] + 5, whole["y"] + 10)
    assert page.get_attribute("#flamegraph", "data-zoom") == str(root["id"])
    page.select_option("#flame-mode", "self")
    assert page.get_attribute("#flamegraph", "data-mode") == "self"


def test_compare_with_opens_the_comparison_with_this_trace_as_a(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    typical = demo_like(store, queries=2, preview_ms=3)
    slow = demo_like(store, queries=2, preview_ms=30)
    open_trace(page, server, slow[0].trace_id)
    page.click("#compare-with")
    page.wait_for_url(f"**/compare?a={slow[0].trace_id.hex()}")
    assert page.input_value('input[name="a"]') == slow[0].trace_id.hex()
    # the compare page offers the traces of the same shape as B
    link = page.locator(f'#same-shape a[href*="{typical[0].trace_id.hex()}"]')
    link.first.wait_for(timeout=20_000)


def test_same_shape_link_in_search_results(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    one = demo_like(store, queries=2, preview_ms=3)
    two = demo_like(store, queries=2, preview_ms=30)
    other = demo_like(store, queries=2, preview_ms=0)  # no call to preview: another shape
    page.goto(server.url + "/")
    page.click(f'tr:has(a[href$="{one[0].trace_id.hex()}"]) .same-shape')
    listed = page.locator(f'tr:has(a[href$="{one[0].trace_id.hex()}"]) + tr.shape-row')
    listed.locator("a").first.wait_for()
    hrefs = listed.locator("a.trace-link").evaluate_all("(links) => links.map((a) => a.href)")
    assert any(two[0].trace_id.hex() in h for h in hrefs)
    assert not any(other[0].trace_id.hex() in h for h in hrefs)
    compare = listed.locator("a.compare-link").first.get_attribute("href") or ""
    assert f"a={one[0].trace_id.hex()}" in compare
    assert f"b={two[0].trace_id.hex()}" in compare


def test_escape_in_the_search_box_clears_the_matches(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = demo_like(store, queries=12)
    open_trace(page, server, specs[0].trace_id)
    page.keyboard.press("/")
    page.keyboard.type("select")
    page.wait_for_function("() => document.getElementById('waterfall').dataset.matches === '12'")
    assert page.locator(".wf-row.match").count() > 0
    page.keyboard.press("Escape")
    assert page.input_value("#span-find") == ""
    assert page.evaluate("document.activeElement.id") != "span-find"
    assert page.inner_text("#find-count") == ""
    assert page.locator(".wf-row.match").count() == 0
    assert page.get_attribute("#waterfall", "data-matches") is None
