"""Benchmark: the trace page's in-trace search in headless Chromium (issue 14).

``cvtrace view`` serves the big-trace store (``bench.spandata.big_trace_store``: random
trees of 10,000 and 100,000 spans, each span with attributes ``item`` (its number)
and ``db.system.name``, its resource four more). Per round, a fresh browser context
per size, sizes taking turns: the page loads, the search box is focused (which fetches
``search.json``, the trace's attributes: timed, with its size), then queries are typed
one key at a time, 120 ms apart. The renderer processes' CPU time (CDP
``SystemInfo.getProcessInfo``) is read around each query's typing, less what they use
idle over as long (read just before): CPU per keystroke, which a busy machine does not
inflate as it does elapsed times. Each keystroke is timed from the ``keydown`` event's
own time stamp to the animation frame after the page has matched and redrawn (rows and
overview): what a person sees. The search's own pass (``run()`` in trace-search.js)
is reported apart. Queries: a name typed out (``s`` ... ``select``, down to a few
thousand matches), ``render``, an attribute key that every span has (``item``: every
row matches, the overview's worst case), a resource value (``bench-host``), an
attribute value (``99999``) and ``key=value`` (``item=4242``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Viewer,
    collect_page_errors,
    log,
    spread,
    table,
    verdict,
)
from bench.spandata import big_trace_store

TIMEOUT_MS = 120_000
TARGET_MS = 100
QUERIES = ("select", "render", "item", "bench-host", "99999", "item=4242")
KEY_DELAY_MS = 120

# each keystroke: the keydown's time stamp, then the frame after the search drew
_WATCH = """() => {
  window.__keys = [];
  const box = document.getElementById('span-find');
  const wf = document.getElementById('waterfall');
  box.addEventListener('keydown', (e) => { window.__down = e.timeStamp; });
  // listened after trace-search.js's own handler: runs once it has matched and drawn
  box.addEventListener('input', () => {
    const t0 = window.__down;
    const run = Number(wf.dataset.searchMs || 'NaN');
    const matches = Number(wf.dataset.matches || '0');
    const value = box.value;
    requestAnimationFrame(() => window.__keys.push(
      {value: value, frame: performance.now() - t0, run: run, matches: matches}));
  });
}"""

_INDEX_FETCH = """() => {
  const e = performance.getEntriesByType('resource').find((r) => r.name.includes('/search.json'));
  return e ? {ms: e.responseEnd - e.startTime, bytes: e.encodedBodySize || e.transferSize} : null;
}"""


def _renderer_cpu_s(cdp: Any) -> float:
    """CPU seconds used so far by the browser's renderer processes (CDP SystemInfo)."""
    info = cdp.send("SystemInfo.getProcessInfo")
    return float(sum(p["cpuTime"] for p in info["processInfo"] if p["type"] == "renderer"))


def _round(page: Any, url: str, cdp: Any) -> dict[str, Any]:
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.body.dataset.waterfallReady === '1'", timeout=TIMEOUT_MS)
    page.evaluate(_WATCH)
    page.focus("#span-find")
    page.wait_for_function(
        "() => document.getElementById('waterfall').dataset.searchIndex === '1'", timeout=TIMEOUT_MS
    )
    index: dict[str, Any] = page.evaluate(_INDEX_FETCH)
    for query in QUERIES:
        page.fill("#span-find", "")
        page.wait_for_timeout(200)
        page.evaluate("window.__keys = []")
        # the renderer's CPU while idle for as long as the typing takes, then typing
        idle0 = time.monotonic()
        cpu0 = _renderer_cpu_s(cdp)
        page.wait_for_timeout(len(query) * KEY_DELAY_MS)
        idle_cpu_s, idle_s = _renderer_cpu_s(cdp) - cpu0, time.monotonic() - idle0
        typing0 = time.monotonic()
        cpu0 = _renderer_cpu_s(cdp)
        page.type("#span-find", query, delay=KEY_DELAY_MS)
        page.wait_for_function(f"() => window.__keys.length === {len(query)}", timeout=TIMEOUT_MS)
        busy_cpu_s, busy_s = _renderer_cpu_s(cdp) - cpu0, time.monotonic() - typing0
        cpu_ms = (busy_cpu_s - idle_cpu_s * busy_s / idle_s) * 1000 / len(query)
        index.setdefault("cpu", []).append(
            {"query": query, "per_key_ms": cpu_ms, "idle_ms_per_s": idle_cpu_s * 1000 / idle_s}
        )
        keys = page.evaluate("window.__keys")
        log(
            f"tracesearch: {query!r}: keystrokes "
            + ", ".join(f"{k['frame']:.0f}" for k in keys)
            + f" ms; last {keys[-1]['matches']} matches; renderer CPU {cpu_ms:.0f} ms per key"
        )
        index.setdefault("keys", []).extend(dict(k, query=query) for k in keys)
    return index


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    from playwright.sync_api import sync_playwright

    db, ids = big_trace_store()
    sizes = [s for s in sorted(ids) if s >= 10_000]
    if quick:
        sizes = [s for s in sorted(ids) if s <= 10_000][-1:]
    rounds = 1 if quick else 3
    samples: dict[int, list[dict[str, Any]]] = {s: [] for s in sizes}
    errors: list[str] = []
    with sync_playwright() as playwright, Viewer(db) as viewer:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cdp = browser.new_browser_cdp_session()
        try:
            for r in range(rounds):
                order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
                for size in order:
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    collect_page_errors(page, errors)
                    samples[size].append(_round(page, f"{viewer.url}/trace/{ids[size]}", cdp))
                    context.close()
        finally:
            browser.close()
    result = {
        "config": {"rounds": rounds, "queries": QUERIES, "key_delay_ms": KEY_DELAY_MS},
        "samples": samples,
        "page_errors": errors,
        "load_average": os.getloadavg(),
    }
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 11 (in-trace search)."""
    rows = []
    verdicts = []
    for size_key, samples in sorted(result["samples"].items(), key=lambda kv: int(kv[0])):
        size = int(size_key)
        keys = [k for s in samples for k in s["keys"]]
        frames = [k["frame"] for k in keys]
        worst_query = max(keys, key=lambda k: k["frame"])
        rows.append(
            (
                f"{size:,}",
                spread(s["ms"] for s in samples).fmt(0),
                f"{samples[0]['bytes'] / 1e6:.2f}",
                len(frames),
                spread(frames).fmt(0),
                f"{max(frames):.0f} ({worst_query['query']!r}, {worst_query['matches']:,} matches)",
                spread(k["run"] for k in keys).fmt(1),
                spread(k["frame"] for k in keys if k["query"] == "item").fmt(0),
                spread(c["per_key_ms"] for s in samples for c in s["cpu"]).fmt(0),
            )
        )
        verdicts.append((size, spread(frames).median, max(frames), keys))
    config = result["config"]
    out = [
        f"### 11. In-trace search (issue 14; {config['rounds']} interleaved rounds, headless "
        f"Chromium, keys {config['key_delay_ms']} ms apart)",
        "",
        table(
            [
                "spans",
                "search.json fetch, ms",
                "search.json MB",
                "keystrokes",
                "keystroke to frame, ms",
                "slowest keystroke, ms",
                "search pass alone, ms",
                "'item' (every row matches), ms",
                "renderer CPU per keystroke, ms (per query, idle subtracted)",
            ],
            rows,
        ),
        "",
    ]
    for size, median, worst, keys in verdicts:
        over = sum(1 for k in keys if k["frame"] > TARGET_MS)
        out.append(
            f"- {size:,} spans, <= {TARGET_MS} ms per keystroke: median {median:.0f} ms, "
            f"slowest {worst:.0f} ms, {over} of {len(keys)} keystrokes over: "
            f"{verdict(worst <= TARGET_MS)}"
        )
    load = result.get("load_average")
    if load:
        out.append(f"- load average at the end (1/5/15 min): {' '.join(f'{x:.2f}' for x in load)}")
    if result["page_errors"]:
        out.append(f"- page errors: {result['page_errors'][:3]}")
    return "\n".join(out)
