"""``local``: spans into the viewer's SQLite store, on this machine.

The exporter encodes each span in OTLP protobuf (with cvtrace's encoder, about a
tenth of the SDK encoder's cost) and writes them with
:meth:`cvtrace.store.SpanStore.write_encoded`, which stores the rows the viewer's
OTLP receiver stores for the same spans (each span as its encoded bytes), reading the
span fields from the SDK's objects instead of decoding a request again. The file is
``CVTRACE_LOCAL_DB``, by default the one ``cvtrace view`` opens. The store is opened
on first export in each process (a SQLite connection must not cross a fork). Only
the span processor's worker thread calls :meth:`LocalSpanExporter.export`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..otlp.encoding import SpanEncoder
from ..store import SpanStore, default_db_path

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0


class LocalSpanExporter(SpanExporter):
    """Write spans into a SQLite span store.

    Args:
        path: the store's file; ``None`` for :func:`cvtrace.store.default_db_path`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._store: SpanStore | None = None
        self._store_pid = 0
        self._encoder = SpanEncoder()
        self.last_error = ""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store the spans in one transaction."""
        encoded = self._encoder.encode_grouped(spans)
        try:
            result = self._open().write_encoded(encoded)
        except Exception as error:  # sqlite3 errors, a full disk, a locked file
            self.last_error = f"{type(error).__name__}: {error}"
            logger.debug("writing spans to %s failed", self.path, exc_info=True)
            return SpanExportResult.FAILURE
        if result.rejected_spans:
            self.last_error = result.error_message
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the store."""
        if self._store is not None and self._store_pid == os.getpid():
            self._store.close()
        self._store = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is committed before it returns."""
        return True

    def _open(self) -> SpanStore:
        if self._store is None or self._store_pid != os.getpid():
            # Checkpoints (and their fsync) in the store's own thread, not in the
            # export thread between two batches: a stalled checkpoint there let the
            # span queue overflow (BENCHMARKS.md, span loss).
            self._store = SpanStore(self.path, checkpoint_interval_s=CHECKPOINT_INTERVAL_S)
            self._store_pid = os.getpid()
        return self._store
