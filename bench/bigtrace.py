"""Benchmark 6: big traces (1,000 / 10,000 / 50,000 spans) in the viewer.

``cvtrace view`` serves a cached store holding one trace of each size.

- **Browser** (headless Debian Chromium via Playwright, plotly.js cached by a warm-up
  page as on a repeat visit), each round in a freshly started viewer, so the first
  view of each trace is cold on the server too. Measured with the page's own clock
  (``performance.now()``, zero at navigation start): the page's response end, the
  ``waterfall.json`` fetch (resource timing: request start to response end, i.e.
  the server building the figure, cold), the waterfall drawn (the page's
  ``data-waterfall-ready`` flag, set when ``Plotly.newPlot`` resolves; the moment is
  recorded by a MutationObserver), then how long a hover takes to show its label and
  a click on a row to show that span's details.
- **Server, warm**: then, over HTTP, ``GET /trace/<id>`` plus its ``waterfall.json``
  again (the viewer's trace cache is warm), and the figure's size.

Sizes interleave round by round.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from bench.common import Viewer, log, spread, table, verdict
from bench.spandata import big_trace_store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_10K_S = 2.0
LOAD_TIMEOUT_MS = 120_000

_OBSERVE_READY = """
(() => {
  const mark = () => {
    if (document.body && document.body.dataset.waterfallReady === '1' && !window.__benchReady) {
      window.__benchReady = performance.now();
    }
  };
  const start = () => {
    new MutationObserver(mark).observe(document.body, {attributes: true});
    mark();
  };
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""

_ROW_POINT = """(row) => {
  const gd = document.getElementById('waterfall');
  const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
  const markers = gd.data.find((t) => t.meta === 'spans');
  const fl = gd._fullLayout;
  return {x: box.left + fl.xaxis.l2p(markers.x[row]) + 6, y: box.top + fl.yaxis.l2p(row)};
}"""


def _browser_load(page: Any, url: str) -> dict[str, Any]:
    page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("window.__benchReady !== undefined", timeout=LOAD_TIMEOUT_MS)
    nav = page.evaluate(
        """() => {
          const n = performance.getEntriesByType('navigation')[0];
          return {ttfb: n.responseStart, response_end: n.responseEnd,
                  dom_ready: n.domContentLoadedEventEnd, ready: window.__benchReady,
                  page_ms: Number(document.body.dataset.waterfallMs || 'NaN'),
                  figure_fetch: performance.getEntriesByType('resource')
                    .filter((r) => r.name.includes('waterfall.json'))
                    .map((r) => r.responseEnd - r.requestStart)[0] ?? NaN,
                  figure_end: performance.getEntriesByType('resource')
                    .filter((r) => r.name.includes('waterfall.json'))
                    .map((r) => r.responseEnd)[0] ?? NaN,
                  script_end: performance.getEntriesByType('resource')
                    .filter((r) => r.name.includes('plotly'))
                    .map((r) => r.responseEnd)[0] ?? NaN};
        }"""
    )
    # hover a bar: time until plotly's hover label is shown
    point = page.evaluate(_ROW_POINT, 3)
    t0 = page.evaluate("performance.now()")
    page.mouse.move(point["x"], point["y"])
    try:
        page.wait_for_selector(".hoverlayer .hovertext", timeout=30_000)
        nav["hover_ms"] = page.evaluate("performance.now()") - t0
    except Exception:
        nav["hover_ms"] = float("nan")
    # click a row: time until the details panel shows that span
    point = page.evaluate(_ROW_POINT, 2)
    span_id = page.evaluate(
        "() => document.getElementById('waterfall').data.find((t) => t.meta === 'spans')"
        ".customdata[2]"
    )
    t0 = page.evaluate("performance.now()")
    page.mouse.click(point["x"], point["y"])
    try:
        page.wait_for_function(
            "(id) => document.getElementById('details').dataset.spanId === id",
            arg=span_id,
            timeout=30_000,
        )
        nav["click_ms"] = page.evaluate("performance.now()") - t0
    except Exception:
        nav["click_ms"] = float("nan")
    # the floor: plotly drawing an empty WebGL figure in a new element of the same page
    nav["empty_gl_ms"] = page.evaluate(
        """async () => {
          const div = document.createElement('div');
          div.style.width = '800px'; div.style.height = '400px';
          document.body.appendChild(div);
          const t0 = performance.now();
          await Plotly.newPlot(div, [{type: 'scattergl', x: [0, 1], y: [0, 1]}], {});
          const ms = performance.now() - t0;
          Plotly.purge(div); div.remove();
          return ms;
        }"""
    )
    return nav


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    from playwright.sync_api import sync_playwright

    db, ids = big_trace_store()
    sizes = [s for s in sorted(ids) if s <= 10_000] if quick else sorted(ids)
    rounds = 1 if quick else 3
    server: dict[int, list[float]] = {s: [] for s in sizes}
    page_bytes: dict[int, int] = {}
    browser_samples: dict[int, list[dict[str, Any]]] = {s: [] for s in sizes}
    errors: list[str] = []
    with sync_playwright() as playwright:
        session = requests.Session()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_init_script(_OBSERVE_READY)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            for r in range(rounds):
                with Viewer(db) as viewer:
                    if r == 0:  # warm-up: plotly.js in the browser's cache
                        _browser_load(page, f"{viewer.url}/trace/{ids[min(ids)]}?warmup=1")
                    order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
                    for size in order:
                        url = f"{viewer.url}/trace/{ids[size]}"
                        browser_samples[size].append(_browser_load(page, url))
                        t0 = time.perf_counter()
                        session.get(url, timeout=300).raise_for_status()
                        figure = session.get(f"{url}/waterfall.json", timeout=300)
                        figure.raise_for_status()
                        server[size].append((time.perf_counter() - t0) * 1000)
                        page_bytes[size] = len(figure.content)
                        log(
                            f"bigtrace: {size} spans: figure fetched in "
                            f"{browser_samples[size][-1]['figure_fetch']:.0f} ms, drawn at "
                            f"{browser_samples[size][-1]['ready']:.0f} ms"
                        )
            context.close()
        finally:
            browser.close()
            session.close()
    result = {
        "config": {"rounds": rounds, "viewport": "1400x900"},
        "server_ms": server,
        "page_bytes": page_bytes,
        "browser": browser_samples,
        "page_errors": errors,
    }
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 6."""
    rows = []
    for size, samples in result["browser"].items():
        rows.append(
            (
                f"{int(size):,}",
                spread(s["response_end"] for s in samples).fmt(0),
                spread(s["figure_fetch"] for s in samples).fmt(0),
                f"{result['page_bytes'][size] / 1e6:.1f}",
                spread(s["dom_ready"] for s in samples).fmt(0),
                spread(s["figure_end"] for s in samples).fmt(0),
                spread(s["ready"] for s in samples).fmt(0),
                spread(s["ready"] - max(s["dom_ready"], s["figure_end"]) for s in samples).fmt(0),
                spread(s["empty_gl_ms"] for s in samples).fmt(0),
                spread(s["hover_ms"] for s in samples).fmt(0),
                spread(s["click_ms"] for s in samples).fmt(0),
                spread(result["server_ms"][size]).fmt(0),
            )
        )
    ten_k = result["browser"].get(10_000) or result["browser"].get("10000") or []
    ready_10k = spread(s["ready"] + s["click_ms"] for s in ten_k).median / 1000 if ten_k else None
    targets = []
    if ready_10k is not None:
        targets.append(
            (
                f"10,000-span trace drawn and a click answered <= {TARGET_10K_S:.0f} s",
                f"{ready_10k:.2f} s",
                verdict(ready_10k <= TARGET_10K_S),
            )
        )
    fifty = result["browser"].get(50_000) or result["browser"].get("50000")
    if fifty:
        ok = all(s["ready"] == s["ready"] and s["click_ms"] == s["click_ms"] for s in fifty)
        targets.append(
            (
                "50,000-span trace draws and stays responsive",
                f"drawn at {spread(s['ready'] for s in fifty).median / 1000:.1f} s, click "
                f"{spread(s['click_ms'] for s in fifty).median:.0f} ms",
                verdict(ok),
            )
        )
    return "\n".join(
        [
            f"### 6. Big traces ({result['config']['rounds']} interleaved rounds, headless "
            f"Chromium, viewport {result['config']['viewport']})",
            "",
            "ms, median [min..max]; page response end, DOM ready, figure arrived and waterfall "
            "drawn by the page's clock from navigation start; drawing alone = drawn - "
            "max(DOM ready, figure arrived), i.e. plotly's `newPlot`; empty WebGL plot = "
            "`newPlot` of a 2-point `scattergl` figure in the same page afterwards (the fixed "
            "cost); hover/click = time until "
            "the label / the span's details show; the last column over HTTP with the viewer's "
            "trace cache warm.",
            "",
            table(
                [
                    "spans",
                    "page response end",
                    "waterfall.json fetch (cold)",
                    "figure MB",
                    "DOM ready (plotly.js evaluated)",
                    "figure arrived",
                    "waterfall drawn",
                    "drawing alone",
                    "empty WebGL plot",
                    "hover",
                    "click -> details",
                    "server warm: page + json",
                ],
                rows,
            ),
            "",
            table(["target", "measured (median)", "verdict"], targets),
            "",
            f"Page errors: {len(result['page_errors'])}"
            + (f" (first: {result['page_errors'][0][:200]})" if result["page_errors"] else ""),
        ]
    )
