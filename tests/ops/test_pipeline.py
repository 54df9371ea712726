"""End to end on one machine: the demo through the real collector to Jaeger, the viewer
and New Relic (a stand-in), as compose runs them, every process on 127.0.0.1.

One run (tests/ops/pipeline_run.py) does it all: the demo's two services export with
cvtrace's ``otlp`` exporter, and the probe sends what other senders send (health checks,
secrets, an over-long value); both services and then the collector stop, which flushes
everything. These tests read what arrived, through Jaeger's own query API (``/api/traces``,
``/api/v3/traces``), the viewer's, and the stand-in's record of each request.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.ops.pipeline_run import LICENSE_KEY, PipelineRun, metric
from tests.ops.probe import CANARY, LONG_VALUE, NEW_RELIC_MAX_CHARS, SERVICE
from tests.otlp_receiver import attributes

pytestmark = pytest.mark.slow

DEMO_SERVICES = ("circuits", "preview")


def jaeger_traces(pipeline: PipelineRun, service: str) -> list[dict[str, Any]]:
    """Every trace of a service in Jaeger (the run makes far fewer than 1,000)."""
    answer = pipeline.from_jaeger("/api/traces", service=service, limit=1000)
    assert answer["errors"] is None
    return list(answer["data"])


def all_jaeger_spans(pipeline: PipelineRun) -> dict[str, dict[str, Any]]:
    """Every span in Jaeger, by span id, each with its service's name."""
    spans: dict[str, dict[str, Any]] = {}
    for service in pipeline.from_jaeger("/api/services")["data"]:
        for trace in jaeger_traces(pipeline, service):
            for span in trace["spans"]:
                span["serviceName"] = trace["processes"][span["processID"]]["serviceName"]
                spans[span["spanID"]] = span
    return spans


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def test_the_run_went_as_planned(pipeline: PipelineRun) -> None:
    """Traffic reached the demo, and the collector stopped cleanly, saying nothing amiss."""
    assert pipeline.traffic.transport_errors == 0
    assert pipeline.traffic.sent >= 80
    assert pipeline.collector_exit_code == 0
    log = pipeline.collector_log
    assert "Shutdown complete." in log
    trouble = [line for line in log.splitlines() if re.search(r"\t(warn|error)\t", line)]
    assert [line for line in trouble if "zPages span processor" not in line] == []


class TestJaeger:
    """(a) Jaeger, read through its own query API."""

    def test_both_services_and_the_probe(self, pipeline: PipelineRun) -> None:
        services = pipeline.from_jaeger("/api/services")["data"]
        assert set(services) == {*DEMO_SERVICES, SERVICE}

    def test_one_trace_crosses_both_services_parent_to_child(self, pipeline: PipelineRun) -> None:
        """GET preview.svg (circuits) -> POST (its client span) -> POST /render (preview)."""
        crossing = [
            trace
            for trace in jaeger_traces(pipeline, "preview")
            if any(
                span["operationName"] == "GET /circuits/<int:circuit_id>/preview.svg"
                for span in trace["spans"]
            )
        ]
        assert crossing
        trace = crossing[0]
        by_name = {span["operationName"]: span for span in trace["spans"]}
        server = by_name["GET /circuits/<int:circuit_id>/preview.svg"]
        call, remote = by_name["POST"], by_name["POST /render"]
        service = {
            name: trace["processes"][span["processID"]]["serviceName"]
            for name, span in by_name.items()
        }
        assert service[server["operationName"]] == service["POST"] == "circuits"
        assert service["POST /render"] == service["render svg"] == "preview"
        assert server["references"] == []
        assert call["references"] == [
            {"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": server["spanID"]}
        ]
        assert remote["references"] == [
            {"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": call["spanID"]}
        ]

        # The same trace through Jaeger's OTLP-shaped API (v3): the parent ids as sent.
        v3 = pipeline.from_jaeger(f"/api/v3/traces/{trace['traceID']}")
        otlp_spans = {
            span["name"]: (resource["resource"], span)
            for resource in v3["result"]["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        }
        resource, render = otlp_spans["POST /render"]
        _, post = otlp_spans["POST"]
        assert render["parentSpanId"] == post["spanId"]
        assert {"key": "service.name", "value": {"stringValue": "preview"}} in resource[
            "attributes"
        ]

    def test_query_spans_are_postgresql_s(self, pipeline: PipelineRun) -> None:
        """The demo runs on PostgreSQL here; its query spans say where, by convention."""
        queries = [
            tags(span)
            for span in all_jaeger_spans(pipeline).values()
            if "db.system.name" in tags(span)
        ]
        assert queries
        assert {q["db.system.name"] for q in queries} == {"postgresql"}
        assert {q["db.namespace"] for q in queries} == {"pipeline"}
        assert {q["server.address"] for q in queries} == {"127.0.0.1"}
        assert all(isinstance(q["server.port"], int) for q in queries)

    def test_no_health_check_span(self, pipeline: PipelineRun) -> None:
        """The demo's /up made none (cvtrace), and the probe's three were dropped (the filter)."""
        spans = all_jaeger_spans(pipeline).values()
        assert not [s for s in spans if s["operationName"] == "GET /up"]
        assert not [
            s
            for s in spans
            if tags(s).get("url.path") == "/up" or str(tags(s).get("http.target")).startswith("/up")
        ]
        filtered = metric(
            pipeline.metrics, "otelcol_processor_filter_spans_filtered", filter="filter/healthcheck"
        )
        # Once per pipeline: Jaeger's and the viewer's, and New Relic's.
        assert filtered == 2 * pipeline.probe.health_checks

    def test_secrets_never_reach_jaeger(self, pipeline: PipelineRun) -> None:
        """The canary: scrubbed by cvtrace in the demo, masked by the collector in the probe's."""
        for service in pipeline.from_jaeger("/api/services")["data"]:
            text = json.dumps(jaeger_traces(pipeline, service))
            assert CANARY not in text, service
        trace_id = pipeline.probe.trace_ids["secrets"].hex()
        assert CANARY not in json.dumps(pipeline.from_jaeger(f"/api/v3/traces/{trace_id}"))
        [trace] = pipeline.from_jaeger(f"/api/traces/{trace_id}")["data"]
        masked = tags(trace["spans"][0])
        assert masked["password"] == masked["http.request.header.authorization"] == "****"
        assert masked["note"] == "retried with ****"
        # and the demo's request with the canary in its query string was traced, scrubbed
        queries = [
            str(tags(s).get("url.query"))
            for s in all_jaeger_spans(pipeline).values()
            if "api_key" in str(tags(s).get("url.query"))
        ]
        assert queries
        assert all(CANARY not in query for query in queries)

    def test_every_span_arrived(self, pipeline: PipelineRun) -> None:
        """All the collector accepted, less the health checks it dropped, is in Jaeger."""
        accepted = metric(pipeline.metrics, "otelcol_receiver_accepted_spans")
        refused = metric(pipeline.metrics, "otelcol_receiver_refused_spans")
        assert refused == 0
        assert accepted > 300
        assert len(all_jaeger_spans(pipeline)) == accepted - pipeline.probe.health_checks

    def test_long_values_reach_jaeger_whole(self, pipeline: PipelineRun) -> None:
        trace_id = pipeline.probe.trace_ids["long"].hex()
        [trace] = pipeline.from_jaeger(f"/api/traces/{trace_id}")["data"]
        assert tags(trace["spans"][0])["probe.blob"] == LONG_VALUE


class TestViewer:
    """(b) `cvtrace view`, fed by the same fan-out."""

    def test_it_has_what_jaeger_has(self, pipeline: PipelineRun) -> None:
        services = pipeline.from_viewer("/api/services")["data"]
        assert set(services) == {*DEMO_SERVICES, SERVICE}
        for service in services:
            found = pipeline.from_viewer("/api/traces", service=service, limit=1000)["data"]
            in_jaeger = jaeger_traces(pipeline, service)
            assert sorted(t["traceID"] for t in found) == sorted(t["traceID"] for t in in_jaeger)
            assert sum(len(t["spans"]) for t in found) == sum(len(t["spans"]) for t in in_jaeger)
            assert CANARY not in json.dumps(found)


class TestNewRelic:
    """(c) The New Relic stand-in at NEW_RELIC_OTLP_ENDPOINT, with a license key set."""

    def test_it_got_every_span_as_new_relic_wants_them(self, pipeline: PipelineRun) -> None:
        received = pipeline.new_relic.received
        assert received
        for request in received:
            assert request.path == "/v1/traces"
            assert request.headers["api-key"] == LICENSE_KEY
            assert request.headers["content-encoding"] == "gzip"
            assert request.headers["content-type"] == "application/x-protobuf"
            assert request.body_bytes < 1_000_000
        spans = pipeline.new_relic.spans()
        assert len(spans) == len(all_jaeger_spans(pipeline))
        assert CANARY not in repr([r.request for r in received])

    def test_values_are_cut_to_4095_characters(self, pipeline: PipelineRun) -> None:
        lengths = [
            len(value)
            for span in pipeline.new_relic.spans()
            for value in attributes(span).values()
            if isinstance(value, str)
        ]
        lengths += [
            len(value)
            for resource in pipeline.new_relic.resources()
            for value in resource.values()
            if isinstance(value, str)
        ]
        assert max(lengths) == NEW_RELIC_MAX_CHARS  # the probe's blob, cut
        [blob] = [
            attributes(span)["probe.blob"]
            for span in pipeline.new_relic.spans()
            if "probe.blob" in attributes(span)
        ]
        assert blob == LONG_VALUE[:NEW_RELIC_MAX_CHARS]
