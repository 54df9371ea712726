"""The analyses' JSON API over HTTP: a real viewer server on 127.0.0.1, a real store."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.store import SpanStore
from tests.viewer.support import T0_NS, SpanSpec, ViewerServer, make_request, new_trace_id

MS = 1_000_000
SERVER = Span.SPAN_KIND_SERVER
CLIENT = Span.SPAN_KIND_CLIENT


def get(server: ViewerServer, path: str, **params: Any) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=30)


def data(server: ViewerServer, path: str, **params: Any) -> Any:
    response = get(server, path, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] is None
    return body["data"]


def assert_jaeger_error(response: requests.Response, status: int, fragment: str) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["data"] is None
    assert body["total"] == 0
    (error,) = body["errors"]
    assert error["code"] == status
    assert fragment in error["msg"], error["msg"]


def request_trace(
    queries: int, *, start_ns: int = T0_NS, preview_ms: int = 0, slow_query: int = 0
) -> list[SpanSpec]:
    """A demo-like request: N queries one after the other, then a call to preview."""
    trace_id = new_trace_id()
    end = 2 + queries + preview_ms + slow_query + 1
    root = SpanSpec(
        "GET /circuits/<id>",
        trace_id,
        start_ns=start_ns,
        duration_ns=end * MS,
        service="circuits",
        kind=SERVER,
    )
    specs = [root]
    t = start_ns + 1 * MS
    for i in range(queries):
        length = (1 + (slow_query if i == 0 else 0)) * MS
        specs.append(
            SpanSpec(
                "SELECT circuits",
                trace_id,
                parent_span_id=root.span_id,
                start_ns=t,
                duration_ns=length,
                service="circuits",
                kind=CLIENT,
            )
        )
        t += length
    if preview_ms:
        call = SpanSpec(
            "POST",
            trace_id,
            parent_span_id=root.span_id,
            start_ns=t,
            duration_ns=preview_ms * MS,
            service="circuits",
            kind=CLIENT,
        )
        remote = SpanSpec(
            "POST /render",
            trace_id,
            parent_span_id=call.span_id,
            start_ns=t + MS // 10,
            duration_ns=preview_ms * MS - MS // 5,
            service="preview",
            kind=SERVER,
        )
        specs += [call, remote]
    return specs


class TestTraceAnalyses:
    def test_critical_path_tiles_the_root_as_jaeger_json_has_it(
        self, server: ViewerServer, store: SpanStore
    ) -> None:
        specs = request_trace(3, start_ns=T0_NS + 1234, preview_ms=5)
        store.write_request(make_request(specs))
        trace_hex = specs[0].trace_id.hex()
        sections = data(server, f"/api/traces/{trace_hex}/critical-path")
        (jaeger,) = data(server, f"/api/traces/{trace_hex}")
        root = next(s for s in jaeger["spans"] if s["spanID"] == specs[0].span_id.hex())
        assert sections[0]["start"] == root["startTime"]
        assert sections[-1]["end"] == root["startTime"] + root["duration"]
        assert sum(s["end"] - s["start"] for s in sections) == root["duration"]
        names = {s["spanID"]: s["operationName"] for s in jaeger["spans"]}
        assert [names[s["spanID"]] for s in sections] == [
            "GET /circuits/<id>",
            "SELECT circuits",
            "SELECT circuits",
            "SELECT circuits",
            "POST",
            "POST /render",
            "POST",
            "GET /circuits/<id>",
        ]

    def test_stats_put_the_repeated_query_first(
        self, server: ViewerServer, store: SpanStore
    ) -> None:
        specs = request_trace(40)
        store.write_request(make_request(specs))
        rows = data(server, f"/api/traces/{specs[0].trace_id.hex()}/stats")
        assert rows[0] == {
            "service": "circuits",
            "operation": "SELECT circuits",
            "count": 40,
            "totalDuration": 40_000,
            "selfDuration": 40_000,
            "minDuration": 1000,
            "maxDuration": 1000,
            "errors": 0,
        }
        assert rows[1]["operation"] == "GET /circuits/<id>"
        assert rows[1]["selfDuration"] == 3000

    def test_flamegraph_merges_by_path(self, server: ViewerServer, store: SpanStore) -> None:
        specs = request_trace(5, preview_ms=4)
        store.write_request(make_request(specs))
        nodes = data(server, f"/api/traces/{specs[0].trace_id.hex()}/flamegraph")
        assert [(n["operation"], n["depth"], n["count"]) for n in nodes] == [
            ("GET /circuits/<id>", 0, 1),
            ("SELECT circuits", 1, 5),
            ("POST", 1, 1),
            ("POST /render", 2, 1),
        ]
        assert nodes[1]["spanID"] == specs[1].span_id.hex()  # the first of the five
        assert nodes[3]["parent"] == nodes[2]["id"]

    def test_in_trace_search(self, server: ViewerServer, store: SpanStore) -> None:
        specs = request_trace(2, preview_ms=3)
        specs[2].attrs = {"db.query.text": "SELECT * FROM stars"}
        store.write_request(make_request(specs))
        path = f"/api/traces/{specs[0].trace_id.hex()}/search"
        assert data(server, path, q="stars") == [specs[2].span_id.hex()]
        assert data(server, path, service="preview") == [specs[4].span_id.hex()]
        assert len(data(server, path, q="select", minDuration="1ms")) == 2
        assert data(server, path, status="error") == []
        assert_jaeger_error(get(server, path, status="broken"), 400, "status")
        assert_jaeger_error(get(server, path, minDuration="soon"), 400, "minDuration")

    def test_same_shape(self, server: ViewerServer, store: SpanStore) -> None:
        outlier = request_trace(300, start_ns=T0_NS)
        siblings = [request_trace(n, start_ns=T0_NS + n * MS) for n in (3, 5)]
        other = request_trace(3, preview_ms=2, start_ns=T0_NS + 9 * MS)  # calls preview too
        for specs in (outlier, *siblings, other):
            store.write_request(make_request(specs))
        found = data(server, f"/api/traces/{outlier[0].trace_id.hex()}/same-shape")
        assert [t["traceID"] for t in found] == [s[0].trace_id.hex() for s in reversed(siblings)]
        assert found[0]["spanCount"] == 6
        assert found[0]["rootName"] == "GET /circuits/<id>"
        assert_jaeger_error(
            get(server, f"/api/traces/{outlier[0].trace_id.hex()}/same-shape", limit="0"),
            400,
            "limit",
        )

    def test_compare(self, server: ViewerServer, store: SpanStore) -> None:
        typical = request_trace(2)
        slow = request_trace(6, preview_ms=20)
        store.write_request(make_request(typical + slow))
        body = data(server, "/api/compare", a=typical[0].trace_id.hex(), b=slow[0].trace_id.hex())
        assert body["a"]["spanCount"] == 3
        assert body["b"]["duration"] == (2 + 6 + 20 + 1) * 1000
        nodes = body["nodes"]
        assert [(n["operation"], n["presence"]) for n in nodes] == [
            ("GET /circuits/<id>", "both"),
            ("POST", "b"),
            ("POST /render", "b"),
            ("SELECT circuits", "both"),
        ]
        select = nodes[3]
        assert (select["a"]["count"], select["b"]["count"]) == (2, 6)
        assert select["totalDiff"] == 4000
        assert nodes[1]["a"] is None
        assert nodes[1]["b"]["spanID"] == slow[7].span_id.hex()

    def test_unknown_traces_are_404_and_bad_ids_400(
        self, server: ViewerServer, store: SpanStore
    ) -> None:
        known = request_trace(1)
        store.write_request(make_request(known))
        unknown = new_trace_id().hex()
        for what in ("critical-path", "stats", "flamegraph", "search", "same-shape"):
            assert_jaeger_error(get(server, f"/api/traces/{unknown}/{what}"), 404, unknown)
            assert_jaeger_error(get(server, f"/api/traces/xyz/{what}"), 400, "traceID")
        assert_jaeger_error(
            get(server, "/api/compare", a=known[0].trace_id.hex(), b=unknown), 404, unknown
        )
        assert_jaeger_error(get(server, "/api/compare", a=known[0].trace_id.hex()), 400, "b:")


def cross_service_traffic(store: SpanStore, now_ms: int) -> list[list[SpanSpec]]:
    """Traces over the last minute: some call preview, one of those fails there."""
    traces = []
    for i in range(10):
        start = (now_ms - 60_000 + i * 5000) * MS
        specs = request_trace(2, start_ns=start, preview_ms=3 if i % 2 else 0)
        if i == 3:
            specs[-1].error = True
        traces.append(specs)
    # the preview service sends its spans separately, before the caller's
    for specs in traces:
        store.write_request(make_request([s for s in specs if s.service == "preview"]))
    for specs in traces:
        store.write_request(make_request([s for s in specs if s.service != "preview"]))
    return traces


class TestDependencies:
    def test_calls_between_services_in_the_window(
        self, server: ViewerServer, store: SpanStore
    ) -> None:
        now_ms = T0_NS // MS + 3_600_000
        traces = cross_service_traffic(store, now_ms)
        links = data(server, "/api/dependencies", endTs=now_ms, lookback=3_600_000)
        assert links == [
            {"parent": "circuits", "child": "preview", "callCount": 5, "errorCount": 1}
        ]
        # the last 30 s hold traces 6..9 (they start every 5 s; the odd ones call preview)
        assert data(server, "/api/dependencies", endTs=now_ms, lookback=30_000)[0]["callCount"] == 2
        assert data(server, "/api/dependencies", endTs=now_ms - 3_000_000, lookback=60_000) == []
        assert data(server, "/api/dependencies", endTs=now_ms, service="nobody") == []
        assert len(data(server, "/api/dependencies", endTs=now_ms, service="preview")) == 1
        found = data(
            server,
            "/api/dependencies/traces",
            parent="circuits",
            child="preview",
            endTs=now_ms,
            lookback=3_600_000,
            limit=3,
        )
        assert [t["traceID"] for t in found] == [traces[i][0].trace_id.hex() for i in (9, 7, 5)]

    @pytest.mark.parametrize(
        ("params", "fragment"),
        [
            ({"lookback": "1h"}, "lookback"),
            ({"lookback": "0"}, "lookback"),
            ({"endTs": "yesterday"}, "endTs"),
            ({"endTs": "-5"}, "endTs"),
        ],
    )
    def test_bad_windows_are_400(
        self, server: ViewerServer, params: dict[str, str], fragment: str
    ) -> None:
        assert_jaeger_error(get(server, "/api/dependencies", **params), 400, fragment)

    def test_traces_of_a_call_need_both_services(self, server: ViewerServer) -> None:
        assert_jaeger_error(get(server, "/api/dependencies/traces", parent="a"), 400, "child")


class TestMetrics:
    def test_calls_errors_latencies_in_jaegers_shape(
        self, server: ViewerServer, store: SpanStore
    ) -> None:
        now_ms = T0_NS // MS + 3_600_000
        cross_service_traffic(store, now_ms)
        window = {"endTs": now_ms, "lookback": 60_000, "step": 30_000, "ratePer": 60_000}
        calls = get(server, "/api/metrics/calls", service="preview", **window)
        assert calls.status_code == 200
        family = calls.json()
        assert family["name"] == "service_call_rate"  # the bare MetricFamily, as Jaeger's
        assert family["type"] == "GAUGE"
        (metric,) = family["metrics"]
        assert metric["labels"] == [{"name": "service_name", "value": "preview"}]
        points = metric["metricPoints"]
        assert len(points) == 3
        assert points[-1]["gaugeValue"]["doubleValue"] == pytest.approx(5 / 60)
        errors = get(server, "/api/metrics/errors", service="preview", **window).json()
        assert errors["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] == 0.2
        p95 = get(
            server,
            "/api/metrics/latencies",
            service=["circuits", "preview"],
            quantile="0.95",
            groupByOperation="true",
            **window,
        ).json()
        assert p95["name"] == "service_operation_latencies"
        by_label = {
            tuple(label["value"] for label in m["labels"]): m["metricPoints"][-1]
            for m in p95["metrics"]
        }
        assert set(by_label) == {("GET /circuits/<id>", "circuits"), ("POST /render", "preview")}
        preview = by_label["POST /render", "preview"]["gaugeValue"]["doubleValue"]
        assert preview == pytest.approx(2.8, rel=0.01)
        # client spans only: none are entry spans (spanKind filters among those)
        assert (
            get(
                server, "/api/metrics/calls", service="circuits", spanKind="client", **window
            ).json()["metrics"]
            == []
        )
        body = data(server, "/api/metrics/minstep")
        assert body == 1

    @pytest.mark.parametrize(
        ("path", "params", "fragment"),
        [
            ("calls", {}, "please provide at least one service name"),
            ("calls", {"service": "a", "step": "0"}, "step"),
            ("calls", {"service": "a", "step": "5s"}, "step"),
            ("calls", {"service": "a", "lookback": "-1"}, "lookback"),
            ("calls", {"service": "a", "ratePer": "x"}, "ratePer"),
            ("calls", {"service": "a", "step": "1", "lookback": "3600000"}, "at most 11000"),
            ("errors", {"service": "a", "spanKind": "sideways"}, "spanKind"),
            ("errors", {"service": "a", "groupByOperation": "maybe"}, "groupByOperation"),
            ("latencies", {"service": "a"}, "quantile"),
            ("latencies", {"service": "a", "quantile": "95"}, "quantile"),
            ("latencies", {"service": "a", "quantile": "0"}, "quantile"),
        ],
    )
    def test_bad_parameters_are_400(
        self, server: ViewerServer, path: str, params: dict[str, str], fragment: str
    ) -> None:
        assert_jaeger_error(get(server, f"/api/metrics/{path}", **params), 400, fragment)
