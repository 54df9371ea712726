"""The analyses on the demo's own traffic: ``cvtrace demo`` run for real, its store served.

What issue 14 asks a new user to see: the N+1 of the equivalence search as the top row
of the trace statistics, a cross-service request's critical path through the preview
service's span, circuits -> preview on the service map with its call count, and a
comparison of a slow and a typical ``GET /circuits/<id>`` that accounts for the time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page

from cvtrace.store import SpanStore, TraceQuery
from cvtrace.viewer import create_app
from tests.demo.test_cli import clean_env
from tests.viewer.support import ViewerServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled by ``cvtrace demo --no-view`` (both services, real traffic)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    store = tmp_path / "traces.sqlite3"
    command = [sys.executable, "-m", "cvtrace.cli", "demo", "--no-view", "--requests", "120"]
    result = subprocess.run(
        [*command, "--db", str(store)],
        capture_output=True,
        text=True,
        timeout=110,
        env=clean_env(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return store


@pytest.fixture(scope="module")
def viewer(demo_store: Path) -> Iterator[tuple[ViewerServer, SpanStore]]:
    with (
        SpanStore(demo_store, max_spans=0) as store,
        ViewerServer(create_app({"STORE": store})) as server,
    ):
        yield server, store


def api(server: ViewerServer, path: str, **params: Any) -> Any:
    response = requests.get(server.url + path, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_the_n_plus_one_is_the_top_row_of_the_statistics(
    viewer: tuple[ViewerServer, SpanStore],
) -> None:
    server, store = viewer
    (summary,) = store.search(
        TraceQuery(service="circuits", operation="search equivalent circuits", limit=10)
    )
    spans = store.get_trace(summary.trace_id)
    queries = [s for s in spans if s.span.name.startswith("SELECT")]
    assert len(queries) > 100  # one query per circuit scanned
    rows = api(server, f"/api/traces/{summary.trace_id.hex()}/stats")
    top = rows[0]
    assert (top["service"], top["operation"]) == ("circuits", queries[0].span.name)
    assert top["count"] == len(queries)
    total_ns = sum(s.span.end_time_unix_nano - s.span.start_time_unix_nano for s in queries)
    assert top["totalDuration"] == total_ns // 1000
    assert len(rows) < 10  # hundreds of spans, a handful of rows


def test_a_cross_service_critical_path_runs_through_the_preview_span(
    viewer: tuple[ViewerServer, SpanStore],
) -> None:
    server, store = viewer
    found = store.search(
        TraceQuery(
            service="circuits", operation="GET /circuits/<int:circuit_id>/preview.svg", limit=50
        )
    )
    checked = 0
    for summary in found:
        spans = {s.span.span_id.hex(): s for s in store.get_trace(summary.trace_id)}
        if not any(s.service == "preview" for s in spans.values()):
            continue  # the preview service refused it (too large): no remote span
        sections = api(server, f"/api/traces/{summary.trace_id.hex()}/critical-path")
        on_path = [(spans[s["spanID"]].service, spans[s["spanID"]].span.name) for s in sections]
        assert ("preview", "POST /render") in on_path
        root = next(s for s in spans.values() if not s.span.parent_span_id)
        assert (
            sum(s["end"] - s["start"] for s in sections)
            == (root.span.end_time_unix_nano - root.span.start_time_unix_nano) // 1000
        )
        checked += 1
    assert checked >= 1


def test_the_service_map_shows_circuits_calling_preview(
    viewer: tuple[ViewerServer, SpanStore],
) -> None:
    server, store = viewer
    renders = [
        s
        for trace_id in store.iter_trace_ids()
        for s in store.get_trace(trace_id)
        if s.service == "preview" and s.span.name == "POST /render"
    ]
    assert renders
    # lookback: everything up to now, whenever the demo ran
    links = api(server, "/api/dependencies", lookback=30 * 86_400_000)
    assert {
        "parent": "circuits",
        "child": "preview",
        "callCount": len(renders),
        "errorCount": sum(1 for s in renders if s.span.status.code == 2),
    } in links


def test_comparing_a_slow_and_a_typical_request_accounts_for_the_time(
    viewer: tuple[ViewerServer, SpanStore],
) -> None:
    server, store = viewer
    route = store.search(
        TraceQuery(service="circuits", operation="GET /circuits/<int:circuit_id>", limit=1000)
    )
    route.sort(key=lambda s: s.duration_ns)
    typical, slow = route[len(route) // 2], route[-1]
    body = api(server, "/api/compare", a=typical.trace_id.hex(), b=slow.trace_id.hex())
    nodes = body["nodes"]
    assert nodes[0]["operation"] == "GET /circuits/<int:circuit_id>"
    # the request's spans run one after the other: self times add up to the duration,
    # so the differences of self time per path add up to the difference in duration
    difference = body["b"]["duration"] - body["a"]["duration"]
    assert abs(sum(n["selfDiff"] for n in nodes) - difference) <= len(nodes)
    biggest = max(nodes, key=lambda n: abs(n["selfDiff"]))
    assert abs(biggest["selfDiff"]) >= abs(difference) / len(nodes)


@pytest.mark.browser
def test_as_a_new_user_sees_it_on_the_trace_page(
    viewer: tuple[ViewerServer, SpanStore],
    page: Page,
) -> None:
    """In Chromium: the statistics tab's top row is the N+1; the critical-path toggle
    highlights preview's span of a cross-service request."""
    server, store = viewer
    (summary,) = store.search(
        TraceQuery(service="circuits", operation="search equivalent circuits", limit=10)
    )
    page.goto(f"{server.url}/trace/{summary.trace_id.hex()}")
    page.wait_for_function("() => document.body.dataset.waterfallReady === '1'", timeout=60_000)
    page.click("#tab-stats")
    page.wait_for_function("() => document.getElementById('trace-stats').dataset.ready === '1'")
    top = page.locator("#stats-table tbody tr").first.locator("td")
    queries = [s for s in store.get_trace(summary.trace_id) if s.span.name.startswith("SELECT")]
    assert top.nth(1).inner_text() == queries[0].span.name
    assert top.nth(2).inner_text() == f"{len(queries):,}"

    found = store.search(
        TraceQuery(
            service="circuits", operation="GET /circuits/<int:circuit_id>/preview.svg", limit=50
        )
    )
    crossing = next(s for s in found if "preview" in s.services)
    page.goto(f"{server.url}/trace/{crossing.trace_id.hex()}")
    page.wait_for_function("() => document.body.dataset.waterfallReady === '1'", timeout=60_000)
    page.click(".critical-path-toggle")
    page.wait_for_function(
        "() => document.getElementById('waterfall').dataset.criticalPathReady === '1'"
    )
    page.fill("#span-find", "POST /render")
    page.press("#span-find", "Enter")
    selected = page.get_attribute("#waterfall", "data-selected")
    render = page.locator('.wf-row[data-row].sel:has(.wf-name:text-is("POST /render"))')
    assert render.count() == 1, selected
    assert "cp-path" in (render.get_attribute("class") or "")
    assert render.locator(".cp-seg").count() >= 1
