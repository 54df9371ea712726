"""Reading the span store: traces and spans by id, summaries, services, operations.

A trace is found by its id in the ``trace_ids`` index or, if it is recent (not
indexed yet, see :mod:`cvtrace.store.writing`), by a scan of the recent rows of
``traces``, newest first. Its spans are one range of ``span_groups``
(:func:`cvtrace.store.schema.group_id_range`); resources and scopes are decoded
once and kept.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from cvtrace.store.batches import (
    SPAN_KIND_NAMES,
    STATUS_ERROR,
    STATUS_NAMES,
    any_value_text,
    group_spans,
)
from cvtrace.store.connections import SQL_VARS, Connections
from cvtrace.store.schema import group_id_range


@dataclass(slots=True)
class StoredSpan:
    """One span as stored, with the resource and scope it was sent with.

    Not frozen: reading a trace makes one per span, and a frozen dataclass costs
    several times as much to make (1-3 µs, against 0.2 µs: a tenth of the Jaeger JSON's
    time per span). Treat it as read-only all the same.
    """

    span: Span
    resource: Resource
    resource_schema_url: str
    scope: InstrumentationScope
    scope_schema_url: str
    service: str


@dataclass(frozen=True)
class TraceSummary:
    """One search result: a trace's summary, maintained on write."""

    trace_id: bytes
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    root_name: str
    root_service: str
    has_root: bool
    services: dict[str, int]
    """Span count per service name."""

    @property
    def duration_ns(self) -> int:
        """Return the trace's duration, from its first start to its last end."""
        return max(0, self.end_ns - self.start_ns)


SUMMARY_COLUMNS = (
    "t.trace_id, t.start_ns, t.end_ns, t.span_count, t.error_count, "
    "t.root_name, t.root_service, t.has_root, t.services"
)
"""The columns of ``traces t`` that :func:`summary_of` reads, in its order."""


def summary_of(row: Sequence[object]) -> TraceSummary:
    """Return the summary in a row of :data:`SUMMARY_COLUMNS`."""
    return TraceSummary(
        trace_id=bytes(row[0]),  # type: ignore[call-overload]
        start_ns=int(row[1]),  # type: ignore[call-overload]
        end_ns=int(row[2]),  # type: ignore[call-overload]
        span_count=int(row[3]),  # type: ignore[call-overload]
        error_count=int(row[4]),  # type: ignore[call-overload]
        root_name=str(row[5]),
        root_service=str(row[6]),
        has_root=bool(row[7]),
        services=json.loads(str(row[8])),
    )


def trace_keys(conn: sqlite3.Connection, trace_ids: Sequence[bytes]) -> dict[bytes, int]:
    """Return the keys of the stored traces among ``trace_ids``.

    The indexed traces are found in ``trace_ids``; the recent ones (above
    ``meta.indexed_key``, at most a batch of the index) by a scan of their rows,
    newest first, that stops when every trace is found (the traces asked for are
    usually the newest). One read transaction: both lookups see the same snapshot.
    """
    keys: dict[bytes, int] = {}
    conn.execute("BEGIN")
    try:
        indexed = conn.execute("SELECT value FROM meta WHERE key = 'indexed_key'").fetchone()[0]
        for i in range(0, len(trace_ids), SQL_VARS):
            chunk = list(trace_ids[i : i + SQL_VARS])
            marks = ",".join("?" * len(chunk))
            for trace_id, key in conn.execute(
                f"SELECT trace_id, key FROM trace_ids WHERE trace_id IN ({marks})", chunk
            ):
                keys[bytes(trace_id)] = int(key)
            missing = [t for t in chunk if t not in keys]
            if missing:
                marks = ",".join("?" * len(missing))
                for trace_id, key in conn.execute(
                    f"SELECT trace_id, key FROM traces WHERE key > ? AND trace_id IN ({marks}) "
                    "ORDER BY key DESC LIMIT ?",
                    (indexed, *missing, len(missing)),
                ):
                    keys[bytes(trace_id)] = int(key)
    finally:
        conn.execute("COMMIT")
    return keys


class Reader:
    """The store's reads, on connections lent by ``connections``.

    Keeps the resources and scopes it decoded (few, and shared by many spans).
    """

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._resources: dict[int, tuple[Resource, str, str]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope, str]] = {}

    def span_count(self) -> int:
        """Return how many spans the store holds."""
        with self._connections.reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'span_count'").fetchone()
        return int(row[0])

    def trace_count(self) -> int:
        """Return how many traces the store holds."""
        with self._connections.reading() as conn:
            return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])

    def services(self) -> list[str]:
        """Return the names of the services with stored spans, sorted."""
        with self._connections.reading() as conn:
            rows = conn.execute(
                "SELECT name FROM services s WHERE EXISTS "
                "(SELECT 1 FROM trace_services t WHERE t.service_id = s.id) ORDER BY name"
            ).fetchall()
        return [r[0] for r in rows]

    def operations(self, service: str) -> list[str]:
        """Return the operation (span) names of one service, sorted."""
        with self._connections.reading() as conn:
            rows = conn.execute(
                "SELECT o.name FROM operations o JOIN services s ON s.id = o.service_id "
                "WHERE s.name = ? AND EXISTS "
                "(SELECT 1 FROM trace_operations t WHERE t.operation_id = o.id) ORDER BY o.name",
                (service,),
            ).fetchall()
        return [r[0] for r in rows]

    def summary(self, trace_id: bytes) -> TraceSummary | None:
        """Return one trace's summary, or None if it is not stored."""
        with self._connections.reading() as conn:
            key = trace_keys(conn, [trace_id]).get(trace_id)
            if key is None:
                return None
            row = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM traces t WHERE key = ?", (key,)
            ).fetchone()
        return summary_of(row) if row is not None else None

    def traces(self, trace_ids: Sequence[bytes]) -> dict[bytes, list[StoredSpan]]:
        """Return the spans of the stored traces among ``trace_ids``, in start order.

        One lookup for them all: the recent traces are found by a scan (see
        :func:`trace_keys`), once for every trace asked for.
        """
        found: dict[bytes, list[StoredSpan]] = {}
        with self._connections.reading() as conn:
            for trace_id, key in trace_keys(conn, trace_ids).items():
                found[trace_id] = self.spans_of(conn, key)
        for spans in found.values():
            spans.sort(key=lambda s: (s.span.start_time_unix_nano, s.span.span_id))
        return found

    def trace_pieces(self, trace_id: bytes, groups_per_read: int) -> TracePieces | None:
        """Return one trace to read in pieces (see ``SpanStore.trace_pieces``)."""
        with self._connections.reading() as conn:
            key = trace_keys(conn, [trace_id]).get(trace_id)
            if key is None:
                return None
            first_id, end_id = group_id_range(key)
            row = conn.execute(
                "SELECT max(id) FROM span_groups WHERE id >= ? AND id < ?", (first_id, end_id)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return TracePieces(self, first_id, int(row[0]), groups_per_read)

    def read_groups(
        self, first_id: int, last_id: int, count: int
    ) -> tuple[list[StoredSpan], int | None]:
        """Return the spans of up to ``count`` groups from ``first_id`` to ``last_id``,
        and the id of the last group read (None: none left)."""
        spans: list[StoredSpan] = []
        last: int | None = None
        with self._connections.reading() as conn:
            for group_id, body, resource_id, scope_id in conn.execute(
                "SELECT id, body, resource_id, scope_id FROM span_groups "
                "WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
                (first_id, last_id, count),
            ):
                resource, rschema, service = self._resource(conn, resource_id)
                scope, sschema = self._scope(conn, scope_id)
                spans.extend(
                    StoredSpan(span, resource, rschema, scope, sschema, service)
                    for span in group_spans(body)
                )
                last = int(group_id)
        return spans, last

    def span(self, trace_id: bytes, span_id: bytes) -> StoredSpan | None:
        """Return one span of one trace, or None."""
        with self._connections.reading() as conn:
            key = trace_keys(conn, [trace_id]).get(trace_id)
            if key is None:
                return None
            rows = conn.execute(
                "SELECT body, resource_id, scope_id, span_ids FROM span_groups "
                "WHERE id >= ? AND id < ?",
                group_id_range(key),
            ).fetchall()
            for body, resource_id, scope_id, span_ids in rows:
                for i in range(0, len(span_ids), 8):
                    if span_ids[i : i + 8] == span_id:
                        resource, rschema, service = self._resource(conn, resource_id)
                        scope, sschema = self._scope(conn, scope_id)
                        span = group_spans(body)[i // 8]
                        return StoredSpan(span, resource, rschema, scope, sschema, service)
        return None

    def iter_trace_ids(self) -> Iterator[bytes]:
        """Yield every stored trace id, oldest arrival first."""
        with self._connections.reading() as conn:
            rows = conn.execute("SELECT trace_id FROM traces ORDER BY key").fetchall()
        for (trace_id,) in rows:
            yield bytes(trace_id)

    def spans_of(self, conn: sqlite3.Connection, trace_key: int) -> list[StoredSpan]:
        """Return the spans of the trace with key ``trace_key``, in stored order."""
        out: list[StoredSpan] = []
        for body, resource_id, scope_id in conn.execute(
            "SELECT body, resource_id, scope_id FROM span_groups WHERE id >= ? AND id < ?",
            group_id_range(trace_key),
        ):
            resource, rschema, service = self._resource(conn, resource_id)
            scope, sschema = self._scope(conn, scope_id)
            out.extend(
                StoredSpan(span, resource, rschema, scope, sschema, service)
                for span in group_spans(body)
            )
        return out

    def _resource(self, conn: sqlite3.Connection, resource_id: int) -> tuple[Resource, str, str]:
        cached = self._resources.get(resource_id)
        if cached is None:
            body, schema_url, service = conn.execute(
                "SELECT r.body, r.schema_url, s.name FROM resources r "
                "JOIN services s ON s.id = r.service_id WHERE r.id = ?",
                (resource_id,),
            ).fetchone()
            cached = (Resource.FromString(body), schema_url, service)
            self._resources[resource_id] = cached
        return cached

    def _scope(self, conn: sqlite3.Connection, scope_id: int) -> tuple[InstrumentationScope, str]:
        cached = self._scopes.get(scope_id)
        if cached is None:
            body, schema_url = conn.execute(
                "SELECT body, schema_url FROM scopes WHERE id = ?", (scope_id,)
            ).fetchone()
            cached = (InstrumentationScope.FromString(body), schema_url)
            self._scopes[scope_id] = cached
        return cached


class TracePieces:
    """One stored trace, read a few span groups at a time (see ``SpanStore.trace_pieces``)."""

    def __init__(self, reader: Reader, first_id: int, last_id: int, groups_per_read: int):
        self._reader = reader
        self._first_id = first_id
        self._last_id = last_id
        self._groups_per_read = groups_per_read

    def __iter__(self) -> Iterator[list[StoredSpan]]:
        """Yield the trace's spans in pieces, in stored order."""
        next_id = self._first_id
        while True:
            spans, last = self._reader.read_groups(next_id, self._last_id, self._groups_per_read)
            if last is None:
                return
            yield spans
            next_id = last + 1


def span_tag_texts(stored: StoredSpan) -> dict[str, str]:
    """Return every scalar attribute of a span and its resource as tag strings.

    Includes the derived tags ``span.kind``, ``otel.status_code`` and ``error``.
    """
    tags: dict[str, str] = {}
    for kv in stored.resource.attributes:
        text = any_value_text(kv.value)
        if text is not None:
            tags[kv.key] = text
    span = stored.span
    for kv in span.attributes:
        text = any_value_text(kv.value)
        if text is not None:
            tags[kv.key] = text
    kind_name = SPAN_KIND_NAMES.get(span.kind)
    if kind_name is not None:
        tags["span.kind"] = kind_name
    status_name = STATUS_NAMES.get(span.status.code)
    if status_name is not None:
        tags["otel.status_code"] = status_name
    if span.status.code == STATUS_ERROR:
        tags["error"] = "true"
    return tags


def spans_to_traces_data(spans: Iterable[StoredSpan]) -> TracesData:
    """Group stored spans back into OTLP ``TracesData`` by resource and scope."""
    data = TracesData()
    resource_index: dict[tuple[bytes, str], ResourceSpans] = {}
    scope_index: dict[tuple[bytes, str, bytes, str], ScopeSpans] = {}
    for stored in spans:
        rkey = (stored.resource.SerializeToString(deterministic=True), stored.resource_schema_url)
        rs = resource_index.get(rkey)
        if rs is None:
            rs = data.resource_spans.add()
            rs.resource.CopyFrom(stored.resource)
            rs.schema_url = stored.resource_schema_url
            resource_index[rkey] = rs
        skey = (*rkey, stored.scope.SerializeToString(deterministic=True), stored.scope_schema_url)
        ss = scope_index.get(skey)
        if ss is None:
            ss = rs.scope_spans.add()
            ss.scope.CopyFrom(stored.scope)
            ss.schema_url = stored.scope_schema_url
            scope_index[skey] = ss
        ss.spans.append(stored.span)
    return data
