"""cvtrace's lean tracer makes the spans the SDK's tracer makes, and steps aside when it cannot."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode

import cvtrace
from cvtrace.testing import CapturedSpans
from cvtrace.tracer import LeanSpan, LeanTracer, tracer_for
from tests.sample_app import create_app, create_engine

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _drive(app: Any) -> None:
    """Every kind of request the library traces: plain, failing, secrets, a caller, app spans."""
    client = app.test_client()
    client.get("/users/1")
    client.get("/users/2", headers={"traceparent": TRACEPARENT})
    client.get("/fail")
    client.post("/login", data={"user": "ada", "password": "pw", "api_key": "k"})
    client.get("/nowhere")


def _shape(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """What an exporter reads of each span, with ids and times replaced by relations."""
    ids = {span.context.span_id: index for index, span in enumerate(spans) if span.context}
    shaped = []
    for span in spans:
        assert span.context is not None
        assert 0 < (span.start_time or 0) <= (span.end_time or 0)
        parent = span.parent
        shaped.append(
            (
                span.name,
                span.kind,
                None if parent is None else ids.get(parent.span_id, "remote"),
                None if parent is None else parent.is_remote,
                span.context.trace_flags.sampled,
                dict(span.attributes or {}),
                span.status.status_code,
                span.status.description,
                [
                    (
                        event.name,
                        {
                            k: v
                            for k, v in (event.attributes or {}).items()
                            if k != "exception.stacktrace"
                        },
                    )
                    for event in span.events
                ],
                [(link.context, dict(link.attributes or {})) for link in span.links],
                (span.dropped_attributes, span.dropped_events, span.dropped_links),
                span.instrumentation_scope.name if span.instrumentation_scope else None,
                span.resource.attributes.get("service.name"),
            )
        )
    return shaped


def _spans_of() -> list[tuple[Any, ...]]:
    """The shapes of the spans of :func:`_drive`, captured as ``cvtrace_spans`` does."""
    cvtrace.testing.reset()
    captured = CapturedSpans()
    cvtrace.api._state.exporters_override = (captured,)
    engine = create_engine()
    app = create_app(engine)
    cvtrace.init(app=app, engine=engine)
    _drive(app)
    spans = captured.spans
    kinds = {type(span) for span in spans if span.instrumentation_scope.name.startswith("cvtrace")}  # type: ignore[union-attr]
    cvtrace.testing.reset()
    return [("span types", sorted(kind.__name__ for kind in kinds)), *_shape(spans)]


class TestSameSpans:
    def test_lean_spans_export_as_the_sdks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The demo-like requests make the same spans through either tracer, scrubbed alike."""
        lean = _spans_of()
        # a length limit no value reaches: the SDK's spans, the same output expected
        monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100000")
        sdk = _spans_of()
        # scrubbed spans are copies (_ReplacedSpan) either way
        # (the SDK hands its processors a ReadableSpan copy of each span)
        assert "LeanSpan" in lean[0][1]
        assert "ReadableSpan" not in lean[0][1]
        assert "ReadableSpan" in sdk[0][1]
        assert "LeanSpan" not in sdk[0][1]
        assert lean[1:] == sdk[1:]
        assert len(lean) == 1 + 8  # five server spans, three query spans


class TestTracerFor:
    @staticmethod
    def _tracer(**kwargs: Any) -> Any:
        limits = kwargs.setdefault("span_limits", SpanLimits())
        return tracer_for(TracerProvider(**kwargs), "t", "1", limits)

    def test_lean_for_the_default_provider(self) -> None:
        assert isinstance(self._tracer(), LeanTracer)

    def test_sdk_tracer_when_the_limits_are_not_known(self) -> None:
        assert not isinstance(tracer_for(TracerProvider(), "t", "1", None), LeanTracer)

    def test_no_op_tracer_when_the_sdk_is_disabled(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        tracer = self._tracer()
        assert not isinstance(tracer, LeanTracer)
        assert not tracer.start_span("s").is_recording()

    @pytest.mark.parametrize(
        "setting",
        [
            {"sampler": ALWAYS_ON},
            {"span_limits": SpanLimits(max_attribute_length=10)},
            {"span_limits": SpanLimits(max_span_attribute_length=10)},
        ],
        ids=["another sampler", "value length limit", "span value length limit"],
    )
    def test_sdk_tracer_when_configured_beyond_lean(self, setting: dict[str, Any]) -> None:
        tracer = self._tracer(**setting)
        assert not isinstance(tracer, LeanTracer)
        assert isinstance(tracer.start_span("s"), trace.Span)

    def test_sdk_tracer_when_sdk_metrics_are_on(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
        assert not isinstance(self._tracer(), LeanTracer)


def _both(limits: SpanLimits | None = None) -> tuple[Any, Any, InMemorySpanExporter]:
    """A lean tracer and the SDK's, on one provider that exports to memory."""
    exporter = InMemorySpanExporter()
    limits = limits or SpanLimits()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lean = tracer_for(provider, "t", "1", limits)
    assert isinstance(lean, LeanTracer)
    return lean, provider.get_tracer("t", "1"), exporter


class TestLeanSpanApi:
    """Each API call on a lean span has the effect it has on an SDK span."""

    @staticmethod
    def _apply(tracer: trace.Tracer, calls: Callable[[trace.Span], object]) -> ReadableSpan:
        span = tracer.start_span("s", kind=SpanKind.SERVER, attributes={"a": 1, "b": "x"})
        calls(span)
        span.end()
        assert isinstance(span, ReadableSpan)  # the lean span is one, as the SDK's is
        return span

    @pytest.mark.parametrize(
        "calls",
        [
            lambda s: s.set_attribute("c", [1, 2]),
            lambda s: s.set_attribute("a", 2),
            lambda s: s.set_attribute("bad", {"no": "dicts"}),
            lambda s: s.set_attribute("", "empty key"),
            lambda s: s.set_attributes({"c": True, "d": 1.5, "e": None}),
            lambda s: s.update_name("renamed"),
            lambda s: (s.set_status(StatusCode.OK), s.set_status(StatusCode.ERROR, "later")),
            lambda s: (s.set_status(StatusCode.ERROR, "bad"), s.set_status(StatusCode.UNSET)),
            lambda s: s.add_event("e", {"k": "v", "n": [1, 2]}),
            lambda s: s.record_exception(ValueError("boom"), {"extra": 1}),
            lambda s: s.add_link(trace.SpanContext(1, 2, False), {"l": 1}),
            lambda s: s.add_link(trace.INVALID_SPAN_CONTEXT),
        ],
        ids=[
            "list value",
            "reset key",
            "invalid value",
            "empty key",
            "several",
            "rename",
            "ok is final",
            "unset ignored",
            "event",
            "exception",
            "link",
            "invalid link",
        ],
    )
    def test_same_effect(self, calls: Any) -> None:
        lean, sdk, exporter = _both()
        lean_span = self._apply(lean, calls)
        sdk_span = self._apply(sdk, calls)
        exported = exporter.get_finished_spans()
        assert exported[0] is lean_span  # a lean span is its own finished span
        assert _shape([lean_span]) == _shape([exported[1]])
        assert sdk_span.name == exported[1].name

    def test_count_limits_drop_the_oldest(self) -> None:
        limits = SpanLimits(max_span_attributes=2, max_events=1)
        lean, sdk, exporter = _both(limits)
        for tracer in (lean, sdk):
            span = tracer.start_span("s", attributes={"a": 1, "b": 2, "c": 3})
            span.set_attribute("d", 4)
            span.add_event("e1")
            span.add_event("e2")
            span.end()
        lean_span, sdk_span = exporter.get_finished_spans()
        assert (
            dict(lean_span.attributes or {})
            == dict(sdk_span.attributes or {})
            == {
                "c": 3,
                "d": 4,
            }
        )
        assert (lean_span.dropped_attributes, lean_span.dropped_events) == (2, 1)
        assert (sdk_span.dropped_attributes, sdk_span.dropped_events) == (2, 1)

    def test_no_changes_after_end(self, caplog: pytest.LogCaptureFixture) -> None:
        lean, _sdk, _exporter = _both()
        span = lean.start_span("s", attributes={"a": 1})
        span.end()
        with caplog.at_level(logging.WARNING):
            span.set_attribute("b", 2)
            span.update_name("other")
            span.end()
        assert dict(span.attributes) == {"a": 1}
        assert span.name == "s"
        assert not span.is_recording()
        assert "ended span" in caplog.text

    def test_children_and_callers(self) -> None:
        """A child gets its parent's trace; an unsampled caller gets a non-recording span."""
        lean, sdk, exporter = _both()
        parent = lean.start_span("parent")
        child = sdk.start_span("child", context=trace.set_span_in_context(parent))
        lean_child = lean.start_span("lean child", context=trace.set_span_in_context(child))
        for span in (lean_child, child, parent):
            span.end()
        finished = {span.name: span for span in exporter.get_finished_spans()}
        trace_id = parent.get_span_context().trace_id
        assert {span.context.trace_id for span in finished.values()} == {trace_id}
        assert finished["lean child"].parent == child.get_span_context()
        assert finished["child"].parent == parent.get_span_context()
        assert (
            parent.get_span_context().trace_flags
            == sdk.start_span("root").get_span_context().trace_flags
        )
        unsampled = trace.NonRecordingSpan(
            trace.SpanContext(7, 8, is_remote=True, trace_flags=trace.TraceFlags(0))
        )
        ignored = lean.start_span("ignored", context=trace.set_span_in_context(unsampled))
        assert not ignored.is_recording()
        assert not isinstance(ignored, LeanSpan)
        assert ignored.get_span_context().trace_id == 7
        assert ignored.get_span_context().span_id != 8


def test_start_as_current_span_and_links_at_start() -> None:
    """The rest of the Tracer API: a current span for a block, links given at start."""
    lean, sdk, exporter = _both()
    link = trace.Link(trace.SpanContext(1, 2, False), {"l": 1})

    def fail_inside(tracer: Any) -> None:
        with tracer.start_as_current_span("outer", attributes={"a": 1}, links=[link]) as outer:
            assert trace.get_current_span() is outer
            raise ValueError("boom")

    for tracer in (lean, sdk):
        with pytest.raises(ValueError, match="boom"):
            fail_inside(tracer)
    lean_span, sdk_span = exporter.get_finished_spans()
    assert isinstance(lean_span, LeanSpan)
    assert _shape([lean_span])[0][:-2] == _shape([sdk_span])[0][:-2]
    assert lean_span.status.status_code is StatusCode.ERROR
    assert [event.name for event in lean_span.events] == ["exception"]


def test_engine_spans_are_lean_and_complete(cvtrace_spans: CapturedSpans) -> None:
    """A query span from the lean tracer carries the conventions' attributes."""
    engine = create_engine()
    cvtrace.init(engine=engine)
    with engine.connect() as connection:
        connection.execute(sa.text("select name from users"))
    (span,) = cvtrace_spans.spans
    assert isinstance(span, LeanSpan)  # nothing to scrub: exported as it was made
    assert span.name == "select"
    assert dict(span.attributes or {}) == {
        "db.system.name": "sqlite",
        "db.query.text": "select name from users",
        "db.operation.name": "select",
    }
