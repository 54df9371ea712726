"""The span processor: a bounded queue off the request path, scrubbing, fan-out.

``on_end`` only appends to a bounded queue; a worker thread takes batches, scrubs each
span once and hands the batch to every exporter. A full queue drops the span and
counts it; a failing exporter costs its own spans and nothing else. Outages are
logged when they start and when they end, not once per batch. The worker restarts
in forked children (gunicorn workers), which start with an empty queue.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .config import BatchSettings
from .noise import SUPPRESSED
from .scrubbing import Scrubber

logger = logging.getLogger(__name__)

_DROP_REPORT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class ExportStats:
    """What happened to the spans this process ended (since start or fork)."""

    spans_ended: int
    """Sampled spans handed to the processor."""
    spans_exported: int
    """Spans accepted by every exporter."""
    spans_dropped: int
    """Spans dropped because the queue was full (the app outran the exporters)."""
    spans_failed: int
    """Span deliveries that an exporter failed (counted once per exporter).

    An export that timed out counts as failed, although the receiver may have stored
    it before its answer came too late: a timeout cannot tell, so the count can be
    higher than what was lost (``OTEL_EXPORTER_OTLP_TIMEOUT`` below the collector's
    answer time makes it so)."""
    spans_queued: int
    """Spans waiting in the queue now."""


class _ExporterHealth:
    """Whether one exporter is failing, for outage logging."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.name = type(exporter).__name__
        self.failed_batches = 0
        self.failed_spans = 0

    def record(self, ok: bool, span_count: int) -> None:
        if ok:
            if self.failed_batches:
                logger.warning(
                    "%s recovered after %d failed exports (%d spans lost)",
                    self.name,
                    self.failed_batches,
                    self.failed_spans,
                )
                self.failed_batches = self.failed_spans = 0
            return
        if not self.failed_batches:
            reason = getattr(self.exporter, "last_error", "") or "see the exporter's log"
            logger.warning(
                "%s failed to export %d spans (%s); while it keeps failing its spans are "
                "counted and dropped, and its recovery will be logged",
                self.name,
                span_count,
                reason,
            )
        self.failed_batches += 1
        self.failed_spans += span_count


class ExportingSpanProcessor(SpanProcessor):
    """Batch ended spans in a bounded queue and export them from one worker thread.

    Args:
        exporters: where each batch goes, in order.
        scrubber: redacts each span once before the exporters see it; ``None`` skips it.
        batch: queue and batch sizes, delays (``OTEL_BSP_*``).
    """

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        scrubber: Scrubber | None = None,
        batch: BatchSettings | None = None,
    ) -> None:
        self._exporters = tuple(exporters)
        self._health = [_ExporterHealth(exporter) for exporter in self._exporters]
        self._scrubber = scrubber
        self._batch = batch or BatchSettings()
        self._shutdown = False
        self._init_worker_state()
        self._start_worker()
        weak_self = weakref.ref(self)

        def after_fork_in_child() -> None:
            processor = weak_self()
            if processor is not None and not processor._shutdown:
                processor._init_worker_state()
                processor._start_worker()

        os.register_at_fork(after_in_child=after_fork_in_child)

    # The request path: keep it to a few operations, never raise.

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Do nothing: all the work happens when a span ends."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a sampled span, or count it as dropped when the queue is full."""
        context = span.context
        if context is None or not context.trace_flags.sampled or self._shutdown:
            return
        queue = self._queue
        if len(queue) >= self._batch.max_queue_size:
            self._count_drop()
            return
        queue.append(span)
        if len(queue) >= self._batch.max_export_batch_size:
            self._wake.set()

    # Everything below runs off the request path.

    def stats(self) -> ExportStats:
        """Counts of ended, exported, dropped and failed spans."""
        return ExportStats(
            spans_ended=self._taken + self._dropped + len(self._queue),
            spans_exported=self._exported,
            spans_dropped=self._dropped,
            spans_failed=self._failed,
            spans_queued=len(self._queue),
        )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued now; return whether it finished in time."""
        if self._shutdown or not self._worker.is_alive():
            return not self._queue
        done = threading.Event()
        with self._lock:
            self._flush_requests.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000)

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Flush what is queued within ``timeout_s``, then shut the exporters down."""
        if self._shutdown:
            return
        timeout_s = self._batch.export_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        flushed = self.force_flush(int(timeout_s * 1000))
        self._shutdown = True
        self._wake.set()
        for exporter in self._exporters:
            # Shutting an exporter down also aborts its retries, so a dead collector
            # cannot hold the process beyond the deadline.
            try:
                exporter.shutdown()
            except Exception:
                logger.exception("%s failed to shut down", type(exporter).__name__)
        self._worker.join(max(deadline - time.monotonic(), 0.1))
        lost = len(self._queue)
        if not flushed and lost:
            logger.warning(
                "shutdown timed out after %.1f s; %d spans not exported", timeout_s, lost
            )
        if self._dropped or self._failed:
            logger.warning(
                "spans this process lost: %d dropped (queue full), %d failed to export",
                self._dropped,
                self._failed,
            )

    def _init_worker_state(self) -> None:
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._flush_requests: list[threading.Event] = []
        self._taken = self._exported = self._dropped = self._failed = 0
        self._last_drop_report = 0.0

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="cvtrace-export", daemon=True)
        self._worker.start()

    def _count_drop(self) -> None:
        with self._lock:
            self._dropped += 1
            now = time.monotonic()
            report = now - self._last_drop_report >= _DROP_REPORT_INTERVAL_S
            if report:
                self._last_drop_report = now
        self._wake.set()
        if report:
            logger.warning(
                "span queue full (%d spans): %d spans dropped so far; raise "
                "OTEL_BSP_MAX_QUEUE_SIZE or trace less",
                self._batch.max_queue_size,
                self._dropped,
            )

    def _run(self) -> None:
        # Nothing the exporters do (HTTP requests, SQLite writes) may become a span.
        context.attach(SUPPRESSED)
        while True:
            self._wake.wait(self._batch.schedule_delay_s)
            self._wake.clear()
            if self._shutdown:
                return  # shutdown() flushed already; what is left is reported lost
            with self._lock:
                flush_requests, self._flush_requests = self._flush_requests, []
            self._export_queued()
            for done in flush_requests:
                done.set()

    def _export_queued(self) -> None:
        queue = self._queue
        while queue and not self._shutdown:
            batch: list[ReadableSpan] = []
            while queue and len(batch) < self._batch.max_export_batch_size:
                batch.append(queue.popleft())
            self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        self._taken += len(batch)
        scrubber = self._scrubber
        if scrubber is not None:
            try:
                batch = [scrubber.scrub_span(span) for span in batch]
            except Exception:
                logger.exception("scrubbing failed; dropping %d spans rather than leak", len(batch))
                self._failed += len(batch)
                return
        all_ok = True
        for exporter, health in zip(self._exporters, self._health, strict=True):
            try:
                ok = exporter.export(batch) is SpanExportResult.SUCCESS
            except Exception:
                if not health.failed_batches:  # once per outage, with the traceback
                    logger.exception("%s raised while exporting", health.name)
                ok = False
            health.record(ok, len(batch))
            if not ok:
                all_ok = False
                self._failed += len(batch)
        if all_ok:
            self._exported += len(batch)
