"""Retention: how much the span store keeps, applied by whoever writes.

Whoever writes the store applies its own limits after each write, with the writing
connection: the viewer those of ``CVTRACE_VIEWER_MAX_SPANS`` and
``CVTRACE_VIEWER_MAX_AGE_HOURS``, an app's ``local`` exporter those of
``CVTRACE_LOCAL_MAX_SPANS`` and ``CVTRACE_LOCAL_MAX_AGE_HOURS`` (the store reads
neither: each writer passes its own):

- ``max_spans`` (default 1,000,000): once a write takes the store above it, the
  oldest traces (by arrival) are deleted, whole, until the store holds 90% of the
  limit.
- ``max_age_s`` (default 0, no age limit): traces that started longer ago are
  deleted, oldest arrival first, checked at most once a minute while none are
  left; the sweep stops at the first newer trace, so a trace with a skewed clock
  that arrived among newer ones waits for the next sweep past it.

**Deletion goes in small steps**, one short transaction after each write (and each
``enforce_retention``): at most :data:`RETENTION_STEP_SPANS` spans, or what the
write put over the limit if that is more, so the store never stays above
``max_spans`` and no write waits for a long deletion. At 10,000,000 spans, deleting
the 10% in one transaction held the writer for 11 s (BENCHMARKS.md, section 14).
Every table a trace has rows in is deleted by a range of its trace key: the call
rows through the ``calls_by_trace`` index (schema 6); they were scanned whole.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from cvtrace.store import calls
from cvtrace.store.connections import write_transaction
from cvtrace.store.schema import ORDINAL_BITS

logger = logging.getLogger(__name__)

DEFAULT_MAX_SPANS = 1_000_000
RETENTION_STEP_SPANS = 2_000
"""Spans one retention step deletes at most, beyond those a write put over the limit."""
_AGE_CHECK_INTERVAL_S = 60.0
_RETAIN_FRACTION = 0.9


class Retention:
    """The limits of one store's writer, and how far its deletions have come.

    Args:
        max_spans: Spans kept at most; 0 means no limit.
        max_age_s: Traces that started longer ago are deleted; 0 means no limit.
    """

    def __init__(self, max_spans: int, max_age_s: float) -> None:
        self.max_spans = max_spans
        self.max_age_s = max_age_s
        self._next_age_check = 0.0
        self._trimming = False
        """Whether the store went above ``max_spans`` and is not down to 90% yet."""

    def apply(self, conn: sqlite3.Connection, *, check_age_now: bool = False) -> None:
        """Take one step of deletion if a limit needs it, with the writing connection
        (its lock held)."""
        if check_age_now:
            self._next_age_check = 0.0
        if self.max_spans:
            self._trim(conn)
        if self.max_age_s and time.monotonic() >= self._next_age_check:
            _, more = _delete_oldest(
                conn,
                max_spans=RETENTION_STEP_SPANS,
                started_before_ns=time.time_ns() - int(self.max_age_s * 1e9),
            )
            # more to delete: the next write (or enforce_retention) goes on at once
            self._next_age_check = 0.0 if more else time.monotonic() + _AGE_CHECK_INTERVAL_S

    def _trim(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'span_count'").fetchone()
        total = int(row[0])
        if total > self.max_spans and not self._trimming:
            self._trimming = True
            logger.info(
                "span store above its limit of %d spans (%d): deleting the oldest traces "
                "down to %d, a step after each write",
                self.max_spans,
                total,
                int(self.max_spans * _RETAIN_FRACTION),
            )
        if not self._trimming:
            return
        low = int(self.max_spans * _RETAIN_FRACTION)
        if total <= low:
            self._trimming = False
            return
        step = min(total - low, max(total - self.max_spans, RETENTION_STEP_SPANS))
        removed, _ = _delete_oldest(conn, max_spans=step)
        if removed == 0 or total - removed <= low:
            self._trimming = False


def _delete_oldest(
    conn: sqlite3.Connection,
    *,
    max_spans: int,
    started_before_ns: int | None = None,
) -> tuple[int, bool]:
    """Delete the oldest traces by arrival, whole, in one transaction.

    Deletes traces until at least ``max_spans`` spans are gone (whole traces: a
    few more), and, with ``started_before_ns``, only while they started before it.

    Returns:
        The spans deleted, and whether the age sweep stopped at ``max_spans``
        (more old traces may follow).
    """
    with write_transaction(conn):
        cutoff: int | None = None
        removed = 0
        more = False
        rows = conn.execute(
            "SELECT key, start_ns, span_count FROM traces ORDER BY key LIMIT ?",
            (max(1, max_spans),),  # a trace holds at least one span
        )
        for key, start, n in rows:
            if removed >= max_spans:
                more = True
                break
            if started_before_ns is not None and start >= started_before_ns:
                break
            cutoff = key
            removed += n
        rows.close()
        if cutoff is None:
            return 0, False
        conn.execute(
            "DELETE FROM trace_ids WHERE trace_id IN (SELECT trace_id FROM traces WHERE key <= ?)",
            (cutoff,),
        )
        conn.execute("DELETE FROM span_groups WHERE id < ?", ((cutoff + 1) << ORDINAL_BITS,))
        conn.execute("DELETE FROM traces WHERE key <= ?", (cutoff,))
        calls.delete_traces(conn, cutoff)
        for table, column, id_table in (
            ("trace_services", "service_id", "services"),
            ("trace_operations", "operation_id", "operations"),
            ("trace_tags", "tag_id", "tags"),
        ):
            conn.execute(
                f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM {id_table}) "
                "AND trace_key <= ?",
                (cutoff,),
            )
        conn.execute(
            "UPDATE meta SET value = max(0, value - ?) WHERE key = 'span_count'", (removed,)
        )
    logger.debug("span store retention removed %d spans (traces up to #%d)", removed, cutoff)
    return removed, more
