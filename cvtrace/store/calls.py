"""Calls: entry spans and cross-service calls, kept as spans are written.

The viewer's service map and RED metrics read these rows instead of decoding spans
(a million spans take minutes to decode; their calls a fraction of a second to
read). The definition is the viewer's (``cvtrace.viewer.analyses.calls``): a row
per span that is an **entry** (server or consumer kind, or without a parent) or
whose parent span is in **another service**, with the parent's service.

The parent of a span is often written in another request than the span: a service
exports a request's children before the request itself ends, and the caller and the
called service export separately. So a write resolves each parent three ways:

1. in the same request (a dictionary lookup: most spans);
2. among the spans stored before for the trace (only when the trace continues and
   a parent was not in the request: one range read of the trace's span ids);
3. not yet stored: the span waits in ``pending_calls``, keyed by trace and parent
   id; a later write of that trace that brings the parent settles it (one indexed
   read per continued trace). A parent that never comes is an orphan: no call.

Cost on ingest (BENCHMARKS.md, ingest before/after): a pass over the request's
spans in Python, and rows for about one span in five of demo-like traffic (the
entry spans). Retention deletes a trace's rows with it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.store.batches import MAX_I64, STATUS_ERROR, BatchSpan, group_spans
from cvtrace.store.schema import group_id_range

__all__ = [
    "ENTRY",
    "ERROR",
    "CallWriter",
    "backfill",
    "delete_traces",
    "read_call_traces",
    "read_dependencies",
    "read_entry_calls",
    "write_rows",
]

ERROR = 1
ENTRY = 2
KIND_SHIFT = 3
"""``flags`` of a row: bit 0 error, bit 1 entry, the span kind from bit 3."""
_ENTRY_KINDS = frozenset({Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CONSUMER})
_ZERO_SPAN_ID = bytes(8)
_SQL_VARS = 500

PendingRow = tuple[bytes, bytes, int, int, int, int, int]
"""(parent_span_id, span_id, start_ns, operation_id, duration_ns, flags, service_id)."""


class CallWriter:
    """Collects the call rows of one write transaction, trace by trace.

    Args:
        conn: The writer's connection, in its transaction.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls: list[object] = []
        """Rows for ``calls``, their values laid end to end."""
        self.pending: list[object] = []
        """Rows for ``pending_calls``, their values laid end to end."""

    def add_trace(
        self,
        key: int,
        spans: Mapping[bytes, BatchSpan],
        service_ids: Sequence[int],
        operation_ids: Mapping[tuple[int, str], int],
        continued: bool,
    ) -> None:
        """Add the rows of a trace's new spans.

        Args:
            key: The trace's key.
            spans: Its spans in this write, by id (none of them stored before).
            service_ids: The service id of each resource index of the request.
            operation_ids: Operation ids by (service id, span name); has every
                operation of ``spans``.
            continued: Whether the trace had spans stored before this write.
        """
        calls = self.calls
        waiting: list[BatchSpan] = []
        get = spans.get
        # most spans are children of a span of the same request and resource (the same
        # service): a lookup and a comparison each, by index, without unpacking them
        for span in spans.values():
            if span[7]:  # a root: an entry, called by no one
                parent_service = None
            else:
                above = get(span[10])
                if above is None or above is span:  # not in this request, or itself
                    waiting.append(span)
                    continue
                if above[1] == span[1]:  # same resource, same service
                    if span[11] not in _ENTRY_KINDS:
                        continue
                    parent_service = None
                else:
                    parent_service = service_ids[above[1]]
                    if parent_service == service_ids[span[1]]:
                        parent_service = None
                        if span[11] not in _ENTRY_KINDS:
                            continue
            span_id, resource, _, _, start, end, error, root, name, _, _, kind = span
            entry = root or kind in _ENTRY_KINDS
            start = min(start, MAX_I64)
            calls += (
                start,
                span_id,
                key,
                operation_ids[service_ids[resource], name],
                min(max(0, end - start), MAX_I64),
                (ERROR if error else 0) | (ENTRY if entry else 0) | kind << KIND_SHIFT,
                parent_service,
            )
        stored: dict[bytes, int] = {}
        if waiting and continued:
            stored = self._stored_services(key)
        for span in waiting:
            span_id, resource, _, _, start, end, error, root, name, _, parent, kind = span
            entry = kind in _ENTRY_KINDS
            service = service_ids[resource]
            start = min(start, MAX_I64)
            row = (
                parent,
                span_id,
                start,
                operation_ids[service, name],
                min(max(0, end - start), MAX_I64),
                (ERROR if error else 0) | (ENTRY if entry else 0) | kind << KIND_SHIFT,
                service,
            )
            parent_service = stored.get(parent) if parent != span_id else None
            if parent_service is None:
                self.pending += (key, *row)
                if entry:  # counted in RED now; its caller is set when it arrives
                    calls += (start, span_id, key, row[3], row[4], row[5], None)
            elif entry or parent_service != service:
                calls += (
                    start,
                    span_id,
                    key,
                    row[3],
                    row[4],
                    row[5],
                    parent_service if parent_service != service else None,
                )
        if continued:
            self._settle(key, spans, service_ids)

    def _stored_services(self, key: int) -> dict[bytes, int]:
        """Return the service id of each span stored for trace ``key``."""
        out: dict[bytes, int] = {}
        for span_ids, service in self.conn.execute(
            "SELECT g.span_ids, r.service_id FROM span_groups g "
            "JOIN resources r ON r.id = g.resource_id WHERE g.id >= ? AND g.id < ?",
            group_id_range(key),
        ):
            for i in range(0, len(span_ids), 8):
                out.setdefault(span_ids[i : i + 8], service)
        return out

    def _settle(
        self, key: int, spans: Mapping[bytes, BatchSpan], service_ids: Sequence[int]
    ) -> None:
        """Settle the waiting spans of trace ``key`` whose parent is among ``spans``."""
        conn = self.conn
        rows: list[PendingRow] = conn.execute(
            "SELECT parent_span_id, span_id, start_ns, operation_id, duration_ns, flags, "
            "service_id FROM pending_calls WHERE trace_key = ?",
            (key,),
        ).fetchall()
        for parent, span_id, start, operation, duration, flags, service in rows:
            above = spans.get(parent)
            if above is None:
                continue
            parent_service = service_ids[above[1]]
            if parent_service != service:
                if flags & ENTRY:
                    conn.execute(
                        "UPDATE calls SET parent_service_id = ? WHERE start_ns = ? AND span_id = ?",
                        (parent_service, start, span_id),
                    )
                else:
                    self.calls += (start, span_id, key, operation, duration, flags, parent_service)
            conn.execute(
                "DELETE FROM pending_calls WHERE trace_key = ? AND parent_span_id = ? "
                "AND span_id = ?",
                (key, parent, span_id),
            )


def delete_traces(conn: sqlite3.Connection, last_key: int) -> None:
    """Delete the rows of the traces up to key ``last_key`` (retention)."""
    conn.execute("DELETE FROM calls WHERE trace_key <= ?", (last_key,))
    conn.execute("DELETE FROM pending_calls WHERE trace_key <= ?", (last_key,))


def backfill(conn: sqlite3.Connection) -> None:
    """Compute the rows of every stored trace (the migration to schema 5).

    Runs in the migration's transaction: a store of 1,000,000 spans took 7 s (2.9 s of
    CPU) here.
    """
    services = dict(conn.execute("SELECT r.id, r.service_id FROM resources r"))
    operations = {
        (service, name): op
        for op, service, name in conn.execute("SELECT id, service_id, name FROM operations")
    }
    keys = [key for (key,) in conn.execute("SELECT key FROM traces ORDER BY key")]
    writer = CallWriter(conn)
    resource_indexes: dict[int, int] = {}
    service_ids: list[int] = []
    for key in keys:
        spans: dict[bytes, BatchSpan] = {}
        for body, resource_id in conn.execute(
            "SELECT body, resource_id FROM span_groups WHERE id >= ? AND id < ?",
            group_id_range(key),
        ):
            index = resource_indexes.get(resource_id)
            if index is None:
                index = resource_indexes[resource_id] = len(service_ids)
                service_ids.append(services[resource_id])
            for span in group_spans(body):
                parent = span.parent_span_id
                spans.setdefault(
                    span.span_id,
                    (
                        span.span_id,
                        index,
                        0,
                        b"",
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        span.status.code == STATUS_ERROR,
                        not parent or parent == _ZERO_SPAN_ID,
                        span.name,
                        "",
                        parent,
                        span.kind,
                    ),
                )
        writer.add_trace(key, spans, service_ids, operations, continued=False)
        if len(writer.calls) > 70_000:
            write_rows(conn, writer)
    write_rows(conn, writer)


def write_rows(conn: sqlite3.Connection, writer: CallWriter) -> None:
    """Insert the rows ``writer`` collected, and forget them."""
    # the store's multi-row insert; imported here: cvtrace.store.writing imports this module
    from cvtrace.store.writing import _insert_rows

    _insert_rows(
        conn,
        "INSERT OR IGNORE INTO calls (start_ns, span_id, trace_key, operation_id, "
        "duration_ns, flags, parent_service_id)",
        7,
        writer.calls,
    )
    _insert_rows(
        conn,
        "INSERT OR IGNORE INTO pending_calls (trace_key, parent_span_id, span_id, start_ns, "
        "operation_id, duration_ns, flags, service_id)",
        8,
        writer.pending,
    )
    writer.calls = []
    writer.pending = []


# -- reading -------------------------------------------------------------------


def _service_ids(conn: sqlite3.Connection, names: Iterable[str]) -> list[int]:
    wanted = list(names)
    found: list[int] = []
    for i in range(0, len(wanted), _SQL_VARS):
        chunk = wanted[i : i + _SQL_VARS]
        marks = ",".join("?" * len(chunk))
        found += [
            int(r[0])
            for r in conn.execute(f"SELECT id FROM services WHERE name IN ({marks})", chunk)
        ]
    return found


def read_dependencies(
    conn: sqlite3.Connection, start_ns: int, end_ns: int
) -> list[tuple[str, str, int, int]]:
    """Return (parent service, child service, calls, errors) of calls starting in the window.

    The window is ``[start_ns, end_ns)``.
    """
    rows = conn.execute(
        "SELECT c.parent_service_id, o.service_id, count(*), sum(c.flags & 1) "
        "FROM calls c JOIN operations o ON o.id = c.operation_id "
        "WHERE c.start_ns >= ? AND c.start_ns < ? AND c.parent_service_id IS NOT NULL "
        "GROUP BY c.parent_service_id, o.service_id",
        (start_ns, end_ns),
    ).fetchall()
    names = dict(conn.execute("SELECT id, name FROM services"))
    return [(names[p], names[c], int(n), int(e)) for p, c, n, e in rows]


def read_entry_calls(
    conn: sqlite3.Connection, after_ns: int, until_ns: int, services: Iterable[str]
) -> tuple[list[tuple[int, int, int, int]], dict[int, tuple[str, str]]]:
    """Return the entry spans of ``services`` that started in ``(after_ns, until_ns]``.

    Returns:
        ``(start_ns, duration_ns, operation id, flags)`` per span, in start order,
        and the (service, operation) of each operation id.
    """
    ids = _service_ids(conn, services)
    if not ids:
        return [], {}
    marks = ",".join("?" * len(ids))
    operations = {
        int(op): (str(service), str(name))
        for op, service, name in conn.execute(
            f"SELECT o.id, s.name, o.name FROM operations o JOIN services s ON s.id = o.service_id "
            f"WHERE o.service_id IN ({marks})",
            ids,
        )
    }
    if not operations:
        return [], {}
    op_marks = ",".join("?" * len(operations))
    rows = conn.execute(
        "SELECT start_ns, duration_ns, operation_id, flags FROM calls "
        f"WHERE start_ns > ? AND start_ns <= ? AND flags & {ENTRY} "
        f"AND operation_id IN ({op_marks})",
        (after_ns, until_ns, *operations),
    ).fetchall()
    return rows, operations


def read_call_traces(
    conn: sqlite3.Connection, parent: str, child: str, start_ns: int, end_ns: int, limit: int
) -> list[bytes]:
    """Return the ids of the newest traces with a call from ``parent`` to ``child``.

    Calls that start in ``[start_ns, end_ns)``; newest call first, each trace once.
    """
    found = _service_ids(conn, [parent])
    child_ids = _service_ids(conn, [child])
    if not found or not child_ids:
        return []
    out: list[bytes] = []
    seen: set[int] = set()
    for key, trace_id in conn.execute(
        "SELECT c.trace_key, t.trace_id FROM calls c "
        "JOIN operations o ON o.id = c.operation_id JOIN traces t ON t.key = c.trace_key "
        "WHERE c.start_ns >= ? AND c.start_ns < ? AND c.parent_service_id = ? "
        "AND o.service_id = ? ORDER BY c.start_ns DESC",
        (start_ns, end_ns, found[0], child_ids[0]),
    ):
        if key not in seen:
            seen.add(key)
            out.append(bytes(trace_id))
            if len(out) >= limit:
                break
    return out
