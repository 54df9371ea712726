"""The viewer speaks Jaeger's query API like Jaeger: the same spans, the same answers.

The collector sends every span to both (tests/ops/pipeline_run.py: the demo's traffic
and the probe's spans of every shape), and the viewer's answers are compared with a
real Jaeger's, field by field, on ``/api/services``, ``/api/services/{s}/operations``,
``/api/traces/{id}`` and ``/api/traces?service=...`` with its filters. Before
comparing, only what is deliberately different is set aside (docs/operations.md, "The
viewer's Jaeger API" lists it with the reasons), each in one place below:

- lists whose order means nothing (services, operations, the spans of a trace, the
  traces of a search) are compared as sets, and process ids (``p1``, ``p2``) through
  the processes they name;
- span warnings are in the viewer's own words, so only which spans carry one is
  compared; the viewer also gathers them at trace level, where Jaeger has null;
- ``flags``: the viewer keeps a span's W3C trace flags (so that a download re-imports
  whole), which Jaeger drops when it takes OTLP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.ops.pipeline_run import PipelineRun

pytestmark = pytest.mark.slow


def comparable_trace(trace: dict[str, Any]) -> dict[str, Any]:
    """A trace with what is deliberately different set aside (see the module docstring)."""
    processes = trace["processes"]
    spans = {}
    for span in trace["spans"]:
        span = dict(span)
        span["process"] = processes[span.pop("processID")]
        span["warnings"] = bool(span["warnings"])
        span.pop("flags", None)
        spans[span["spanID"]] = span
    assert len(spans) == len(trace["spans"]), "a span id given twice"
    return {"traceID": trace["traceID"], "spans": spans}


def comparable_traces(answer: dict[str, Any]) -> dict[str, Any]:
    """A search or trace answer: its envelope, and its traces by id."""
    traces = {t["traceID"]: comparable_trace(t) for t in answer["data"]}
    assert len(traces) == len(answer["data"]), "a trace given twice"
    return {**{k: v for k, v in answer.items() if k != "data"}, "data": traces}


def assert_same(jaeger: Any, viewer: Any, where: str) -> None:
    """Equal, or fail naming the first field that differs."""
    if jaeger == viewer:
        return
    jaeger_text = json.dumps(jaeger, indent=1, sort_keys=True).splitlines()
    viewer_text = json.dumps(viewer, indent=1, sort_keys=True).splitlines()
    for index, (mine, theirs) in enumerate(zip(viewer_text, jaeger_text, strict=False)):
        if mine != theirs:
            context = "\n".join(jaeger_text[max(0, index - 8) : index])
            pytest.fail(f"{where}: after\n{context}\nJaeger has {theirs!r}, the viewer {mine!r}")
    pytest.fail(
        f"{where}: one answer is longer: Jaeger {len(jaeger_text)}, viewer {len(viewer_text)}"
    )


def both(pipeline: PipelineRun, path: str, **params: str | int) -> tuple[Any, Any]:
    """The same GET, answered by Jaeger and by the viewer."""
    return pipeline.from_jaeger(path, **params), pipeline.from_viewer(path, **params)


def services(pipeline: PipelineRun) -> list[str]:
    return sorted(pipeline.from_jaeger("/api/services")["data"])


class TestServicesAndOperations:
    def test_services(self, pipeline: PipelineRun) -> None:
        jaeger, viewer = both(pipeline, "/api/services")
        assert set(jaeger["data"]) == {"circuits", "preview", "probe"}
        assert_same(
            {**jaeger, "data": sorted(jaeger["data"])},
            {**viewer, "data": sorted(viewer["data"])},
            "/api/services",
        )

    def test_operations_of_every_service(self, pipeline: PipelineRun) -> None:
        for service in services(pipeline):
            path = f"/api/services/{service}/operations"
            jaeger, viewer = both(pipeline, path)
            assert jaeger["data"], path
            assert_same(
                {**jaeger, "data": sorted(jaeger["data"])},
                {**viewer, "data": sorted(viewer["data"])},
                path,
            )


class TestTraces:
    def test_every_trace_by_id(self, pipeline: PipelineRun) -> None:
        """Every trace the viewer has, fetched by id from both, is the same trace."""
        trace_ids = {
            trace["traceID"]
            for service in services(pipeline)
            for trace in pipeline.from_viewer("/api/traces", service=service, limit=1000)["data"]
        }
        assert len(trace_ids) > 50
        for trace_id in sorted(trace_ids):
            path = f"/api/traces/{trace_id}"
            jaeger, viewer = both(pipeline, path)
            assert_same(comparable_traces(jaeger), comparable_traces(viewer), path)

    def test_the_probe_shapes_carry_everything(self, pipeline: PipelineRun) -> None:
        """The shapes are not vacuous: Jaeger's answer has each of them, as the viewer's does."""
        trace_id = pipeline.probe.trace_ids["shapes"].hex()
        [trace] = pipeline.from_viewer(f"/api/traces/{trace_id}")["data"]
        spans = {span["operationName"]: span for span in trace["spans"]}
        root_tags = {tag["key"]: tag for tag in spans["GET /shapes"]["tags"]}
        assert root_tags["big"] == {"key": "big", "type": "int64", "value": str(2**62)}
        assert root_tags["raw"] == {"key": "raw", "type": "binary", "value": "AAH+"}
        assert root_tags["nested"]["value"] == '{"inner":{"a":{},"b":[]},"k":"v","n":1}'
        assert root_tags["doubles"]["value"] == "[1,2.5,1e-7,1e+21,10000000000000000,0.00001]"
        assert root_tags["texts"]["value"] == (
            '["\\u003ca\\u0026b\\u003e","\u00e9","\\u2028","tab\\there","\\u0001","quote\\""]'
        )
        assert root_tags["empty"] == {"key": "empty", "type": "string", "value": ""}
        assert [tag["key"] for tag in spans["GET /shapes"]["tags"]] == sorted(root_tags)
        assert spans["GET /shapes"]["flags"] == 1  # the W3C flags of 0x101
        assert [log["fields"][0]["value"] for log in spans["GET /shapes"]["logs"][:3]] == [
            "cache miss",
            "bare event",
            "from an attribute",
        ]
        references = spans["linked"]["references"]
        assert [ref["refType"] for ref in references] == [
            "CHILD_OF",
            "FOLLOWS_FROM",
            "FOLLOWS_FROM",
        ]
        assert references[0]["spanID"] == spans["failing call"]["spanID"]
        assert spans["orphan"]["warnings"]
        assert spans["skewed"]["warnings"]

    def test_unknown_trace(self, pipeline: PipelineRun) -> None:
        answers = []
        for base, headers in (
            (pipeline.jaeger.query_url, {}),
            (pipeline.viewer_url, {"Authorization": f"Bearer {pipeline.viewer_token}"}),
        ):
            response = requests.get(f"{base}/api/traces/{'ab' * 16}", headers=headers, timeout=30)
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1]
        assert answers[0][0] == 404


SAME_MEANING: list[dict[str, str | int]] = [
    {"service": "circuits"},  # Jaeger's default limit, 100: more than the run makes
    {"service": "preview", "limit": 1000},
    {"service": "probe", "limit": 1000},
    {"service": "circuits", "operation": "GET /circuits", "limit": 1000},
    {"service": "circuits", "tags": json.dumps({"http.response.status_code": "404"})},
    {"service": "circuits", "tag": "http.request.method:POST", "limit": 1000},
    {"service": "probe", "tags": json.dumps({"error": "true"})},
    {"service": "preview", "operation": "POST /render", "minDuration": "1us"},
]
"""Searches whose filters mean the same in both: the same traces must come back."""


@pytest.mark.parametrize("query", SAME_MEANING, ids=[json.dumps(q) for q in SAME_MEANING])
def test_search(pipeline: PipelineRun, query: dict[str, str | int]) -> None:
    """The same traces found, each the same trace, in the same envelope."""
    jaeger, viewer = both(pipeline, "/api/traces", **query)
    assert jaeger["data"], "a search that finds nothing compares nothing"
    assert_same(comparable_traces(jaeger), comparable_traces(viewer), f"/api/traces {query}")


# Searches whose filters the viewer deliberately applies to the whole trace, where Jaeger
# wants one span of the service to meet them all: (query, is Jaeger's result within
# the viewer's?). A span of at least 20 ms makes a trace of at least 20 ms; a trace of
# at most 2 ms has only spans of at most 2 ms; two tags on one span are two tags in
# the trace.
WHOLE_TRACE: list[tuple[dict[str, str | int], bool]] = [
    ({"service": "circuits", "minDuration": "20ms", "limit": 1000}, True),
    ({"service": "preview", "minDuration": "2ms", "limit": 1000}, True),
    ({"service": "circuits", "maxDuration": "2ms", "limit": 1000}, False),
    (
        {
            "service": "circuits",
            # on a server span and on a query span: never one span, so Jaeger finds none
            "tags": json.dumps({"http.request.method": "GET", "db.system.name": "postgresql"}),
            "limit": 1000,
        },
        True,
    ),
]


@pytest.mark.parametrize(
    ("query", "jaeger_within_viewer"), WHOLE_TRACE, ids=[json.dumps(q) for q, _ in WHOLE_TRACE]
)
def test_search_on_whole_traces(
    pipeline: PipelineRun, query: dict[str, str | int], jaeger_within_viewer: bool
) -> None:
    """The viewer's answer holds Jaeger's (or the reverse), and what both found is alike."""
    jaeger, viewer = (comparable_traces(a) for a in both(pipeline, "/api/traces", **query))
    found_by_jaeger, found_by_viewer = set(jaeger["data"]), set(viewer["data"])
    smaller, larger = (
        (found_by_jaeger, found_by_viewer)
        if jaeger_within_viewer
        else (found_by_viewer, found_by_jaeger)
    )
    assert larger, "a search that finds nothing compares nothing"
    assert smaller <= larger
    for trace_id in sorted(smaller):
        assert_same(jaeger["data"][trace_id], viewer["data"][trace_id], f"{query} {trace_id}")


def test_search_limit_keeps_the_latest_to_start(pipeline: PipelineRun) -> None:
    """Of more matches than ``limit``, the viewer returns those that started last.

    Jaeger's in-memory storage returns those it stored last, which depends on when
    batches arrived (another storage of Jaeger's answers otherwise again), so the
    viewer's choice is checked against all the traces Jaeger has.
    """
    everything = pipeline.from_jaeger("/api/traces", service="circuits", limit=1000)["data"]
    starts = {t["traceID"]: min(s["startTime"] for s in t["spans"]) for t in everything}
    latest = sorted(starts, key=starts.__getitem__, reverse=True)[:5]
    jaeger, viewer = both(pipeline, "/api/traces", service="circuits", limit=5)
    assert len(jaeger["data"]) == 5
    assert {t["traceID"] for t in viewer["data"]} == set(latest)
