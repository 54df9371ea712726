"""Benchmark 6: big traces (10 / 1,000 / 10,000 / 50,000 / 100,000 spans) in the viewer.

``cvtrace view`` serves a cached store holding one trace of each size, in headless
Debian Chromium driven by Playwright. Each round starts a fresh viewer; sizes take
turns, their order rotating round by round. Per size and round:

- **Loads**, timed by the page's own clock (``performance.now()``, zero at navigation
  start) until the waterfall is drawn (``data-waterfall-ready``, seen by a
  MutationObserver): *cold* (the viewer has not loaded the trace, a new browser
  context: nothing cached), *warm server* (the viewer has it, a new context: the
  scripts and the rows travel again) and *warm* (the same page again: the server's
  and the browser's caches warm). For each: the ``waterfall.json`` fetch (request
  start to response end), the bytes that travelled and the drawing after they arrived.
- **Interactions** on the warm page, each timed from the input event's own time stamp
  (``event.timeStamp``, same clock) or the script's action to the next animation frame
  after the page drew (its ``cvtrace:drawn`` event), i.e. until the change is on screen:
  scrolling to 5 random rows (``scrollTop``); 3 clicks on the overview (a minimap jump);
  a click on the chevron of the biggest subtree below the root (collapse) and again
  (expand); 3 clicks on a row until its details are shown (with the server round trip);
  then the page's JS heap after a garbage collection (CDP) and its element count.
- **Search page**: ``/`` cold (new context) and warm, until the scatter is drawn.
"""

from __future__ import annotations

import json
import random
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

LOAD_TIMEOUT_MS = 120_000
TARGETS = {
    "first_warm_ms": 1500,
    "first_cold_ms": 3000,
    "scroll_ms": 100,
    "jump_ms": 100,
    "collapse_ms": 150,
    "details_ms": 100,
    "heap_mb": 150,
    "small_warm_ms": 300,
    "search_cold_ms": 1500,
}

# the page's clock at the moment it drew, and the time stamps of input events
_OBSERVE = """
(() => {
  window.__bench = {ready: undefined, inputs: []};
  const mark = () => {
    if (document.body && document.body.dataset.waterfallReady === '1' && !window.__bench.ready) {
      window.__bench.ready = performance.now();
    }
  };
  const start = () => {
    new MutationObserver(mark).observe(document.body, {attributes: true});
    mark();
  };
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
  for (const type of ['pointerdown', 'click']) {
    window.addEventListener(type, (e) => window.__bench.inputs.push([type, e.timeStamp]), true);
  }
})();
"""

_NAV = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const all = performance.getEntriesByType('resource');
  const figure = all.filter((r) => r.name.includes('waterfall.json'))[0];
  return {
    ready: window.__bench.ready,
    response_end: n.responseEnd,
    dom_ready: n.domContentLoadedEventEnd,
    figure_fetch: figure ? figure.responseEnd - figure.requestStart : NaN,
    figure_end: figure ? figure.responseEnd : NaN,
    figure_bytes: figure ? figure.transferSize : NaN,
    figure_decoded: figure ? figure.decodedBodySize : NaN,
    bytes: n.transferSize + all.reduce((sum, r) => sum + r.transferSize, 0),
  };
}"""

# resolves at the first animation frame after the waterfall drew (the change is on screen)
_AFTER_DRAW = """() => new Promise((resolve) => {
  document.getElementById('waterfall').addEventListener('cvtrace:drawn',
    () => requestAnimationFrame(() => resolve(performance.now())), {once: true});
})"""

_SCROLL = """async (positions) => {
  const w = document.getElementById('waterfall');
  const scroller = w.querySelector('.wf-scroller');
  const out = [];
  for (const p of positions) {
    const t0 = performance.now();
    const before = scroller.scrollTop;
    scroller.scrollTop = p * 24;
    if (scroller.scrollTop === before) continue; // there already, or nothing to scroll
    const drawn = new Promise((resolve) => w.addEventListener('cvtrace:drawn', (e) =>
      requestAnimationFrame(() => resolve([performance.now(), e.detail.first])), {once: true}));
    const [t1, first] = await drawn;
    out.push({ms: t1 - t0, asked: p, first: first});
    await new Promise((r) => setTimeout(r, 30));
  }
  return out;
}"""


def _load(page: Any, url: str) -> dict[str, Any]:
    page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(
        "() => window.__bench && window.__bench.ready !== undefined", timeout=LOAD_TIMEOUT_MS
    )
    nav: dict[str, Any] = page.evaluate(_NAV)
    nav["drawing"] = nav["ready"] - max(nav["dom_ready"], nav["figure_end"])
    return nav


def _input_to_frame(page: Any, action: Any, done: str, arg: Any = None) -> float:
    """Run ``action``; return ms from its pointerdown to the frame after ``done`` resolves."""
    page.evaluate("window.__bench.inputs = []")
    # (in a function returning nothing: evaluate would wait for a promise it returns)
    page.evaluate(
        f"() => {{ window.__benchDone = Promise.race([({done})({json.dumps(arg)}),"
        f" new Promise((resolve) => setTimeout(() => resolve(NaN), {LOAD_TIMEOUT_MS}))]); }}"
    )
    action()
    t1 = page.evaluate("window.__benchDone")
    inputs = page.evaluate("window.__bench.inputs")
    t0 = next(stamp for kind, stamp in inputs if kind == "pointerdown")
    return float(t1) - float(t0)


# resolves at the first frame after the details panel shows another span than `before`
_DETAILS_SHOWN = """(before) => new Promise((resolve) => {
  const panel = document.getElementById('details');
  const observer = new MutationObserver(() => {
    if (panel.dataset.spanId && panel.dataset.spanId !== before && panel.querySelector('h2')) {
      observer.disconnect();
      requestAnimationFrame(() => resolve(performance.now()));
    }
  });
  observer.observe(panel, {attributes: true, childList: true, subtree: true});
})"""


def _interact(page: Any, size: int, rng: random.Random, cdp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shown = int(page.get_attribute("#waterfall", "data-shown"))
    out["scroll"] = page.evaluate(_SCROLL, [rng.randrange(shown) for _ in range(5)])
    # overview clicks at random heights (a click beside the window jumps there); a
    # trace that fits in the view has nowhere to jump
    box = page.locator(".wf-minimap").bounding_box()
    jumps = []
    fits = page.evaluate(
        "(() => { const s = document.querySelector('.wf-scroller');"
        " return s.scrollHeight <= s.clientHeight; })()"
    )
    for _ in range(0 if fits else 3):
        # beside the window (a click on it would start a drag, not a jump)
        window = page.locator(".wf-window").bounding_box()
        above = window["y"] - box["y"] > box["y"] + box["height"] - window["y"] - window["height"]
        if above:
            y = rng.uniform(box["y"] + 1, window["y"] - 1)
        else:
            y = rng.uniform(window["y"] + window["height"] + 1, box["y"] + box["height"] - 1)
        x = box["x"] + rng.uniform(0.05, 0.95) * box["width"]
        jumps.append(_input_to_frame(page, lambda x=x, y=y: page.mouse.click(x, y), _AFTER_DRAW))
    out["jump"] = jumps
    # collapse, then expand, the root (every other span), then the biggest subtree below it
    page.evaluate("document.querySelector('.wf-scroller').scrollTop = 0")
    page.wait_for_timeout(100)
    chevrons = page.evaluate(
        """() => Array.from(document.querySelectorAll('.wf-row[data-row] .wf-chev:not(.leaf)'))
            .map((c) => [Number(c.closest('.wf-row').dataset.row),
                         Number((c.title.match(/\\d+/) || [0])[0])])"""
    )
    below = [rc for rc in chevrons if rc[0] > 0]
    picks = {"root": [rc for rc in chevrons if rc[0] == 0]}
    picks["subtree"] = [max(below, key=lambda rc: rc[1])] if below else []
    for name, found in picks.items():
        for row, hidden in found:
            chevron = page.locator(f'.wf-row[data-row="{row}"] .wf-chev')
            out[f"{name}_hidden"] = hidden
            out[f"{name}_collapse"] = _input_to_frame(page, chevron.click, _AFTER_DRAW)
            out[f"{name}_expand"] = _input_to_frame(page, chevron.click, _AFTER_DRAW)
    # click a row (on its bar's track) until its details are shown
    details = []
    for _ in range(3):
        first = int(page.get_attribute("#waterfall", "data-first-row"))
        rows = [first + k for k in range(1, 10)]
        rows = [
            r
            for r in rows
            if "sel"
            not in (page.locator(f'.wf-row[data-row="{r}"]').get_attribute("class") or "sel")
        ]
        target = page.locator(f'.wf-row[data-row="{rng.choice(rows)}"] .wf-track')
        box = target.bounding_box()
        before = page.get_attribute("#details", "data-span-id") or ""
        details.append(
            _input_to_frame(
                page,
                lambda box=box: page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + 12),
                _DETAILS_SHOWN,
                before,
            )
        )
        page.wait_for_timeout(50)
    out["details"] = details
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")
    # V8's heap, plus the typed arrays' buffers (outside it), plus Blink's (the DOM)
    out["heap_mb"] = (heap["usedSize"] + heap.get("backingStorageSize", 0)) / 1e6
    out["dom_heap_mb"] = heap.get("embedderHeapUsedSize", 0) / 1e6
    out["elements"] = page.evaluate("document.getElementsByTagName('*').length")
    log(f"bigtrace: {size} spans: interactions {_brief(out)}")
    return out


def _brief(sample: dict[str, Any]) -> str:
    def worst(values: list[float]) -> str:
        return f"{max(values):.0f} ms" if values else "-"

    return (
        f"scroll max {worst([s['ms'] for s in sample['scroll']])}, "
        f"jump max {worst(sample['jump'])}, "
        f"collapse {worst([v for k, v in sample.items() if k.endswith('_collapse')])}, "
        f"details max {worst(sample['details'])}, heap {sample['heap_mb']:.0f} MB"
    )


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    from playwright.sync_api import sync_playwright

    db, ids = big_trace_store()
    sizes = [s for s in sorted(ids) if s <= 10_000] if quick else sorted(ids)
    rounds = 1 if quick else 3
    rng = random.Random(6)
    loads: dict[str, dict[int, list[dict[str, Any]]]] = {
        kind: {s: [] for s in sizes} for kind in ("cold", "warm_server", "warm")
    }
    interactions: dict[int, list[dict[str, Any]]] = {s: [] for s in sizes}
    search: dict[str, list[float]] = {"cold": [], "warm": []}
    errors: list[str] = []

    def new_page(browser: Any) -> tuple[Any, Any]:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(_OBSERVE)
        page = context.new_page()
        collect_page_errors(page, errors)
        return context, page

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for r in range(rounds):
                with Viewer(db) as viewer:
                    order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
                    for size in order:
                        url = f"{viewer.url}/trace/{ids[size]}"
                        context, page = new_page(browser)
                        loads["cold"][size].append(_load(page, url))
                        context.close()
                        context, page = new_page(browser)
                        loads["warm_server"][size].append(_load(page, url))
                        loads["warm"][size].append(_load(page, url))
                        cdp = context.new_cdp_session(page)
                        cdp.send("Performance.enable")
                        interactions[size].append(_interact(page, size, rng, cdp))
                        context.close()
                        log(
                            f"bigtrace: {size} spans: drawn at "
                            f"{loads['cold'][size][-1]['ready']:.0f} ms cold, "
                            f"{loads['warm'][size][-1]['ready']:.0f} ms warm"
                        )
                    context, page = new_page(browser)
                    for kind in ("cold", "warm"):
                        page.goto(viewer.url + "/", wait_until="commit")
                        page.wait_for_selector("#durations[data-drawn]", timeout=LOAD_TIMEOUT_MS)
                        search[kind].append(page.evaluate("performance.now()"))
                    context.close()
        finally:
            browser.close()
    result = {
        "config": {"rounds": rounds, "viewport": "1400x900"},
        "loads": loads,
        "interactions": interactions,
        "search_ms": search,
        "page_errors": errors,
    }
    return result, markdown(result)


def _fold(samples: list[dict[str, Any]], name: str) -> str:
    """``hidden / collapse ms / expand ms`` of the root or the biggest subtree."""
    found = [s for s in samples if f"{name}_collapse" in s]
    if not found:
        return "-"
    collapse = spread(s[f"{name}_collapse"] for s in found)
    expand = spread(s[f"{name}_expand"] for s in found)
    return f"{found[0][f'{name}_hidden']:,} / {collapse.fmt(0)} / {expand.fmt(0)}"


def _get(mapping: dict[Any, Any], size: int) -> Any:
    """A size's entry, keyed by int (fresh) or str (read back from JSON)."""
    return mapping.get(size, mapping.get(str(size)))


def markdown(result: dict[str, Any]) -> str:
    """The tables of BENCHMARKS.md section 6."""
    loads, inter = result["loads"], result["interactions"]
    sizes = sorted(int(s) for s in loads["cold"])
    load_rows = []
    for size in sizes:
        cells: list[object] = [f"{size:,}"]
        for kind in ("cold", "warm_server", "warm"):
            samples = _get(loads[kind], size)
            cells.append(spread(s["ready"] for s in samples).fmt(0))
        cold, warm_server = _get(loads["cold"], size), _get(loads["warm_server"], size)
        cells += [
            spread(s["figure_fetch"] for s in cold).fmt(0),
            spread(s["figure_fetch"] for s in warm_server).fmt(0),
            f"{cold[0]['figure_decoded'] / 1e6:.2f} / {cold[0]['figure_bytes'] / 1e6:.2f}",
            spread(s["drawing"] for s in warm_server).fmt(0),
            f"{cold[0]['bytes'] / 1e6:.2f}",
        ]
        load_rows.append(cells)
    inter_rows = []
    for size in sizes:
        samples = _get(inter, size)
        scroll = [s["ms"] for sample in samples for s in sample["scroll"]]
        jumps = [ms for sample in samples for ms in sample["jump"]]
        inter_rows.append(
            (
                f"{size:,}",
                spread(scroll).fmt(0) if scroll else "- (fits)",
                spread(jumps).fmt(0) if jumps else "- (fits)",
                _fold(samples, "root"),
                _fold(samples, "subtree"),
                spread(ms for sample in samples for ms in sample["details"]).fmt(0),
                spread(s["heap_mb"] for s in samples).fmt(1),
                spread(s.get("dom_heap_mb", float("nan")) for s in samples).fmt(1),
                spread(s["elements"] for s in samples).fmt(0),
            )
        )
    big = max(sizes)
    big_inter = _get(inter, big)
    warm_big = spread(s["ready"] for s in _get(loads["warm"], big)).median
    cold_big = spread(s["ready"] for s in _get(loads["cold"], big)).median
    big_scroll = spread(s["ms"] for sample in big_inter for s in sample["scroll"])
    jump = spread(ms for sample in big_inter for ms in sample["jump"])
    fold = spread(
        max(s[f"{name}_collapse"], s[f"{name}_expand"])
        for s in big_inter
        for name in ("root", "subtree")
        if f"{name}_collapse" in s
    )
    hides = [big_inter[0].get(f"{name}_hidden", 0) for name in ("subtree", "root")]
    hides = [h for h in hides if h] or [0]
    details = spread(ms for sample in big_inter for ms in sample["details"])
    heap = spread(s["heap_mb"] for s in big_inter)
    small = min(sizes)
    small_warm = spread(s["ready"] for s in _get(loads["warm"], small)).median
    search_cold = spread(result["search_ms"]["cold"]).median
    search_warm = spread(result["search_ms"]["warm"]).median
    worst = "median {:.0f} ms, worst {:.0f} ms"
    targets = [
        (
            f"{big:,} spans: first usable draw, warm <= 1.5 s",
            f"{warm_big / 1000:.2f} s",
            verdict(warm_big <= TARGETS["first_warm_ms"]),
        ),
        (
            f"{big:,} spans: first usable draw, cold <= 3 s",
            f"{cold_big / 1000:.2f} s",
            verdict(cold_big <= TARGETS["first_cold_ms"]),
        ),
        (
            f"{big:,} spans: scroll to any row <= 100 ms",
            worst.format(big_scroll.median, big_scroll.high),
            verdict(big_scroll.high <= TARGETS["scroll_ms"]),
        ),
        (
            f"{big:,} spans: minimap jump <= 100 ms",
            worst.format(jump.median, jump.high),
            verdict(jump.high <= TARGETS["jump_ms"]),
        ),
        (
            f"{big:,} spans: collapse or expand a subtree hiding {min(hides):,} to "
            f"{max(hides):,} spans (target: 50,000) <= 150 ms",
            worst.format(fold.median, fold.high),
            verdict(fold.high <= TARGETS["collapse_ms"]),
        ),
        (
            f"{big:,} spans: click -> details <= 100 ms",
            worst.format(details.median, details.high),
            verdict(details.median <= TARGETS["details_ms"]),
        ),
        (
            f"{big:,} spans: JS heap <= 150 MB",
            f"{heap.high:.1f} MB (largest)",
            verdict(heap.high <= TARGETS["heap_mb"]),
        ),
        (
            f"{small:,}-span trace page, warm <= 300 ms",
            f"{small_warm:.0f} ms",
            verdict(small_warm <= TARGETS["small_warm_ms"]),
        ),
        (
            "cold search page <= 1.5 s",
            f"{search_cold:.0f} ms (warm {search_warm:.0f} ms)",
            verdict(search_cold <= TARGETS["search_cold_ms"]),
        ),
    ]
    return "\n".join(
        [
            f"### 6. Big traces ({result['config']['rounds']} interleaved rounds, headless "
            f"Chromium, viewport {result['config']['viewport']})",
            "",
            "Loads: ms from navigation start until the waterfall is drawn, median [min..max] "
            "over rounds; cold = a viewer that has not loaded the trace and an empty browser "
            "cache, warm server = the viewer has it, empty browser cache; warm = the same page "
            "again. `waterfall.json` fetch = request start to response end; MB = its size "
            "decoded / as sent (gzip); drawing = drawn - max(DOM ready, rows arrived); all MB = "
            "every byte the cold page fetched.",
            "",
            table(
                [
                    "spans",
                    "drawn, cold",
                    "drawn, warm server",
                    "drawn, warm",
                    "rows fetch, cold",
                    "rows fetch, warm server",
                    "rows MB",
                    "drawing (warm server)",
                    "all MB, cold",
                ],
                load_rows,
            ),
            "",
            "Interactions on the warm page: ms from the input (its event time stamp, or the "
            "script setting `scrollTop`) to the first frame after the page drew; median "
            "[min..max] over every sample (5 scrolls, 3 jumps, 3 clicks per round); JS heap = "
            "V8's heap used after a garbage collection plus the typed arrays' buffers (outside "
            "it); DOM heap = Blink's (the page's nodes); elements = the page's element count.",
            "",
            table(
                [
                    "spans",
                    "scroll to a row",
                    "minimap jump",
                    "root: hides / collapse / expand",
                    "biggest subtree below: hides / collapse / expand",
                    "click -> details",
                    "JS heap MB",
                    "DOM heap MB",
                    "elements",
                ],
                inter_rows,
            ),
            "",
            table(["target", "measured", "verdict"], targets),
            "",
            f"Search page (the big traces' store), until the scatter is drawn: cold "
            f"{spread(result['search_ms']['cold']).fmt(0)} ms, warm "
            f"{spread(result['search_ms']['warm']).fmt(0)} ms.",
            "",
            f"Page errors: {len(result['page_errors'])}"
            + (f" (first: {result['page_errors'][0][:200]})" if result["page_errors"] else ""),
        ]
    )
