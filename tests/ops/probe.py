"""Spans from "another sender": an OTLP client that neither filters nor scrubs.

cvtrace makes no span for ``/up`` and scrubs secrets in the app, so its own spans never
exercise the collector's ``filter/healthcheck`` and ``redaction``: those exist for other
senders. This one posts hand-built OTLP/HTTP requests to the collector, as any SDK
would: health checks, secrets (a canary that must reach no back end), an attribute
longer than New Relic takes, and one span of every shape the Jaeger model has to
carry (each attribute type, events, links, an error, a trace state, every kind, an
orphan), for comparing the viewer's Jaeger API with Jaeger's own.
"""

from __future__ import annotations

import os
import time
import urllib.request
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SERVICE = "probe"
CANARY = "cvtrace-canary-7Hq2xW9pLz"
"""A secret that the collector's redaction must keep from every back end."""
LONG_VALUE = "0123456789" * 1000
"""10,000 characters: New Relic drops values over 4,095, so the collector cuts them."""
NEW_RELIC_MAX_CHARS = 4095


def _value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(
            kvlist_value=KeyValueList(
                values=[KeyValue(key=k, value=_value(v)) for k, v in value.items()]
            )
        )
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def attributes(**values: object) -> list[KeyValue]:
    """OTLP attributes from keyword arguments (dots in keys spelled as ``__``)."""
    return [KeyValue(key=key.replace("__", "."), value=_value(v)) for key, v in values.items()]


@dataclass
class Probe:
    """The probe spans sent, by role, for the tests to look for."""

    trace_ids: dict[str, bytes] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    health_checks: int = 0
    """Spans of /up requests, which the collector must drop."""


_T0_NS = time.time_ns() - 60_000_000_000
"""The probe's spans start a minute before the tests run, inside any search window."""


def _span(
    name: str, trace_id: bytes, start_ms: float = 0, end_ms: float = 10, **extra: object
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=_T0_NS + int(start_ms * 1_000_000),
        end_time_unix_nano=_T0_NS + int(end_ms * 1_000_000),
    )
    span.attributes.extend(attributes(**extra))
    return span


def probe_request() -> tuple[ExportTraceServiceRequest, Probe]:
    """Build the probe's request: health checks, secrets, a long value, every shape."""
    probe = Probe()
    # Health checks, as older and newer HTTP conventions record them.
    for target in ({"url__path": "/up"}, {"http__target": "/up"}, {"http__target": "/up?full=1"}):
        span = _span("GET /up", os.urandom(16))
        span.attributes.extend(attributes(**target))
        probe.spans.append(span)
        probe.health_checks += 1
    # Secrets: by key (password, authorization) and by value (a bearer token in text).
    probe.trace_ids["secrets"] = os.urandom(16)
    probe.spans.append(
        _span(
            "POST /session",
            probe.trace_ids["secrets"],
            url__path="/session",
            password=CANARY,
            http__request__header__authorization=f"Bearer {CANARY}",
            note=f"retried with Bearer {CANARY}",
        )
    )
    # A value longer than New Relic keeps.
    probe.trace_ids["long"] = os.urandom(16)
    probe.spans.append(
        _span("GET /export", probe.trace_ids["long"], url__path="/export", probe__blob=LONG_VALUE)
    )
    probe.spans.extend(_every_shape(probe))
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=attributes(
                        service__name=SERVICE,
                        service__version="1.2.3",
                        host__name="probe-host",
                        process__pid=4242,
                        deployment__environment__name="test",
                    )
                ),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="probe.scope", version="0.9"),
                        spans=probe.spans,
                    )
                ],
            )
        ]
    )
    return request, probe


def _every_shape(probe: Probe) -> list[Span]:
    """One trace holding every span shape the Jaeger model has to carry."""
    trace_id = probe.trace_ids["shapes"] = os.urandom(16)
    root = _span(
        "GET /shapes",
        trace_id,
        0,
        100,
        url__path="/shapes",
        flag=True,
        count=42,
        ratio=0.25,
        whole=3.0,
        big=2**62,
        label="text",
        raw=b"\x00\x01\xfe",
        tags=["a", "b"],
        numbers=[1, 2, 3],
        doubles=[1.0, 2.5, 1e-7, 1e21, 1e16, 0.00001],
        texts=["<a&b>", "\u00e9", "\u2028", "tab\there", "\x01", 'quote"'],
        blobs=[b"\x00\xff"],
        mixed=[1, "two", True, None],
        nested={"n": 1, "k": "v", "inner": {"b": [], "a": {}}},
        empty=None,
    )
    root.trace_state = "vendor=abc"
    root.flags = 0x101
    root.events.add(
        time_unix_nano=root.start_time_unix_nano + 1000,
        name="cache miss",
        attributes=attributes(size=3, key="cart:1"),
    )
    root.events.add(time_unix_nano=root.start_time_unix_nano + 2000, name="bare event")
    root.events.add(
        time_unix_nano=root.start_time_unix_nano + 3000,
        name="named twice",
        attributes=attributes(event="from an attribute", zeta=1, alpha=2),
    )
    root.events.add(
        time_unix_nano=root.start_time_unix_nano + 4000, name="", attributes=attributes(b=1, a=2)
    )
    spans = [root]
    for offset, kind in enumerate(
        (
            Span.SPAN_KIND_INTERNAL,
            Span.SPAN_KIND_CLIENT,
            Span.SPAN_KIND_PRODUCER,
            Span.SPAN_KIND_CONSUMER,
            Span.SPAN_KIND_UNSPECIFIED,
        )
    ):
        child = _span(f"kind {kind}", trace_id, 1 + offset, 2 + offset)
        child.kind = kind
        child.parent_span_id = root.span_id
        spans.append(child)
    failed = _span("failing call", trace_id, 10, 45)
    failed.kind = Span.SPAN_KIND_CLIENT
    failed.parent_span_id = root.span_id
    failed.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="connection reset"))
    ok = _span("ok call", trace_id, 20, 30)
    ok.parent_span_id = root.span_id
    ok.status.CopyFrom(Status(code=Status.STATUS_CODE_OK, message="fine"))
    linked = _span("linked", trace_id, 30, 40)
    linked.parent_span_id = root.span_id
    linked.links.add(trace_id=probe.trace_ids["secrets"], span_id=os.urandom(8))
    linked.links.add(trace_id=trace_id, span_id=root.span_id, attributes=attributes(why="retry"))
    linked.links.add(
        trace_id=trace_id,
        span_id=failed.span_id,
        attributes=attributes(opentracing__ref_type="child_of"),
    )
    orphan = _span("orphan", trace_id, 40, 50)
    orphan.parent_span_id = os.urandom(8)
    skewed = _span("skewed", trace_id, -5, 5)  # starts before its parent
    skewed.parent_span_id = root.span_id
    return [*spans, failed, ok, linked, orphan, skewed]


def send(collector_otlp_http_url: str, request: ExportTraceServiceRequest) -> None:
    """POST one request to the collector's OTLP/HTTP receiver; it must answer 200."""
    post = urllib.request.Request(
        f"{collector_otlp_http_url}/v1/traces",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(post, timeout=10) as response:
        assert response.status == 200
