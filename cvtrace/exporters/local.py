"""``local``: spans into the viewer's SQLite store, on this machine.

The exporter encodes each span in OTLP protobuf (with cvtrace's encoder, about a
tenth of the SDK encoder's cost) and writes them with
:meth:`cvtrace.store.SpanStore.write_encoded`, which stores the rows the viewer's
OTLP receiver stores for the same spans (each span as its encoded bytes), reading the
span fields from the SDK's objects instead of decoding a request again. The file is
``CVTRACE_LOCAL_DB``, by default the one ``cvtrace view`` opens
(:func:`default_db_path`); its retention is the exporter's own
(``CVTRACE_LOCAL_MAX_SPANS``, ``CVTRACE_LOCAL_MAX_AGE_HOURS``), whatever the viewer's
is. The store is opened on first export in each process (a SQLite connection must not
cross a fork), and again if its file is deleted or replaced while the app runs
(logged once): what could not be written counts as failed in ``handle.stats()``. Only
the span processor's worker thread calls :meth:`LocalSpanExporter.export`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..otlp.encoding import SpanEncoder
from ..store import DEFAULT_MAX_SPANS, DEFAULT_TAG_KEYS, SpanStore, check_file, is_writable
from ..store.connections import check_creatable, refusal

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0


def default_db_path() -> Path:
    """Return the store file the ``local`` exporter and ``cvtrace view`` share.

    ``$CVTRACE_LOCAL_DB`` if set, else ``$XDG_DATA_HOME/cvtrace/traces.sqlite3``
    (``XDG_DATA_HOME`` defaults to ``~/.local/share``).
    """
    explicit = os.environ.get("CVTRACE_LOCAL_DB", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "cvtrace" / "traces.sqlite3"


class LocalSpanExporter(SpanExporter):
    """Write spans into a SQLite span store.

    Args:
        path: the store's file; ``None`` for :func:`default_db_path`.
        max_spans: spans the store keeps (``CVTRACE_LOCAL_MAX_SPANS``); 0: no limit.
        max_age_s: traces that started longer ago are deleted
            (``CVTRACE_LOCAL_MAX_AGE_HOURS``); 0: never.
        tag_keys: attribute keys indexed for tag search (``CVTRACE_STORE_TAG_KEYS``
            adds to the defaults).

    Raises:
        CvtraceConfigError: ``path`` is a file but no span store (another
            application's database, say), or one this user cannot write, or no
            file can be made there (a folder that cannot be created); nothing is
            written to it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_spans: int = DEFAULT_MAX_SPANS,
        max_age_s: float = 0.0,
        tag_keys: Iterable[str] = DEFAULT_TAG_KEYS,
    ) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.max_spans = max_spans
        self.max_age_s = max_age_s
        self.tag_keys = frozenset(tag_keys)
        # reads only: the store is opened on the first export
        check_file(self.path)
        check_creatable(self.path)
        if self.path.exists() and not is_writable(self.path):
            raise refusal(self.path, "this user cannot write it")
        self._store: SpanStore | None = None
        self._store_pid = 0
        self._encoder = SpanEncoder()
        self.last_error = ""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store the spans in one transaction."""
        encoded = self._encoder.encode_grouped(spans)
        try:
            store = self._open()
            result = store.write_encoded(encoded)
            if store.file_changed():  # deleted while they were written: write them again
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
        """Return the store, opened in this process, on the file its path names now."""
        if (
            self._store is not None
            and self._store_pid == os.getpid()
            and self._store.file_changed()
        ):
            logger.warning(
                "the span store %s was deleted or replaced while this process wrote to "
                "it; writing to a new store there",
                self.path,
            )
            self._store.close()  # the old file is gone: a new store is made below
            self._store = None
        if self._store is None or self._store_pid != os.getpid():
            # Checkpoints (and their fsync) in the store's own thread, not in the
            # export thread between two batches: a stalled checkpoint there let the
            # span queue overflow (BENCHMARKS.md, span loss).
            self._store = SpanStore(
                self.path,
                max_spans=self.max_spans,
                max_age_s=self.max_age_s,
                tag_keys=self.tag_keys,
                checkpoint_interval_s=CHECKPOINT_INTERVAL_S,
            )
            self._store_pid = os.getpid()
        return self._store
