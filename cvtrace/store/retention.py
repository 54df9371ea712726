"""Retention: how much the span store keeps, applied by whoever writes.

Whoever writes the store applies its own limits after each write, with the writing
connection: the viewer those of ``CVTRACE_VIEWER_MAX_SPANS`` and
``CVTRACE_VIEWER_MAX_AGE_HOURS``, an app's ``local`` exporter those of
``CVTRACE_LOCAL_MAX_SPANS`` and ``CVTRACE_LOCAL_MAX_AGE_HOURS`` (the store reads
neither: each writer passes its own):

- ``max_spans`` (default 1,000,000): above it, the oldest traces (by arrival)
  are deleted, whole, until the store holds 90% of the limit.
- ``max_age_s`` (default 0, no age limit): traces that started longer ago are
  deleted, oldest arrival first, checked at most once a minute; the sweep stops
  at the first newer trace, so a trace with a skewed clock that arrived among
  newer ones waits for the next sweep past it.
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
_AGE_CHECK_INTERVAL_S = 60.0
_RETAIN_FRACTION = 0.9


class Retention:
    """The limits of one store's writer, and when the age limit was last checked.

    Args:
        max_spans: Spans kept at most; 0 means no limit.
        max_age_s: Traces that started longer ago are deleted; 0 means no limit.
    """

    def __init__(self, max_spans: int, max_age_s: float) -> None:
        self.max_spans = max_spans
        self.max_age_s = max_age_s
        self._next_age_check = 0.0

    def apply(self, conn: sqlite3.Connection, *, check_age_now: bool = False) -> None:
        """Delete what is over the limits, with the writing connection (its lock held)."""
        if check_age_now:
            self._next_age_check = 0.0
        if self.max_spans:
            row = conn.execute("SELECT value FROM meta WHERE key = 'span_count'").fetchone()
            total = int(row[0])
            if total > self.max_spans:
                excess = total - int(self.max_spans * _RETAIN_FRACTION)
                _delete_oldest(conn, max_spans=excess)
        if self.max_age_s and time.monotonic() >= self._next_age_check:
            self._next_age_check = time.monotonic() + _AGE_CHECK_INTERVAL_S
            _delete_oldest(conn, started_before_ns=time.time_ns() - int(self.max_age_s * 1e9))


def _delete_oldest(
    conn: sqlite3.Connection,
    *,
    max_spans: int | None = None,
    started_before_ns: int | None = None,
) -> None:
    """Delete the oldest traces by arrival, whole.

    Deletes until at least ``max_spans`` spans are gone, or while traces
    started before ``started_before_ns``.
    """
    cutoff: int | None = None
    counted = 0
    after = -1
    done = False
    while not done:
        rows = conn.execute(
            "SELECT key, start_ns, span_count FROM traces WHERE key > ? ORDER BY key LIMIT 1000",
            (after,),
        ).fetchall()
        if not rows:
            break
        for key, start, n in rows:
            if max_spans is not None and counted >= max_spans:
                done = True
                break
            if started_before_ns is not None and start >= started_before_ns:
                done = True
                break
            cutoff = key
            counted += n
        after = rows[-1][0]
    if cutoff is None:
        return
    with write_transaction(conn):
        removed = int(
            conn.execute(
                "SELECT coalesce(sum(span_count), 0) FROM traces WHERE key <= ?", (cutoff,)
            ).fetchone()[0]
        )
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
    logger.info("span store retention removed %d spans (traces up to #%d)", removed, cutoff)
