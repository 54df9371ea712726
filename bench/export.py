"""Benchmark 13: the single-file HTML export of a 10,000-span trace (issue 15).

Two 10,000-span traces of the same shape (``bench.spandata.big_trace``: a batch job
fanning out over three services, as in section 6): **lean**, its spans as section 6
stores them (2 attributes each), and **rich**, each span with 10 demo-like attributes
(HTTP and database semantic conventions, a 120-character SQL statement) and an event on
every tenth. They take turns round by round, the order rotating. Per round and trace:

- **Export, the command**: ``python -m cvtrace.cli export ID --db STORE -o FILE`` as a
  subprocess, as a user runs it: wall time of the whole command (interpreter and Flask
  start-up included) and its CPU time (user + system, from ``getrusage`` of children).
- **Export, in process**: :func:`cvtrace.viewer.exporting.export_html` on a new app (the
  trace read from the store, not cached), wall and CPU time: what the trace page's
  download costs the viewer.
- **Size**: the file's bytes, and gzipped (level 6, as a mail or chat attachment would
  be compressed, or ``gzip -k``).
- **Open**: the file in headless Chromium from ``file://``, a new browser context each
  time (nothing cached), every request recorded (all but the file's own refused), timed
  by the page's own clock (``performance.now()``, zero at navigation start) until the
  waterfall is drawn (``data-waterfall-ready``, seen by a MutationObserver); then a click
  on a row until its details are shown.

Medians with [min..max] over the rounds; the load average is recorded at each round.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import random
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PYTHON,
    clean_env,
    collect_page_errors,
    log,
    spread,
    table,
    verdict,
)
from bench.spandata import big_trace, to_request

ROUNDS = 5
SPANS = 10_000
QUICK_SPANS = 1_000
TARGET_EXPORT_S = 2.0
TARGET_OPEN_S = 2.0
SQL = (
    "SELECT circuits.id, circuits.name, circuits.owner_id, circuits.updated_at "
    "FROM circuits WHERE circuits.owner_id = ? ORDER BY circuits.updated_at DESC"
)

# the page's clock when the waterfall is drawn
_OBSERVE = """
(() => {
  window.__bench = {ready: undefined};
  const mark = () => {
    if (document.body && document.body.dataset.waterfallReady === '1' && !window.__bench.ready) {
      window.__bench.ready = performance.now();
    }
  };
  document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(mark).observe(document.body, {attributes: true});
    mark();
  });
})();
"""
_CLICK_TO_DETAILS = """
(row) => new Promise((resolve) => {
  const panel = document.getElementById('details');
  const el = document.querySelector('.wf-row[data-row="' + row + '"] .wf-name');
  const name = el.textContent;
  const t0 = performance.now();
  const done = () => {
    const h = panel.querySelector('h2');
    if (h && h.textContent === name) {
      observer.disconnect();
      resolve(performance.now() - t0);
    }
  };
  const observer = new MutationObserver(done);
  observer.observe(panel, {childList: true, subtree: true});
  el.click();
})
"""


def _rich(spans: list[Any]) -> list[Any]:
    """The same spans with demo-like attributes (10 each)."""
    out = []
    for i, span in enumerate(spans):
        attributes = {
            **span.attributes,
            "http.request.method": "POST",
            "url.path": f"/circuits/{i}/render",
            "http.route": "/circuits/<int:id>/render",
            "http.response.status_code": 200,
            "server.address": "preview.internal",
            "db.query.text": SQL,
            "db.operation.name": "SELECT",
            "code.function.name": "render_preview",
        }
        out.append(dataclasses.replace(span, attributes=attributes))
    return out


def _store(directory: Path, size: int) -> tuple[Path, dict[str, str]]:
    """A store with the two traces; its path and the traces' ids by variant."""
    from cvtrace.store import SpanStore

    rng = random.Random(13)
    start = time.time_ns() - 3600 * 10**9
    lean = big_trace(rng, size, start)
    rich = _rich(big_trace(rng, size, start))
    path = directory / "export.sqlite3"
    with SpanStore(path, max_spans=0) as store:
        for spans in (lean, rich):
            request = to_request(spans)
            if spans is rich:  # an event on every tenth span
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans[::10]:
                            event = span.events.add()
                            event.name = "cache miss"
                            event.time_unix_nano = span.start_time_unix_nano + 1000
            store.write_request(request)
    return path, {"lean": lean[0].trace_id.hex(), "rich": rich[0].trace_id.hex()}


def _command(db: Path, trace_hex: str, target: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "cvtrace.cli", "export", trace_hex, "--db", str(db), "-o", str(target)],
        env=clean_env(),
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command_s": wall, "command_cpu_s": cpu}


def _in_process(db: Path, trace_hex: str) -> dict[str, float]:
    from cvtrace.store import SpanStore
    from cvtrace.viewer import create_app
    from cvtrace.viewer.exporting import export_html

    with SpanStore(db, read_only=True) as store:
        app = create_app({"STORE": store})
        t0, c0 = time.perf_counter(), time.process_time()
        export_html(app, bytes.fromhex(trace_hex))
        return {
            "in_process_s": time.perf_counter() - t0,
            "in_process_cpu_s": time.process_time() - c0,
        }


def _open(browser: Any, path: Path, errors: list[str]) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("file://") else route.abort()
        ),
    )
    context.add_init_script(_OBSERVE)
    try:
        page = context.new_page()
        collect_page_errors(page, errors)
        page.goto(path.as_uri(), wait_until="commit")
        # a function: an expression is eval'd, which the file's policy forbids
        page.wait_for_function("() => window.__bench && window.__bench.ready", timeout=120_000)
        ready = float(page.evaluate("window.__bench.ready"))
        details = float(page.evaluate(_CLICK_TO_DETAILS, 3))
        missed = page.evaluate("window.cvtraceExport.missed")
        if missed:
            errors.append(f"not in the file: {missed}")
    finally:
        context.close()
    others = [url for url in requests if url != path.as_uri()]
    if others:
        errors.append(f"requests besides the file: {others}")
    return {"open_ms": ready, "details_ms": details, "requests": float(len(requests))}


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    from playwright.sync_api import sync_playwright

    size = QUICK_SPANS if quick else SPANS
    rounds = 2 if quick else ROUNDS
    variants = ["lean", "rich"]
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    loads: list[float] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        directory = Path(tmp)
        db, ids = _store(directory, size)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for r in range(rounds + 1):  # round 0 warms up, and is dropped
                    loads.append(os.getloadavg()[0])
                    for variant in variants[r % 2 :] + variants[: r % 2]:
                        target = directory / f"{variant}.html"
                        sample = _command(db, ids[variant], target)
                        sample.update(_in_process(db, ids[variant]))
                        data = target.read_bytes()
                        sample["bytes"] = float(len(data))
                        sample["gzip_bytes"] = float(len(gzip.compress(data, 6)))
                        sample.update(_open(browser, target, errors))
                        if r:
                            samples[variant].append(sample)
                        log(
                            f"export: {variant} round {r}: command {sample['command_s']:.2f} s, "
                            f"in process {sample['in_process_s']:.2f} s, "
                            f"{sample['bytes'] / 1e6:.1f} MB, open {sample['open_ms']:.0f} ms"
                        )
            finally:
                browser.close()
    result = {
        "config": {"rounds": rounds, "spans": size, "viewport": "1400x900"},
        "samples": samples,
        "load_average_1min": loads,
        "page_errors": errors,
    }
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The section's tables."""
    config = result["config"]
    rows = []
    for variant, samples in result["samples"].items():

        def s(key: str, scale: float = 1.0, digits: int = 2, of: Any = samples) -> str:
            return spread(x[key] * scale for x in of).fmt(digits)

        rows.append(
            [
                variant,
                s("command_s"),
                s("command_cpu_s"),
                s("in_process_s"),
                s("in_process_cpu_s"),
                s("bytes", 1e-6, 1),
                s("gzip_bytes", 1e-6, 2),
                s("open_ms", digits=0),
                s("details_ms", digits=0),
            ]
        )
    all_samples = [x for samples in result["samples"].values() for x in samples]
    worst_export = max((x["command_s"] for x in all_samples), default=float("nan"))
    worst_open = max((x["open_ms"] for x in all_samples), default=float("nan")) / 1000
    median_export = max(
        spread(x["command_s"] for x in samples).median for samples in result["samples"].values()
    )
    median_open = max(
        spread(x["open_ms"] for x in samples).median for samples in result["samples"].values()
    )
    loads = spread(result["load_average_1min"])
    lines = [
        f"### 13. Single-file HTML export of a {config['spans']:,}-span trace "
        f"({config['rounds']} interleaved rounds, headless Chromium from file://)",
        "",
        table(
            [
                "trace",
                "cvtrace export, wall s",
                "its CPU s",
                "export_html, wall s",
                "its CPU s",
                "file MB",
                "gzipped MB",
                "opened: waterfall drawn, ms",
                "click -> details, ms",
            ],
            rows,
        ),
        "",
        table(
            ["target", "median (worst round)", "verdict"],
            [
                [
                    f"exports in <= {TARGET_EXPORT_S:g} s (the command)",
                    f"{median_export:.2f} s ({worst_export:.2f} s)",
                    verdict(median_export <= TARGET_EXPORT_S),
                ],
                [
                    f"opens, waterfall drawn, in <= {TARGET_OPEN_S:g} s",
                    f"{median_open / 1000:.2f} s ({worst_open:.2f} s)",
                    verdict(median_open / 1000 <= TARGET_OPEN_S),
                ],
            ],
        ),
        "",
        f"Load average (1 min) at the rounds: {loads.fmt(1)}. Requests besides the file "
        f"itself, page errors and unanswered fetches: {len(result['page_errors'])}.",
    ]
    return "\n".join(lines)
