"""The viewer's pages in a real browser: Debian's Chromium driven by Playwright.

Every test's page records each request it makes and fails on one to any origin but
the viewer's, and on any console error (Content-Security-Policy violations included).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from cvtrace.store import SpanStore
from tests.browser import READY, Recorder
from tests.viewer.support import (
    T0_NS,
    SpanSpec,
    ViewerServer,
    make_request,
    new_trace_id,
    simple_trace,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
ROW_PX = 24


def open_trace(page: Page, server: ViewerServer, trace_id: bytes, query: str = "") -> None:
    page.goto(f"{server.url}/trace/{trace_id.hex()}{query}")
    page.wait_for_function(READY, timeout=60_000)
    assert page.locator("text=Cannot draw").count() == 0
    assert page.locator(".wf-row[data-row]").count() > 0  # the rows in view drew


def row(page: Page, index: int) -> Any:
    return page.locator(f'.wf-row[data-row="{index}"]')


def view(page: Page) -> list[float]:
    """The time in view, ms since the trace's start."""
    text = page.get_attribute("#waterfall", "data-view") or ""
    return [float(x) for x in text.split(",")]


def first_row(page: Page) -> int:
    return int(page.get_attribute("#waterfall", "data-first-row") or "-1")


def shown(page: Page) -> int:
    return int(page.get_attribute("#waterfall", "data-shown") or "-1")


def center(page: Page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def fan_trace(count: int, fanout: int = 4, errors: tuple[int, ...] = ()) -> list[SpanSpec]:
    """A trace of ``count`` spans: span i's parent is span (i - 1) // fanout."""
    trace_id = new_trace_id()
    specs: list[SpanSpec] = []
    for i in range(count):
        parent = specs[(i - 1) // fanout] if i else None
        specs.append(
            SpanSpec(
                f"op {i}",
                trace_id,
                parent_span_id=parent.span_id if parent else b"",
                start_ns=T0_NS + i * 1000,
                duration_ns=max(1000, (count - i) * 1000),
                service=f"svc{i % 3}",
                error=i in errors,
            )
        )
    return specs


def write(store: SpanStore, specs: list[SpanSpec]) -> None:
    for i in range(0, len(specs), 5000):
        store.write_request(make_request(specs[i : i + 5000]))


# -- the trace page: reading a span ------------------------------------------------------


def test_hover_and_click_anywhere_on_a_bar(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = simple_trace("web", child_service="db", children=3)
    specs[2].attrs = {"db.query.text": "SELECT * FROM circuits WHERE id = ?"}
    store.write_request(make_request(specs))
    open_trace(page, server, specs[0].trace_id)
    assert page.locator("#root-name").inner_text() == "GET /"
    assert page.locator("#depth").inner_text() == "2"
    assert page.locator("#tree-warnings").is_hidden()
    # the hover anywhere on the bar: the far end of the root's bar
    bar = row(page, 0).locator(".wf-bar").bounding_box()
    assert bar is not None
    page.mouse.move(bar["x"] + bar["width"] - 3, bar["y"] + bar["height"] / 2)
    page.wait_for_selector(".tip:not([hidden])")
    assert page.locator(".tip b").inner_text() == "GET /"
    # the key attributes come apart, for the rows hovered
    bar = row(page, 2).locator(".wf-bar").bounding_box()
    assert bar is not None
    page.mouse.move(bar["x"] + bar["width"] - 1, bar["y"] + 2)
    page.wait_for_function(
        "() => document.querySelector('.tip').textContent.includes("
        "'SELECT * FROM circuits WHERE id = ?')"
    )
    tip = page.locator(".tip").inner_text()
    assert "child 1" in tip
    assert "db" in tip
    assert "duration" in tip
    # a click on the bar's end opens its details
    page.mouse.click(bar["x"] + bar["width"] - 1, bar["y"] + bar["height"] - 1)
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'child 1'")
    details = page.locator("#details").inner_text()
    assert "SELECT * FROM circuits WHERE id = ?" in details
    assert specs[2].span_id.hex() in page.url  # the address is now a deep link
    assert "sel" in (row(page, 2).get_attribute("class") or "")
    # a click on the name, or on the empty part of the row, selects too
    row(page, 0).locator(".wf-name").click()
    page.wait_for_function("() => document.querySelector('#details h2').textContent === 'GET /'")
    track = row(page, 3).locator(".wf-track").bounding_box()
    assert track is not None
    page.mouse.click(track["x"] + 2, track["y"] + track["height"] / 2)
    page.wait_for_function("() => document.querySelector('#details h2').textContent === 'child 2'")


def test_bars_carry_durations_events_and_error_marks(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=10_000_000, service="web")
    failing = SpanSpec(
        "failing",
        trace_id,
        parent_span_id=root.span_id,
        start_ns=T0_NS + 1_000_000,
        duration_ns=4_000_000,
        error=True,
        events=[("exception", T0_NS + 3_000_000, {}), ("retry", T0_NS + 2_000_000, {})],
    )
    early = SpanSpec("early", trace_id, parent_span_id=root.span_id, start_ns=T0_NS - 500_000)
    lost = SpanSpec("lost", trace_id, parent_span_id=b"\x07" * 8, start_ns=T0_NS + 1)
    store.write_request(make_request([root, failing, early, lost]))
    open_trace(page, server, trace_id)
    # tree order: root, then its children by start (early, failing), then the orphan
    assert [row(page, i).locator(".wf-dur").inner_text() for i in range(4)] == [
        "10ms",
        "1ms",
        "4ms",
        "1ms",
    ]
    assert row(page, 0).locator(".wf-name").inner_text() == "root"
    # events are marks on their bar, at their time; the exception in the errors' red
    marks = row(page, 2).locator(".wf-mark")
    assert marks.count() == 2
    bar = row(page, 2).locator(".wf-bar").bounding_box()
    exception = row(page, 2).locator(".wf-mark.exc").bounding_box()
    assert bar is not None
    assert exception is not None
    assert abs(exception["x"] + 1 - (bar["x"] + bar["width"] / 2)) < 3  # the middle: 2 of 4 ms
    # the error row is marked in the names too; orphan and clock skew have their icons
    assert "err" in (row(page, 2).locator(".wf-label").get_attribute("class") or "")
    assert row(page, 2).locator(".i-error").is_visible()
    assert row(page, 1).locator(".i-clock").is_visible()  # early: starts before its parent
    assert row(page, 3).locator(".i-warn").is_visible()  # lost: its parent is missing
    assert not row(page, 0).locator(".i-error").is_visible()
    # the marks are drawn (SVG), not font glyphs that Debian's fonts may lack
    size = page.evaluate(
        """() => {
            const use = document.querySelector('.wf-row[data-row="1"] .i-clock use');
            const box = use.getBBox();
            return [box.width, box.height, use.getAttribute('href')];
        }"""
    )
    assert size[0] > 5
    assert size[1] > 5
    assert size[2] == "#i-clock"
    warnings = page.locator("#tree-warnings").inner_text()
    assert "1 span(s) whose parent is missing" in warnings
    assert "1 span(s) outside their parent's time" in warnings
    assert page.locator("#tree-warnings svg.icon use[href='#i-clock']").count() == 1
    # the hover says why
    row(page, 2).locator(".wf-name").hover()
    page.wait_for_function("() => document.querySelector('.tip').textContent.includes('boom')")
    row(page, 3).locator(".wf-name").hover()
    page.wait_for_function(
        "() => document.querySelector('.tip').textContent.includes('parent is not in this trace')"
    )


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
    page.locator("#durations circle").hover()
    assert HOSTILE in page.locator(".tip").inner_text()
    open_trace(page, server, trace_id)
    assert page.locator("#root-name").inner_text() == HOSTILE
    assert row(page, 0).locator(".wf-name").inner_text() == HOSTILE
    assert HOSTILE in page.locator(".wf-legend").inner_text()
    row(page, 0).locator(".wf-name").hover()
    page.wait_for_function(
        "() => document.querySelector('.tip').textContent.includes('http.route')"
    )
    assert page.locator(".tip").inner_text().count(HOSTILE) >= 2
    row(page, 0).click()
    page.wait_for_selector("#details h2.span-name")
    assert page.locator("#details h2").inner_text() == HOSTILE
    assert page.locator("#details").inner_text().count(HOSTILE) >= 5
    page.fill("#span-find", "script")
    page.wait_for_function("() => document.querySelector('.wf-row.match') !== null")
    assert page.evaluate("window.pwned") is None
    assert page.locator("img").count() == 0


# -- the trace page: moving around ---------------------------------------------------------


def test_wheel_scrolls_the_spans_and_never_zooms(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = fan_trace(400)
    write(store, specs)
    open_trace(page, server, specs[0].trace_id)
    before = view(page)
    assert first_row(page) == 0
    x, y = center(page, ".wf-scroller")
    page.mouse.move(x, y)
    for _ in range(5):
        page.mouse.wheel(0, 240)
    page.wait_for_function(
        "() => Number(document.getElementById('waterfall').dataset.firstRow) >= 40"
    )
    assert view(page) == before  # the time axis did not move
    scrolled = first_row(page)
    # the wheel over the overview and the ruler scrolls the spans too
    x, y = center(page, ".wf-minimap")
    page.mouse.move(x, y)
    page.mouse.wheel(0, 480)
    page.wait_for_function(
        f"() => Number(document.getElementById('waterfall').dataset.firstRow) > {scrolled}"
    )
    assert view(page) == before
    # rows in view are drawn, not all 400
    assert page.locator(".wf-row[data-row]").count() < 120


def test_zoom_is_explicit(page: Page, server: ViewerServer, store: SpanStore) -> None:
    specs = fan_trace(50)
    write(store, specs)
    open_trace(page, server, specs[0].trace_id)
    whole = view(page)
    assert whole[0] == 0
    # drag across the ruler: zoom to that time
    ruler = page.locator(".wf-ruler-track").bounding_box()
    assert ruler is not None
    y = ruler["y"] + ruler["height"] / 2
    page.mouse.move(ruler["x"] + ruler["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(ruler["x"] + ruler["width"] * 0.5, y, steps=5)
    page.mouse.up()
    zoomed = view(page)
    assert zoomed[0] == pytest.approx(whole[1] * 0.25, rel=0.05)
    assert zoomed[1] == pytest.approx(whole[1] * 0.5, rel=0.05)
    assert "\u2013" in page.locator(".wf-toolbar").inner_text()  # the time in view, from - to
    # the ruler stays at the top when the spans scroll
    top = page.locator(".wf-ruler").bounding_box()
    page.locator(".wf-scroller").evaluate("s => s.scrollTop = 400")
    assert page.locator(".wf-ruler").bounding_box() == top
    # double-click: the whole trace again; buttons and keys zoom too
    page.mouse.dblclick(ruler["x"] + 10, y)
    assert view(page) == whole
    page.click(".zoom-in")
    assert view(page)[1] - view(page)[0] == pytest.approx(whole[1] / 2)
    page.click(".zoom-out")
    assert view(page) == whole
    page.locator("#waterfall").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert view(page)[1] - view(page)[0] == pytest.approx(whole[1] / 4)
    page.keyboard.press("0")
    assert view(page) == whole


def test_minimap_window_moves_and_zooms_the_view(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = fan_trace(1000)
    write(store, specs)
    open_trace(page, server, specs[0].trace_id)
    whole = view(page)
    window = page.locator(".wf-window").bounding_box()
    assert window is not None
    # drag the window down: the spans scroll
    x, y = window["x"] + window["width"] / 2, window["y"] + max(2, window["height"] / 2)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + 20, steps=4)
    page.mouse.up()
    page.wait_for_function(
        "() => Number(document.getElementById('waterfall').dataset.firstRow) > 200"
    )
    moved = first_row(page)
    after = page.locator(".wf-window").bounding_box()
    assert after is not None
    assert after["y"] > window["y"] + 15
    # drag its right edge left: the time axis zooms
    right = page.locator(".wf-handle.right").bounding_box()
    assert right is not None
    hx, hy = right["x"] + right["width"] / 2, right["y"] + right["height"] / 2
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(hx - window["width"] / 2, hy, steps=4)
    page.mouse.up()
    zoomed = view(page)
    assert zoomed[0] == whole[0]
    assert zoomed[1] == pytest.approx(whole[1] / 2, rel=0.05)
    # a click beside the window jumps there
    mini = page.locator(".wf-minimap").bounding_box()
    assert mini is not None
    page.mouse.click(mini["x"] + mini["width"] * 0.9, mini["y"] + 2)
    page.wait_for_function(
        "() => Number(document.getElementById('waterfall').dataset.firstRow) < 50"
    )
    assert view(page)[0] > zoomed[0]  # and centred the zoomed time there
    assert moved > 200


def test_collapse_in_place_without_navigation(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = fan_trace(341)  # 4-ary: 1 + 4 + 16 + 64 + 256 spans, depths 0..4
    write(store, specs)
    open_trace(page, server, specs[0].trace_id)
    page.evaluate("window.__samePage = true")
    url = page.url
    assert shown(page) == 341
    assert row(page, 1).locator(".wf-chev").get_attribute("aria-expanded") == "true"
    # the tree: guides deeper for deeper rows
    widths = [row(page, i).locator(".wf-guides").bounding_box()["width"] for i in (0, 1, 2, 3)]
    assert widths[0] == 0
    assert 0 < widths[1] < widths[2] < widths[3]
    row(page, 1).locator(".wf-chev").click()  # op 1: 1 + 4 + 16 + 64 = 85 spans
    assert shown(page) == 341 - 84
    assert row(page, 1).locator(".wf-hidden").inner_text() == "+84"
    assert row(page, 1).locator(".wf-chev").get_attribute("aria-expanded") == "false"
    assert row(page, 2).count() == 0  # its child is hidden
    assert "257 of 341 spans shown" in page.locator(".wf-toolbar").inner_text()
    assert page.evaluate("window.__samePage") is True  # no reload
    assert page.url == f"{url}?collapse={specs[1].span_id.hex()}"  # the URL says what is folded
    assert len(page.evaluate("performance.getEntriesByType('navigation')")) == 1
    row(page, 1).locator(".wf-chev").click()
    assert shown(page) == 341
    assert page.url == url
    # collapse to a depth, expand all
    page.select_option("#collapse-depth", "2")  # the root and its children
    assert shown(page) == 5
    assert row(page, 0).locator(".wf-hidden").count() == 1
    assert row(page, 0).locator(".wf-hidden").is_hidden()
    assert row(page, 86).locator(".wf-hidden").inner_text() == "+84"  # op 2, after op 1's 85
    page.click(".expand-all")
    assert shown(page) == 341
    # from the details panel too: op 5 (row 2) has 4 + 16 spans below it
    row(page, 2).click()
    page.wait_for_selector("#details .toggle-subtree")
    page.click("#details .toggle-subtree")
    assert shown(page) == 341 - 20
    page.wait_for_function(
        "() => document.querySelector('#details .toggle-subtree').textContent.includes('20 hidden')"
    )
    assert page.evaluate("window.__samePage") is True


def test_keyboard(page: Page, server: ViewerServer, store: SpanStore) -> None:
    specs = fan_trace(21, errors=(7, 15))
    write(store, specs)
    open_trace(page, server, specs[0].trace_id)
    selected = "() => document.getElementById('waterfall').dataset.selected"
    ids = [s.span_id.hex() for s in specs]
    order = page.evaluate(
        "Array.from(document.querySelectorAll('.wf-row[data-row]'))"
        ".sort((a, b) => a.dataset.row - b.dataset.row)"
        ".map(r => r.querySelector('.wf-name').textContent)"
    )
    page.keyboard.press("j")
    assert page.evaluate(selected) == ids[0]
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("k")
    assert page.evaluate(selected) == ids[int(order[1].split()[1])]
    assert page.locator("#details h2").count() == 0  # moving does not open details
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => document.querySelector('#details h2')?.textContent === '{order[1]}'"
    )
    # with the details open, they follow the selection
    page.keyboard.press("j")
    page.wait_for_function(
        f"() => document.querySelector('#details h2')?.textContent === '{order[2]}'"
    )
    page.keyboard.press("k")
    page.keyboard.press("[")  # op 1 hides its children, op 5 to op 8
    assert shown(page) == 21 - 4
    page.keyboard.press("]")
    assert shown(page) == 21
    page.keyboard.press("ArrowLeft")
    assert shown(page) == 21 - 4
    page.keyboard.press("ArrowRight")
    assert shown(page) == 21
    page.keyboard.press("e")
    page.wait_for_function(f"() => ({selected})() === '{ids[7]}'")
    assert "error 1 of 2" in page.locator(".wf-toolbar").inner_text()
    page.keyboard.press("e")
    page.wait_for_function(f"() => ({selected})() === '{ids[15]}'")
    page.keyboard.press("E")
    page.wait_for_function(f"() => ({selected})() === '{ids[7]}'")
    page.keyboard.press("Escape")
    assert page.locator("#details").is_hidden()
    page.keyboard.press("Enter")
    assert page.locator("#details").is_visible()
    # ? lists the keys; Esc closes it
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    assert "next / previous error" in page.locator("#help").inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#help").is_hidden()
    # / finds spans; typing there is not a command
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "span-find"
    page.keyboard.type("op 12 [e")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.wait_for_function("() => document.querySelectorAll('.wf-row.match').length === 1")
    assert shown(page) == 21  # "[" and "e" typed into the box did nothing else
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => ({selected})() === '{ids[12]}'")
    page.keyboard.press("Escape")  # leaves the box and clears the find
    assert page.locator(".wf-row.match").count() == 0
    assert page.evaluate("document.activeElement.id") != "span-find"
    page.keyboard.press("Escape")  # closes the details
    # elsewhere, / is the trace-id box
    page.goto(server.url + "/")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "trace-id-box"


def test_next_error_and_slowest_reveal_hidden_spans(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=100_000_000)
    busy = SpanSpec("busy", trace_id, parent_span_id=root.span_id, duration_ns=90_000_000)
    deep = SpanSpec(
        "deep", trace_id, parent_span_id=busy.span_id, start_ns=T0_NS + 1, duration_ns=80_000_000
    )
    bad = SpanSpec("bad", trace_id, parent_span_id=deep.span_id, start_ns=T0_NS + 2, error=True)
    store.write_request(make_request([root, busy, deep, bad]))
    open_trace(page, server, trace_id, f"?collapse={root.span_id.hex()}")
    assert shown(page) == 1
    assert row(page, 0).locator(".wf-hidden").inner_text() == "+3"
    page.click(".next-error")
    page.wait_for_function(
        f"() => document.querySelector('#details')?.dataset.spanId === '{bad.span_id.hex()}'"
    )
    assert shown(page) == 4  # its ancestors opened
    assert "sel" in (row(page, 3).get_attribute("class") or "")
    page.select_option("#collapse-depth", "1")
    assert shown(page) == 1
    # slowest: the longest self time, "deep" (80 ms less 1 ms), not the root
    page.click(".slowest")
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'deep'")
    assert shown(page) == 4  # the root opened again
    assert "sel" in (row(page, 2).get_attribute("class") or "")


def test_the_url_keeps_the_folded_tree_through_a_reload(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = fan_trace(341)  # depths 0..4
    write(store, specs)
    ids = [spec.span_id.hex() for spec in specs]
    open_trace(page, server, specs[0].trace_id)
    page.select_option("#collapse-depth", "3")  # 1 + 4 + 16 rows, the 16 folded
    assert shown(page) == 21
    assert page.url.endswith("?depth=3")
    row(page, 1).locator(".wf-chev").click()  # fold op 1 (open at depth 3): its 4 children hide
    op_9 = row(page, 87)  # op 2's first child, after op 1's 85 rows in tree order
    op_9.locator(".wf-chev").click()  # ... and unfold op 9 (folded at depth 3): 4 + 16 show
    op_9.locator(".wf-name").click()
    assert shown(page) == 21 - 4 + 20
    expected = f"?span={ids[9]}&depth=3&collapse={ids[1]}&expand={ids[9]}"
    assert page.url.endswith(expected)
    page.reload()
    page.wait_for_function(READY)
    assert shown(page) == 37
    assert page.url.endswith(expected)
    assert page.locator(".wf-row.sel .wf-name").inner_text() == "op 9"
    assert row(page, 1).locator(".wf-chev").get_attribute("aria-expanded") == "false"
    page.click(".expand-all")
    assert shown(page) == 341
    assert page.url.endswith(f"?span={ids[9]}")


def test_deep_link_opens_the_span(page: Page, server: ViewerServer, store: SpanStore) -> None:
    specs = fan_trace(3000)
    write(store, specs)
    target = specs[2900]
    open_trace(page, server, specs[0].trace_id, f"?span={target.span_id.hex()}")
    page.wait_for_function(
        f"() => document.querySelector('#details h2')?.textContent === '{target.name}'"
    )
    assert page.locator(".wf-row.sel .wf-name").inner_text() == target.name
    assert page.locator(".wf-row.sel").is_visible()


def test_any_row_of_100k_spans_is_reachable(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    """100,000 spans: the last row, the middle, a minimap jump; the page stays small."""
    specs = fan_trace(100_000, fanout=8)
    write(store, specs)
    page.set_default_timeout(120_000)
    open_trace(page, server, specs[0].trace_id)
    assert page.locator("#span-count").inner_text() == "100000"
    scroller = page.locator(".wf-scroller")
    scroller.evaluate("s => s.scrollTop = s.scrollHeight")
    page.wait_for_function(
        "() => Number(document.getElementById('waterfall').dataset.firstRow) > 99000"
    )
    names = page.locator(".wf-row[data-row] .wf-name").all_inner_texts()
    last = 0  # the last row in tree order: the last child of the last child of ...
    while 8 * last + 1 < len(specs):
        last = min(8 * last + 8, len(specs) - 1)
    assert specs[last].name in names
    assert page.evaluate("document.getElementsByTagName('*').length") < 3000
    assert page.locator(".wf-row").count() < 120
    # the middle, by the minimap
    mini = page.locator(".wf-minimap").bounding_box()
    assert mini is not None
    page.mouse.click(mini["x"] + mini["width"] / 2, mini["y"] + mini["height"] / 2)
    page.wait_for_function(
        "() => Math.abs(Number(document.getElementById('waterfall').dataset.firstRow) - 50000) < "
        "3000"
    )
    # a row down there answers a click
    target = row(page, first_row(page) + 5)
    name = target.locator(".wf-name").inner_text()
    target.click()
    page.wait_for_function(f"() => document.querySelector('#details h2')?.textContent === '{name}'")


# -- the details panel ------------------------------------------------------------------------


def test_details_keep_the_data_shape(
    recorder: tuple[BrowserContext, Recorder], page: Page, server: ViewerServer, store: SpanStore
) -> None:
    context, _ = recorder
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    stacktrace = (
        'Traceback (most recent call last):\n  File "app.py", line 3\n    boom()\nValueError: x'
    )
    other = simple_trace("web", children=1, root_name="GET /other")
    store.write_request(make_request(other))
    trace_id = new_trace_id()
    root = SpanSpec(
        "root",
        trace_id,
        duration_ns=10_000_000,
        attrs={
            "http.response.status_code_with_a_long_key_name": 200,
            "db.query.text": "SELECT a,\n       b\n  FROM t\n WHERE x = ?",
            "payload": '{"a": [1, 2], "b": {"c": "d"}}',
            "sentence": " ".join(["words"] * 80),
        },
    )
    kid = SpanSpec(
        "kid",
        trace_id,
        parent_span_id=root.span_id,
        start_ns=T0_NS + 2_000_000,
        events=[("exception", T0_NS + 2_500_000, {"exception.stacktrace": stacktrace})],
        links=[
            (other[0].trace_id, other[1].span_id, {}),
            (trace_id, root.span_id, {}),
            (new_trace_id(), b"\x05" * 8, {}),
        ],
    )
    store.write_request(make_request([root, kid]))
    open_trace(page, server, trace_id)
    row(page, 0).click()
    page.wait_for_selector("#details .attributes")
    attributes = page.locator("#details .attributes .kv")
    sql = attributes.filter(has_text="db.query.text").locator(".text")
    assert sql.evaluate("e => e.tagName") == "PRE"
    assert sql.inner_text() == "SELECT a,\n       b\n  FROM t\n WHERE x = ?"
    payload = attributes.filter(has_text="payload").locator(".text").inner_text()
    assert payload == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": {\n    "c": "d"\n  }\n}'
    # keys never break: one line however long
    key = attributes.filter(has_text="status_code_with").locator(".k")
    assert key.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
    box = key.bounding_box()
    assert box is not None
    assert box["height"] < 22
    # long text wraps at spaces, not inside words
    sentence = attributes.filter(has_text="sentence").locator(".text")
    style = sentence.evaluate(
        "e => [getComputedStyle(e).whiteSpace, getComputedStyle(e).wordBreak, "
        "getComputedStyle(e).overflowWrap]"
    )
    assert style == ["pre-wrap", "normal", "normal"]
    # copy: the value as stored (not the pretty form)
    attributes.filter(has_text="payload").locator("button.copy").click()
    page.wait_for_selector("#details .attributes button.copy.done")
    assert page.evaluate("navigator.clipboard.readText()") == '{"a": [1, 2], "b": {"c": "d"}}'
    # the kid: event time from the span's start, stack trace as it was, links
    row(page, 1).click()
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'kid'")
    assert page.locator("#details .event .offset").inner_text() == "+500µs"
    trace = page.locator("#details .event-attributes .text")
    assert trace.inner_text() == stacktrace
    assert "+2ms into the trace" in page.locator("#details").inner_text()
    links = page.locator("#details .span-link")
    assert links.count() == 3
    assert "not stored in this viewer" in links.nth(2).inner_text()
    # a link within the trace selects in place
    links.nth(1).locator("button.linklike").click()
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'root'")
    row(page, 1).click()
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'kid'")
    # a link to another stored trace opens it at the span
    with page.expect_navigation():
        page.locator("#details .span-link").first.locator("a").click()
    page.wait_for_function(READY)
    assert other[0].trace_id.hex() in page.url
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'child 0'")


# -- every page ------------------------------------------------------------------------------


def test_dark_mode_follows_the_system_and_the_toggle_sticks(
    browser: Browser, server: ViewerServer, store: SpanStore
) -> None:
    specs = simple_trace()
    store.write_request(make_request(specs))
    context = browser.new_context(color_scheme="dark")
    record = Recorder(context)
    try:
        page = context.new_page()
        background = "() => getComputedStyle(document.body).backgroundColor"
        page.goto(server.url + "/")
        assert page.evaluate(background) == "rgb(21, 25, 30)"
        assert page.locator("#theme-button").inner_text() == "Theme: auto"
        page.click("#theme-button")
        assert page.locator("#theme-button").inner_text() == "Theme: light"
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        page.goto(f"{server.url}/trace/{specs[0].trace_id.hex()}")  # sticks on other pages
        page.wait_for_function(READY)
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        page.click("#theme-button")
        assert page.evaluate(background) == "rgb(21, 25, 30)"
        page.reload()
        page.wait_for_function(READY)
        assert page.locator("#theme-button").inner_text() == "Theme: dark"
        assert page.evaluate(background) == "rgb(21, 25, 30)"
        page.click("#theme-button")  # auto: the system's again
        page.emulate_media(color_scheme="light")
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        assert record.errors == []
        assert record.elsewhere(server.url) == []
    finally:
        context.close()


def test_no_page_wider_than_the_window(
    browser: Browser, server: ViewerServer, store: SpanStore
) -> None:
    long = "a-service-with-a-very-long-name-" * 6
    specs = simple_trace(long, child_service=long + "2", root_name="GET /" + "segment/" * 40)
    store.write_request(make_request(specs))
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    record = Recorder(context)
    try:
        page = context.new_page()
        record.expected = ["/trace/abab", "/trace?id="]
        for path in (
            "/",
            f"/trace/{specs[0].trace_id.hex()}",
            f"/trace/{'ab' * 16}",
            "/trace?id=x",
        ):
            page.goto(server.url + path)
            if path.startswith("/trace/") and "ab" not in path:
                page.wait_for_function(READY)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, path
        page.goto(server.url + "/")
        link = page.locator("a.trace-link")
        assert link.get_attribute("title") == f"{long}: GET /" + "segment/" * 40
        assert link.evaluate("e => e.scrollWidth > e.clientWidth")  # cut, with the tooltip
        assert record.errors == []
    finally:
        context.close()


def test_not_found_page_and_trace_id_box(
    recorder: tuple[BrowserContext, Recorder], page: Page, server: ViewerServer, store: SpanStore
) -> None:
    recorder[1].expected = ["/trace/abab", "/trace?id="]
    specs = simple_trace()
    store.write_request(make_request(specs))
    page.goto(f"{server.url}/trace/{'ab' * 16}")
    assert "not in this viewer's store" in page.locator("#not-found").inner_text()
    assert "flushed" in page.locator("#not-found").inner_text()
    # the heading wraps at 1400 px: all of it shows, none cut off with an ellipsis
    heading = page.locator("#not-found h1")
    assert heading.evaluate("(h) => h.scrollWidth <= h.clientWidth")
    assert heading.evaluate("(h) => getComputedStyle(h).textOverflow") != "ellipsis"
    assert f"Trace {'ab' * 16} is not in this viewer's store" in heading.inner_text()
    page.fill("#trace-id-box", specs[0].trace_id.hex().upper())
    with page.expect_navigation():
        page.press("#trace-id-box", "Enter")
    page.wait_for_function(READY)
    assert page.url.endswith(f"/trace/{specs[0].trace_id.hex()}")
    page.fill("#trace-id-box", "not a trace")
    with page.expect_navigation():
        page.press("#trace-id-box", "Enter")
    assert "is not a trace id" in page.locator("#not-found").inner_text()
    with page.expect_navigation():
        page.click("#search-link")
    assert page.locator("#results").count() == 1


# -- the search page ------------------------------------------------------------------------------


def test_search_scatter_and_operation_list(
    page: Page, server: ViewerServer, store: SpanStore
) -> None:
    specs = simple_trace("web", root_name="GET /only")
    store.write_request(make_request(specs))
    store.write_request(make_request(simple_trace("api", root_name="POST /other")))
    page.goto(server.url + "/")
    assert page.locator("#operation-select").is_disabled()
    page.select_option("#service-select", "web")
    page.wait_for_function(
        "() => document.querySelectorAll('#operation-select option').length === 4"
    )
    assert page.locator("#operation-select").is_enabled()
    options = page.locator("#operation-select option").all_inner_texts()
    assert options == ["all operations", "GET /only", "child 0", "child 1"]
    page.select_option("#operation-select", "GET /only")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.locator("a.trace-link").count() == 1
    # one result: the axes have room around it
    point = page.locator("#durations circle")
    assert point.count() == 1
    plot = page.locator("#durations svg").bounding_box()
    dot = point.bounding_box()
    assert plot is not None
    assert dot is not None
    assert plot["x"] + 100 < dot["x"] < plot["x"] + plot["width"] - 100
    assert plot["y"] < dot["y"] < plot["y"] + plot["height"] - 30
    assert page.locator("#durations .axis text").count() >= 5
    # the log axis on demand
    page.check("#log-scale")
    assert page.get_attribute("#durations", "data-drawn") == "log"
    point = page.locator("#durations circle")
    point.hover()
    assert "GET /only" in page.locator(".tip").inner_text()
    with page.expect_navigation():
        point.click()
    page.wait_for_function(READY)
    assert specs[0].trace_id.hex() in page.url


def test_sorting_and_the_limit(
    recorder: tuple[BrowserContext, Recorder], page: Page, server: ViewerServer, store: SpanStore
) -> None:
    recorder[1].expected = ["min_duration=abc"]
    for i, duration_ms in enumerate([5, 50, 20]):
        spans = simple_trace("web", start_ns=T0_NS + i * 10**9, root_name=f"t{i}")
        spans[0].duration_ns = duration_ms * 1_000_000
        store.write_request(make_request(spans))
    page.goto(server.url + "/?limit=2")
    names = page.locator("a.trace-link").all_inner_texts()
    assert names == ["web: t2", "web: t1"]
    assert "2 traces shown" in page.locator("#result-count").inner_text()
    with page.expect_navigation():
        page.select_option("#sort-select", "longest")
    assert page.locator("a.trace-link").all_inner_texts() == ["web: t1", "web: t2"]
    with page.expect_navigation():
        page.click("th a.sort:text('Duration')")  # longest -> shortest
    assert page.locator("a.trace-link").all_inner_texts() == ["web: t2", "web: t1"]
    assert "limit=2" in page.url
    page.goto(server.url + "/?min_duration=abc")
    assert "min duration: 'abc' is not a duration" in page.locator("#search-error").inner_text()
    assert page.locator("#results").count() == 0


def test_nothing_leaves_for_another_origin(
    browser: Browser, server: ViewerServer, store: SpanStore
) -> None:
    """Every page, every button: only the viewer's origin is asked for anything."""
    specs = simple_trace("web", child_service="db", children=3, error=True)
    specs[1].events = [("exception", T0_NS + 2_000_000, {"exception.message": "x"})]
    specs[2].links = [(new_trace_id(), b"\x01" * 8, {})]
    store.write_request(make_request(specs))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    record = Recorder(context)
    record.expected = ["/trace/abab", "/no/such/page"]
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.locator("#durations circle").hover()
        page.click("#keys-button")
        page.click("#help-close")
        page.click("#theme-button")
        page.goto(f"{server.url}/trace/{specs[0].trace_id.hex()}")
        page.wait_for_function(READY)
        for selector in (
            ".next-error",
            ".slowest",
            ".zoom-in",
            ".zoom-out",
            ".zoom-reset",
            ".expand-all",
        ):
            page.click(selector)
        for i in range(4):
            row(page, i).click()
            page.wait_for_function(
                "() => document.getElementById('details').dataset.spanId === "
                f"'{specs[i].span_id.hex()}'"
            )
            page.locator("#details button.copy").first.click()
            if page.locator("#details .toggle-subtree").count():
                page.click("#details .toggle-subtree")  # collapse, then expand again
                page.wait_for_function(
                    "() => document.querySelector('#details .toggle-subtree').textContent"
                    ".startsWith('Expand')"
                )
                page.click("#details .toggle-subtree")
        row(page, 0).locator(".wf-chev").click()
        page.goto(f"{server.url}/trace/{'ab' * 16}")
        page.goto(f"{server.url}/no/such/page")
        page.wait_for_load_state("networkidle")
        assert len(context.pages) == 1  # no window opened
        assert record.errors == []
        assert record.elsewhere(server.url) == []
        assert len(record.urls) > 15
    finally:
        context.close()
    # the recorder itself sees a request elsewhere (so the checks above can fail)
    context = browser.new_context()
    record = Recorder(context)
    try:
        page = context.new_page()
        page.set_content(f'<img src="{server.url.replace("127.0.0.1", "localhost")}/x.png">')
        page.wait_for_load_state("networkidle")
        assert record.elsewhere(server.url) != []
    finally:
        context.close()


def test_the_policy_blocks_other_origins(
    browser: Browser, server: ViewerServer, store: SpanStore
) -> None:
    """Even a script in the page could not send data elsewhere: fetch, form, frame."""
    specs = simple_trace()
    store.write_request(make_request(specs))
    context = browser.new_context()
    record = Recorder(context)
    elsewhere = server.url.replace("127.0.0.1", "localhost")
    try:
        page = context.new_page()
        page.goto(f"{server.url}/trace/{specs[0].trace_id.hex()}")
        page.wait_for_function(READY)
        refused = page.evaluate(
            """async (target) => {
                try { await fetch(target + '/api/services'); return false; }
                catch (err) { return true; }
            }""",
            elsewhere,
        )
        assert refused
        page.evaluate(
            """(target) => {
                const frame = document.createElement('iframe');
                frame.src = target + '/';
                document.body.appendChild(frame);
                const form = document.createElement('form');
                form.action = target + '/';
                form.method = 'post';
                document.body.appendChild(form);
                form.submit();
            }""",
            elsewhere,
        )
        page.wait_for_timeout(500)
        assert record.elsewhere(server.url) == []
        assert sum("Content Security Policy" in e for e in record.errors) >= 3
    finally:
        context.close()


def test_ten_thousand_spans_interactive(page: Page, server: ViewerServer, store: SpanStore) -> None:
    """A 10,000-span trace draws and answers a click."""
    specs = fan_trace(10_000)
    write(store, specs)
    open_trace(page, server, specs[0].trace_id)
    row(page, 3).click()
    # the fourth row in tree order: op 0, its first child op 1, then op 5, then op 21
    page.wait_for_function("() => document.querySelector('#details h2')?.textContent === 'op 21'")
    assert page.locator("#span-count").inner_text() == "10000"
    # how fast: `python -m bench bigtrace` (BENCHMARKS.md), not a timed test
