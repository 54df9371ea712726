"""The span store's facade: :class:`SpanStore`, what the rest of cvtrace uses.

It opens the file (:mod:`.connections`) and hands each call to the part that owns
it: writes to the writer (:mod:`.writing`, which applies :mod:`.retention` after
each), reads to the reader (:mod:`.reading`), searches to the searcher
(:mod:`.search`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from cvtrace.otlp.encoding import EncodedResource
from cvtrace.store import calls
from cvtrace.store.batches import prepare_encoded, prepare_request
from cvtrace.store.connections import (
    Connections,
    check_file,
    file_identity,
    is_writable,
    refusal,
)
from cvtrace.store.reading import Reader, StoredSpan, TracePieces, TraceSummary
from cvtrace.store.retention import DEFAULT_MAX_SPANS, Retention
from cvtrace.store.schema import SCHEMA_VERSION, migrate
from cvtrace.store.search import DEFAULT_TAG_KEYS, Searcher, TraceQuery
from cvtrace.store.writing import StoreReadOnlyError, Writer, WriteResult


class SpanStore:
    """A SQLite file of spans, written by exporters and receivers, read by the viewer.

    Thread safe: writes are serialized by a lock on one connection; reads use one
    connection per thread. After ``fork()``, open a new store in the child.

    Usage::

        store = SpanStore(path, max_spans=0, tag_keys=DEFAULT_TAG_KEYS | {"app.tenant"})
        result = store.write_request(request)   # WriteResult(accepted, rejected, message, new)
        store.search(TraceQuery(service="shop", tags={"http.route": "/cart"}))
        store.get_trace(trace_id)               # list[StoredSpan], or [] when unknown
        store.close()

    Args:
        path: The database file; created, with its parent directories, if missing.
        max_spans: Retention by span count, applied by this store's writes
            (:mod:`cvtrace.store.retention`); 0 means no limit.
        max_age_s: Retention by age; 0 means no limit.
        tag_keys: Attribute keys indexed for tag search (every writer of a file
            should index the same ones).
        busy_timeout_s: How long a write waits for another writer.
        checkpoint_interval_s: If set, copy the write-ahead log into the database
            from a background thread this often, instead of in the writing
            thread every few thousand pages (the viewer does this: it takes
            several milliseconds of I/O off every few requests).
        read_only: Open an existing store to read only, writing nothing to it or
            beside it (the viewer does this for a file it cannot write, see
            :func:`cvtrace.store.is_writable`); writes raise
            :class:`cvtrace.store.StoreReadOnlyError`.

    The store reads no environment variable: its callers do (the ``local``
    exporter through :mod:`cvtrace.config`, the viewer through its own config).

    Raises:
        CvtraceConfigError: The file is no span store (nothing is written to it),
            was written by a newer cvtrace, cannot be written (unless
            ``read_only``), or, with ``read_only``, holds no store of this version.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_spans: int = DEFAULT_MAX_SPANS,
        max_age_s: float = 0.0,
        tag_keys: Iterable[str] = DEFAULT_TAG_KEYS,
        busy_timeout_s: float = 10.0,
        checkpoint_interval_s: float | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.max_spans = max_spans
        self.max_age_s = max_age_s
        self.tag_keys = frozenset(tag_keys)
        self.read_only = read_only
        version = check_file(self.path)  # before anything is written to it
        self._connections = Connections(
            self.path, busy_timeout_s=busy_timeout_s, read_only=read_only
        )
        self._writer: Writer | None = None
        if read_only:
            _check_readable(self.path, version)
        else:
            self._writer = self._open_writer(checkpoint_interval_s)
        self._reader = Reader(self._connections)
        self._searcher = Searcher(self._connections, self._reader, self.tag_keys)
        self._identity = file_identity(self.path)

    def file_changed(self) -> bool:
        """Return whether the path no longer names the file this store opened.

        True once the file was deleted (with its directory or not) or replaced: what
        is written then goes to the old file, which nothing will read again.
        """
        return file_identity(self.path) != self._identity

    def _open_writer(self, checkpoint_interval_s: float | None) -> Writer:
        if self.path.exists() and not is_writable(self.path):
            raise refusal(self.path, "this user cannot write it (cvtrace view opens it read-only)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connections.open_writer()
            migrate(conn, self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            self._connections.close()
            raise refusal(self.path, str(exc), untouched=False) from exc
        except BaseException:
            self._connections.close()
            raise
        if checkpoint_interval_s:
            self._connections.start_checkpointer(conn, checkpoint_interval_s)
        return Writer(conn, self.path, Retention(self.max_spans, self.max_age_s))

    def close(self) -> None:
        """Close every connection this store opened; idempotent."""
        self._connections.stop_checkpointer()
        if self._writer is not None:
            self._writer.close()
        self._connections.close()

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------

    def write_request(
        self, request: ExportTraceServiceRequest, encoded: bytes | None = None
    ) -> WriteResult:
        """Store the valid spans of one OTLP request, all or none.

        Requests that wait for the write lock together are written in one
        transaction (group commit): each commit rewrites the tail pages of the
        search tables, so fewer commits cost less per span. Each request's
        spans are stored whole or, if the transaction fails, not at all.

        Spans with a trace id that is not 16 bytes, a span id that is not 8
        bytes, an all-zero id, or a parent span id that is neither empty nor 8
        bytes are refused and counted; the others are stored. A span already
        stored (same trace and span id) is not stored again.

        Args:
            request: An OTLP ``ExportTraceServiceRequest``.
            encoded: The protobuf bytes ``request`` was decoded from, if at hand:
                each span is then stored as its slice of them, as sent, instead
                of being serialized again.

        Returns:
            How many spans were accepted and rejected, and why.
        """
        tag_keys = self.tag_keys
        return self._writing().write(lambda: prepare_request(request, encoded, tag_keys))

    def write_encoded(self, resources: Sequence[EncodedResource]) -> WriteResult:
        """Store SDK spans encoded by :class:`cvtrace.otlp.encoding.SpanEncoder`.

        The ``local`` exporter's path: the same rows as :meth:`write_request` of
        the request :func:`cvtrace.otlp.encoding.request_bytes` makes of them
        (``tests/store/test_local_vs_otlp.py`` compares every table), without decoding
        that request again: the span fields come from the SDK's objects.
        """
        tag_keys = self.tag_keys
        return self._writing().write(lambda: prepare_encoded(resources, tag_keys))

    def _writing(self) -> Writer:
        if self._writer is None:
            msg = (
                f"the span store {self.path} is open read-only (this user cannot write "
                "it): it takes no spans; run cvtrace view as a user who can write it, "
                "or on another file"
            )
            raise StoreReadOnlyError(msg)
        return self._writer

    def enforce_retention(self) -> None:
        """Apply both retention limits now (every write also does this)."""
        if self._writer is not None:  # read-only: nothing to apply
            self._writer.enforce_retention()

    # -- reading -----------------------------------------------------------

    def span_count(self) -> int:
        """Return how many spans the store holds."""
        return self._reader.span_count()

    def trace_count(self) -> int:
        """Return how many traces the store holds."""
        return self._reader.trace_count()

    def services(self) -> list[str]:
        """Return the names of the services with stored spans, sorted."""
        return self._reader.services()

    def operations(self, service: str) -> list[str]:
        """Return the operation (span) names of one service, sorted."""
        return self._reader.operations(service)

    def get_summary(self, trace_id: bytes) -> TraceSummary | None:
        """Return one trace's summary, or None if it is not stored."""
        return self._reader.summary(trace_id)

    def get_trace(self, trace_id: bytes) -> list[StoredSpan]:
        """Return the spans of one trace in start order; [] if unknown."""
        return self._reader.traces([trace_id]).get(trace_id, [])

    def get_traces(self, trace_ids: Sequence[bytes]) -> dict[bytes, list[StoredSpan]]:
        """Return the spans of the stored traces among ``trace_ids``, in start order."""
        return self._reader.traces(trace_ids)

    def trace_pieces(self, trace_id: bytes, *, groups_per_read: int = 4) -> TracePieces | None:
        """Return one trace to read in pieces (None if it is not stored).

        For answers too big to build at once (a 200,000-span trace is over 100 MB
        of JSON): each iteration reads the trace's span groups a few at a time,
        in the order they were stored, and lends a reader connection only while
        it reads them. Every iteration reads the same groups: those stored when
        this was called (later ones are left out; ones deleted since are skipped).
        """
        return self._reader.trace_pieces(trace_id, groups_per_read)

    def get_span(self, trace_id: bytes, span_id: bytes) -> StoredSpan | None:
        """Return one span of one trace, or None."""
        return self._reader.span(trace_id, span_id)

    def iter_trace_ids(self) -> Iterator[bytes]:
        """Yield every stored trace id, oldest arrival first."""
        return self._reader.iter_trace_ids()

    def search(self, query: TraceQuery) -> list[TraceSummary]:
        """Return the newest traces matching ``query``, newest start first.

        See :mod:`cvtrace.store.search` for what matches.
        """
        return self._searcher.search(query)

    # -- calls: the service map and RED metrics (:mod:`.calls`) --------------

    def dependencies(self, start_ns: int, end_ns: int) -> list[tuple[str, str, int, int]]:
        """Return (parent service, child service, calls, errors) of the calls between
        services that started in ``[start_ns, end_ns)``."""
        with self._connections.reading() as conn:
            return calls.read_dependencies(conn, start_ns, end_ns)

    def entry_calls(
        self, after_ns: int, until_ns: int, services: Iterable[str]
    ) -> tuple[list[tuple[int, int, int, int]], dict[int, tuple[str, str]]]:
        """Return the entry spans of ``services`` that started in ``(after_ns, until_ns]``.

        See :func:`cvtrace.store.calls.read_entry_calls`.
        """
        with self._connections.reading() as conn:
            return calls.read_entry_calls(conn, after_ns, until_ns, services)

    def call_traces(
        self, parent: str, child: str, start_ns: int, end_ns: int, limit: int = 20
    ) -> list[bytes]:
        """Return the newest traces with a call from ``parent`` to ``child`` in the window."""
        with self._connections.reading() as conn:
            return calls.read_call_traces(conn, parent, child, start_ns, end_ns, limit)


def _check_readable(path: Path, version: int) -> None:
    """Refuse to open read-only what holds no store of this version.

    Raises:
        CvtraceConfigError: There is no store yet, or one that needs migrating.
    """
    if version == 0:
        raise refusal(path, "it holds no span store yet, and this user cannot write it")
    if version < SCHEMA_VERSION:
        raise refusal(
            path,
            f"it has schema version {version}, older than this cvtrace reads "
            f"({SCHEMA_VERSION}), and this user cannot write it to migrate it: open it "
            "once as a user who can",
        )
