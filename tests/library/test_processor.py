"""The export processor never hurts the app: bounded queue, counted drops, quiet outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import cvtrace
import cvtrace.testing
from cvtrace.config import BatchSettings
from cvtrace.processor import ExportingSpanProcessor
from tests.otlp_receiver import HttpOtlpReceiver
from tests.sample_app import create_app, create_engine


class BlockingExporter(SpanExporter):
    """Holds every export until released, like a collector that stopped answering."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("exporter bug")

    def shutdown(self) -> None:
        pass


def _tracer(processor: ExportingSpanProcessor) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider.get_tracer("test")


def test_full_queue_drops_and_counts_without_blocking() -> None:
    exporter = BlockingExporter()
    processor = ExportingSpanProcessor(
        [exporter], batch=BatchSettings(max_queue_size=100, max_export_batch_size=10)
    )
    tracer = _tracer(processor)
    for _ in range(1000):
        with tracer.start_as_current_span("s"):
            pass
    # Every span ended while the exporter was still holding its first batch: ending a
    # span never waited for it.
    assert exporter.exported == []
    stats = processor.stats()
    assert stats.spans_dropped >= 1000 - 100 - 10
    assert stats.spans_queued <= 100
    assert stats.spans_ended == 1000
    exporter.release.set()
    assert processor.force_flush(5000)
    assert len(exporter.exported) == 1000 - processor.stats().spans_dropped
    processor.shutdown(1)


def test_exporter_exception_is_logged_once_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = ExportingSpanProcessor([RaisingExporter()])
    tracer = _tracer(processor)
    for _ in range(3):
        with tracer.start_as_current_span("s"):
            pass
        assert processor.force_flush(2000)
    stats = processor.stats()
    assert stats.spans_failed == 3
    assert stats.spans_exported == 0
    raised = [r for r in caplog.records if "raised while exporting" in r.getMessage()]
    assert len(raised) == 1  # with its traceback, for the bug report
    assert raised[0].exc_info is not None
    outage = [r for r in caplog.records if "failed to export" in r.getMessage()]
    assert len(outage) == 1
    processor.shutdown(1)


def test_one_failing_exporter_does_not_cost_the_other_its_spans() -> None:
    captured = cvtrace.testing.CapturedSpans()
    processor = ExportingSpanProcessor([RaisingExporter(), captured])
    tracer = _tracer(processor)
    with tracer.start_as_current_span("s"):
        pass
    assert processor.force_flush(2000)
    assert [s.name for s in captured.spans] == ["s"]
    processor.shutdown(1)


class TestDeadCollector:
    """With nothing listening, requests run at normal speed and shutdown is quick."""

    def test_requests_unaffected_and_shutdown_fast(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A port that was just free: connection refused, like a collector that is down.
        with HttpOtlpReceiver() as receiver:
            dead_endpoint = receiver.endpoint
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", dead_endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "256")
        engine = create_engine()
        app = create_app(engine)
        handle = cvtrace.init(app=app, engine=engine, shutdown_timeout_s=2)
        client = app.test_client()
        durations_s = []
        for _ in range(400):
            started = time.perf_counter()
            assert client.get("/users/1").status_code == 200
            durations_s.append(time.perf_counter() - started)
        durations_s.sort()
        assert durations_s[len(durations_s) // 2] < 0.02  # median request stays fast

        started = time.perf_counter()
        cvtrace.shutdown()
        shutdown_s = time.perf_counter() - started
        assert shutdown_s < 4, shutdown_s  # vanilla: ~29 s of retries

        stats = handle.stats()
        assert stats.spans_exported == 0
        assert stats.spans_dropped + stats.spans_failed + stats.spans_queued > 0
        lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert 1 <= len(lines) <= 6, [r.getMessage() for r in lines]

    def test_slow_collector_costs_requests_nothing(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        otlp_http.delay_s = 2.0
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine, shutdown_timeout_s=1)
        client = app.test_client()
        started = time.perf_counter()
        for _ in range(100):
            client.get("/users/1")
        assert time.perf_counter() - started < 2.0
        started = time.perf_counter()
        cvtrace.shutdown()
        assert time.perf_counter() - started < 4

    def test_recovery_is_logged(
        self,
        monkeypatch: pytest.MonkeyPatch,
        otlp_http: HttpOtlpReceiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        otlp_http.status = 400  # not retryable: fails at once
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        handle = cvtrace.init(exporters=["otlp"])
        assert handle.provider is not None
        tracer = handle.provider.get_tracer("t")
        for _ in range(3):
            tracer.start_span("s").end()
            handle.force_flush(5)
        otlp_http.status = 200
        tracer.start_span("s").end()
        handle.force_flush(5)
        messages = [r.getMessage() for r in caplog.records if r.name == "cvtrace.processor"]
        assert len([m for m in messages if "failed to export" in m]) == 1
        assert any("recovered after 3 failed exports (3 spans lost)" in m for m in messages)
        assert len(otlp_http.spans()) == 1
