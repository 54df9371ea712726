"""Searching the span store: which traces match a :class:`TraceQuery`, newest first.

A search has three steps. :meth:`Searcher.lookups` reads the ids of the names the
query filters on (a name the store does not know matches nothing);
:func:`plan_search`, a pure function, chooses what to walk and writes the SQL;
:meth:`Searcher.search` runs it and, for tags outside the index, checks the spans.

- **Search tables, one row per trace and value**: ``trace_services``,
  ``trace_operations`` and ``trace_tags``. A search walks the smallest of the
  tables its filters name, newest trace first, checks the other filters with
  primary-key lookups, and stops at the limit. Results are in order of arrival
  (close to start time; the final page is sorted by start). Which table is
  smallest among the newest 20,000 traces (:data:`_SIZE_WINDOW`: the walk goes
  newest first) is counted once per value and cached for ``_SIZE_CACHE_S``; with a
  single filter nothing is counted.
- **Duration buckets.** ``traces.duration_bucket`` (two per power of two of the
  duration, indexed with the key) lets a minimum-duration search walk only the
  buckets at or above it, newest first in each, merged: without it, a rare or
  impossible minimum duration scanned every trace.
- **Tag search is indexed for a bounded set of keys**: the low-cardinality keys
  people filter on (``error``, ``span.kind``, ``http.route``,
  ``http.response.status_code``, ``db.system.name``, ``service.version`` ... see
  :data:`DEFAULT_TAG_KEYS`), plus the keys the store is given (``tag_keys``), for
  values up to 256 characters. Indexing every attribute would write a row per
  attribute per span, and per-request values (ids, URLs, SQL) would grow the
  value dictionary without bound; reading attribute values out of protobuf is
  also the costliest step of ingest (about 1 µs each). A tag filter on any other
  key still works: it decodes the spans of candidate traces, newest first, and
  gives up after :data:`UNINDEXED_TAG_SCAN_SPANS` spans (narrow it with a service
  or operation).

Semantics of a search: a trace matches when it has a span of the service, a span
of the operation in that service, and, for each tag, a span or resource carrying
it (not necessarily the same span); ``min/max duration`` and ``errors_only``
apply to the whole trace; a time range applies to the trace's start. Searches at
1,000,000 spans take 0.1-0.6 ms in the store (``bench.search``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from cvtrace.store.batches import duration_bucket
from cvtrace.store.connections import Connections
from cvtrace.store.reading import (
    SUMMARY_COLUMNS,
    Reader,
    StoredSpan,
    TraceSummary,
    span_tag_texts,
    summary_of,
)

logger = logging.getLogger(__name__)

UNINDEXED_TAG_SCAN_SPANS = 200_000
"""How many spans a search on a tag outside the indexed keys decodes at most."""
MAX_LIMIT = 10_000
"""The most traces one search returns."""
MAX_BUCKET = 2 * 62 + 1
"""The duration bucket of the longest duration an int64 holds."""
_SIZE_CACHE_S = 30.0
"""How long a search reuses the row count of a search table's value."""
_SIZE_WINDOW = 20_000
"""A driver's size is how many of the newest this many traces it holds."""

DEFAULT_TAG_KEYS: frozenset[str] = frozenset(
    {
        # derived from the span itself, as Jaeger shows them
        "error",
        "otel.status_code",
        "span.kind",
        # HTTP (stable, and the old names other SDKs still send)
        "http.request.method",
        "http.response.status_code",
        "http.route",
        "http.method",
        "http.status_code",
        # databases, RPC, messaging, errors
        "db.system",
        "db.system.name",
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "messaging.system",
        "error.type",
        # resource attributes (checked once per resource, not per span)
        "service.version",
        "service.namespace",
        "service.instance.id",
        "deployment.environment.name",
        "deployment.environment",
        "host.name",
        "telemetry.sdk.language",
    }
)
"""Attribute keys indexed for tag search by default: low-cardinality keys people
filter on. Per-request values such as ``url.path`` or ``db.query.text`` are left
out (they would grow the tag dictionary without bound); add keys with
``CVTRACE_STORE_TAG_KEYS``, or search them unindexed."""


@dataclass
class TraceQuery:
    """What to search for; every filter is optional."""

    service: str | None = None
    operation: str | None = None
    """Operation (span name); only with ``service``, as in Jaeger."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tag key to value (compared as strings: ``true``, ``200``)."""
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    start_min_ns: int | None = None
    start_max_ns: int | None = None
    errors_only: bool = False
    limit: int = 20


class Index(NamedTuple):
    """The rows of a search table for one value: the traces that have it."""

    table: str
    column: str
    ident: int


class DurationRange(NamedTuple):
    """The duration buckets from ``low`` to ``high``: the traces that may last so long."""

    low: int
    high: int


Driver = Index | DurationRange
"""What a search can walk, newest trace first."""


_NO_TAGS: Mapping[str, str] = MappingProxyType({})


class Lookups(NamedTuple):
    """A query's names as the ids the store knows them by (:meth:`Searcher.lookups`).

    Named tuples here and below: a search makes one of each, and a frozen dataclass
    costs three times as much to make (~1.8 µs; a search of the store takes 20-400 µs).
    """

    service_id: int | None = None
    operation_id: int | None = None
    """The operation's id, when its name is one operation: in the service asked
    for, or in only one service."""
    tag_ids: tuple[int, ...] = ()
    """The ids of the indexed tags asked for."""
    unindexed_tags: Mapping[str, str] = _NO_TAGS
    """The tags whose keys are not indexed: checked on the spans."""


class SearchPlan(NamedTuple):
    """How to run one search: SQL yielding candidate summaries, newest first."""

    driver: Driver | None
    """What the SQL walks: a search table's rows for one value, the duration
    buckets (then it runs once per bucket, its first parameter), or every trace."""
    sql: str
    params: tuple[object, ...]
    limit: int
    """How many traces to return."""
    unindexed_tags: Mapping[str, str]
    """Tags the candidates' spans must carry; with some, the SQL has no LIMIT."""


def plan_search(query: TraceQuery, lookups: Lookups, sizes: Callable[[Driver], int]) -> SearchPlan:
    """Choose what a search walks and write its SQL.

    The search walks the smallest of its candidate drivers (the search tables of
    the service, operation and indexed tags asked for, and the duration buckets of
    a minimum duration); the other ones become filters.

    Args:
        query: The search.
        lookups: The ids of the names ``query`` filters on.
        sizes: How many traces a driver holds (an estimate is enough: only the
            order counts); asked only when there are two or more candidates, as
            counting costs a few milliseconds.
    """
    limit = max(1, min(int(query.limit), MAX_LIMIT))
    candidates: list[Driver] = []
    if lookups.service_id is not None:
        candidates.append(Index("trace_services", "service_id", lookups.service_id))
    if lookups.operation_id is not None:
        candidates.append(Index("trace_operations", "operation_id", lookups.operation_id))
    candidates.extend(Index("trace_tags", "tag_id", tag_id) for tag_id in lookups.tag_ids)
    if query.min_duration_ns is not None:
        candidates.append(
            DurationRange(
                duration_bucket(int(query.min_duration_ns)),
                MAX_BUCKET
                if query.max_duration_ns is None
                else duration_bucket(int(query.max_duration_ns)),
            )
        )
    driver: Driver | None = None
    if len(candidates) == 1:
        driver = candidates[0]
    elif candidates:  # the first smallest: on a tie, an index before the durations
        driver = min(candidates, key=sizes)

    where, params = _filters(query, lookups)
    for other in candidates:
        if isinstance(other, Index) and other != driver:
            where.append(
                f"EXISTS (SELECT 1 FROM {other.table} WHERE {other.column} = ? "
                "AND trace_key = t.key)"
            )
            params.append(other.ident)
    filters = "".join(f" AND {w}" for w in where)
    unindexed = lookups.unindexed_tags
    limit_sql, row_limit = ("", ()) if unindexed else (" LIMIT ?", (limit,))
    if isinstance(driver, DurationRange):
        sql = (
            f"SELECT {SUMMARY_COLUMNS}, t.key FROM traces t "
            f"INDEXED BY traces_by_duration WHERE t.duration_bucket = ?{filters} "
            f"ORDER BY t.key DESC{limit_sql}"
        )
        return SearchPlan(driver, sql, (*params, *row_limit), limit, unindexed)
    if driver is not None:
        sql = (
            f"SELECT {SUMMARY_COLUMNS}, t.key FROM {driver.table} d CROSS JOIN traces t "
            f"ON t.key = d.trace_key WHERE d.{driver.column} = ?{filters} "
            f"ORDER BY d.trace_key DESC{limit_sql}"
        )
        return SearchPlan(driver, sql, (driver.ident, *params, *row_limit), limit, unindexed)
    sql = (
        f"SELECT {SUMMARY_COLUMNS}, t.key FROM traces t"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY t.key DESC{limit_sql}"
    )
    return SearchPlan(None, sql, (*params, *row_limit), limit, unindexed)


def _filters(query: TraceQuery, lookups: Lookups) -> tuple[list[str], list[object]]:
    """Return the conditions on ``traces t`` that no search table answers."""
    where: list[str] = []
    params: list[object] = []
    if query.operation and lookups.service_id is None:
        # without a service, the name may be an operation of several services
        where.append(
            "EXISTS (SELECT 1 FROM trace_operations x JOIN operations o "
            "ON o.id = x.operation_id WHERE o.name = ? AND x.trace_key = t.key)"
        )
        params.append(query.operation)
    if query.min_duration_ns is not None:
        where.append("t.end_ns - t.start_ns >= ?")
        params.append(int(query.min_duration_ns))
    if query.max_duration_ns is not None:
        where.append("t.end_ns - t.start_ns <= ?")
        params.append(int(query.max_duration_ns))
    if query.start_min_ns is not None:
        where.append("t.start_ns >= ?")
        params.append(int(query.start_min_ns))
    if query.start_max_ns is not None:
        where.append("t.start_ns <= ?")
        params.append(int(query.start_max_ns))
    if query.errors_only:
        where.append("t.error_count > 0")
    return where, params


class Searcher:
    """Runs searches on connections lent by ``connections``.

    Args:
        connections: The store's connections.
        reader: Decodes the spans of candidates, for tags outside the index.
        tag_keys: The attribute keys the store indexes.
    """

    def __init__(self, connections: Connections, reader: Reader, tag_keys: frozenset[str]) -> None:
        self._connections = connections
        self._reader = reader
        self._tag_keys = tag_keys
        self._sizes: dict[tuple[object, ...], tuple[float, int]] = {}
        """(expiry, row count) of search table values and duration ranges."""

    def search(self, query: TraceQuery) -> list[TraceSummary]:
        """Return the newest traces matching ``query``, newest start first."""
        with self._connections.reading() as conn:
            lookups = self.lookups(conn, query)
            if lookups is None:
                return []
            plan = plan_search(query, lookups, lambda driver: self._size(conn, driver))
            return self._run(conn, plan)

    def lookups(self, conn: sqlite3.Connection, query: TraceQuery) -> Lookups | None:
        """Return the ids of the names ``query`` names; None if one is unknown."""
        service_id: int | None = None
        if query.service:
            row = conn.execute(
                "SELECT id FROM services WHERE name = ?", (query.service,)
            ).fetchone()
            if row is None:
                return None
            service_id = int(row[0])
        operation_id: int | None = None
        if query.operation:
            if service_id is not None:
                rows = conn.execute(
                    "SELECT id FROM operations WHERE service_id = ? AND name = ?",
                    (service_id, query.operation),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id FROM operations WHERE name = ?", (query.operation,)
                ).fetchall()
            if not rows:
                return None
            if len(rows) == 1:  # else the same name in several services: filtered by name
                operation_id = int(rows[0][0])
        tag_ids: list[int] = []
        unindexed: dict[str, str] = {}
        for key, value in query.tags.items():
            if key in self._tag_keys:
                row = conn.execute(
                    "SELECT id FROM tags WHERE key = ? AND value = ?", (key, str(value))
                ).fetchone()
                if row is None:
                    return None
                tag_ids.append(int(row[0]))
            else:
                unindexed[key] = str(value)
        return Lookups(service_id, operation_id, tuple(tag_ids), unindexed)

    def _run(self, conn: sqlite3.Connection, plan: SearchPlan) -> list[TraceSummary]:
        candidates: Iterable[Sequence[Any]]
        if isinstance(plan.driver, DurationRange):
            candidates = heapq.merge(
                *(
                    conn.execute(plan.sql, (bucket, *plan.params))
                    for bucket in _buckets(conn, plan.driver)
                ),
                key=lambda r: int(r[-1]),
                reverse=True,
            )
        else:
            candidates = conn.execute(plan.sql, plan.params)
        results: list[TraceSummary] = []
        if not plan.unindexed_tags:
            results = [summary_of(row) for row in itertools.islice(candidates, plan.limit)]
        else:
            budget = UNINDEXED_TAG_SCAN_SPANS
            for row in candidates:
                summary = summary_of(row)
                budget -= summary.span_count
                if budget < 0:
                    logger.info("tag search stopped after %d spans", UNINDEXED_TAG_SCAN_SPANS)
                    break
                if _trace_has_tags(self._reader.spans_of(conn, int(row[-1])), plan.unindexed_tags):
                    results.append(summary)
                    if len(results) >= plan.limit:
                        break
        results.sort(key=lambda s: s.start_ns, reverse=True)
        return results

    def _size(self, conn: sqlite3.Connection, driver: Driver) -> int:
        """Return how many of the newest :data:`_SIZE_WINDOW` traces a driver holds.

        A search walks its driver newest first and stops at the limit, so what counts
        is how dense the driver is among recent traces, not its size over the whole
        store (counted up to a cap, every common value ties at the cap: at 10,000,000
        spans a service of every trace tied with a tag of 1% of them). Counted at most
        every ``_SIZE_CACHE_S`` seconds: it costs a millisecond or two per value.
        """
        cache_key: tuple[object, ...] = (
            ("duration", *driver)
            if isinstance(driver, DurationRange)
            else (driver.table, driver.ident)
        )
        now = time.monotonic()
        cached = self._sizes.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        newest = conn.execute("SELECT max(key) FROM traces").fetchone()[0]
        after = -1 if newest is None else int(newest) - _SIZE_WINDOW
        if isinstance(driver, DurationRange):
            size = sum(
                int(
                    conn.execute(
                        "SELECT count(*) FROM traces INDEXED BY traces_by_duration "
                        "WHERE duration_bucket = ? AND key > ?",
                        (bucket, after),
                    ).fetchone()[0]
                )
                for bucket in _buckets(conn, driver)
            )
        else:
            size = int(
                conn.execute(
                    f"SELECT count(*) FROM {driver.table} WHERE {driver.column} = ? "
                    "AND trace_key > ?",
                    (driver.ident, after),
                ).fetchone()[0]
            )
        self._sizes[cache_key] = (now + _SIZE_CACHE_S, size)
        return size


def _buckets(conn: sqlite3.Connection, durations: DurationRange) -> list[int]:
    """Return the duration buckets in a range that hold traces."""
    found: list[int] = []
    bucket = durations.low - 1
    while True:
        row = conn.execute(
            "SELECT min(duration_bucket) FROM traces WHERE duration_bucket > ? "
            "AND duration_bucket <= ?",
            (bucket, durations.high),
        ).fetchone()
        if row[0] is None:
            return found
        bucket = int(row[0])
        found.append(bucket)


def _trace_has_tags(spans: Sequence[StoredSpan], wanted: Mapping[str, str]) -> bool:
    missing = dict(wanted)
    for stored in spans:
        tags = span_tag_texts(stored)
        for key in [k for k, v in missing.items() if tags.get(k) == v]:
            del missing[key]
        if not missing:
            return True
    return False
