"""The analyses as JSON under ``/api``, in Jaeger's envelope (times in µs, ids in hex).

Per trace (unknown ids: 404 in Jaeger's shape; malformed ids: 400):

- ``GET /api/traces/{traceID}/critical-path``: ``[{spanID, start, end}]``, the
  sections in time order; they tile the root span exactly (:mod:`.analyses.critical_path`).
- ``GET /api/traces/{traceID}/stats``: ``[{service, operation, count, totalDuration,
  selfDuration, minDuration, maxDuration, errors}]``, most repeated first.
- ``GET /api/traces/{traceID}/flamegraph``: the spans merged by path, depth first,
  siblings in the order their first span started:
  ``[{id, parent, service, operation, depth, count, totalDuration, selfDuration,
  errors, spanID}]`` (``spanID``: the path's earliest span).
- ``GET /api/traces/{traceID}/search?q=&service=&status=&minDuration=``: the ids of
  the matching spans, in start order.
- ``GET /api/traces/{traceID}/same-shape?limit=``: traces with the same root
  operation and set of (service, operation) pairs, newest first (among the newest
  ``SHAPE_CANDIDATES`` traces with that root operation and the same services).
- ``GET /api/compare?a={traceID}&b={traceID}``: ``{a, b, nodes}``, the two traces
  merged by path (:mod:`.analyses.compare`).

Over the store (windows in milliseconds as Jaeger's; bad values: 400 with a message):

- ``GET /api/dependencies?endTs=&lookback=&service=``: Jaeger's
  ``[{parent, child, callCount}]`` plus ``errorCount``; ``lookback`` defaults to a
  day, ``endTs`` to now, as Jaeger's.
- ``GET /api/dependencies/traces?parent=&child=&endTs=&lookback=&limit=``: the
  newest traces with that call.
- ``GET /api/metrics/calls|errors|latencies?service=&spanKind=&groupByOperation=
  &endTs=&lookback=&step=&ratePer=&quantile=``: Jaeger's metrics query API (the
  Monitor tab's): a bare ``MetricFamily``, computed from entry spans (:mod:`.analyses.red`);
  ``GET /api/metrics/minstep``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.store import TraceQuery, TraceSummary
from cvtrace.viewer import get_store
from cvtrace.viewer.analyses.calls import Call
from cvtrace.viewer.analyses.compare import Side, compare_traces
from cvtrace.viewer.analyses.critical_path import critical_path
from cvtrace.viewer.analyses.dependencies import Link
from cvtrace.viewer.analyses.paths import depth_first, path_tree
from cvtrace.viewer.analyses.red import MAX_POINTS, MetricsQuery, call_rates, error_rates
from cvtrace.viewer.analyses.red import latencies as latency_family
from cvtrace.viewer.analyses.search import SpanFilter, find_spans, span_texts
from cvtrace.viewer.analyses.shape import trace_shape
from cvtrace.viewer.analyses.spans import TraceSpans, trace_spans
from cvtrace.viewer.analyses.stats import trace_stats
from cvtrace.viewer.jaeger_api import (
    MAX_NS,
    BadParameter,
    envelope,
    parse_duration_ns,
    parse_trace_id,
)
from cvtrace.viewer.sources import get_source

bp = Blueprint("analyses_api", __name__, url_prefix="/api")

MS = 1_000_000
"""Nanoseconds per millisecond."""
DEFAULT_DEPENDENCY_LOOKBACK_MS = 24 * 3600 * 1000
DEFAULT_METRICS_LOOKBACK_MS = 3600 * 1000
DEFAULT_STEP_MS = 5000
DEFAULT_RATE_PER_MS = 600_000
MIN_STEP_MS = 1
SHAPE_CANDIDATES = 500
"""Traces with the same root operation and services examined by ``same-shape``."""
SHAPE_SPAN_BUDGET = 200_000
"""Spans ``same-shape`` loads at most to compare shapes."""
MAX_RESULTS = 1000
SPAN_KINDS = {
    "unspecified": Span.SPAN_KIND_UNSPECIFIED,
    "internal": Span.SPAN_KIND_INTERNAL,
    "server": Span.SPAN_KIND_SERVER,
    "client": Span.SPAN_KIND_CLIENT,
    "producer": Span.SPAN_KIND_PRODUCER,
    "consumer": Span.SPAN_KIND_CONSUMER,
}
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})


class NotFound(LookupError):
    """A trace asked for is not stored."""


def _error(status: int, msg: str) -> Response:
    return envelope(None, status, [{"code": status, "msg": msg}])


@bp.errorhandler(BadParameter)
def _bad_parameter(exc: BadParameter) -> Response:
    return _error(400, str(exc))


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    return _error(404, str(exc))


class Conflict(RuntimeError):
    """The trace changed while it was being read."""


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Response:
    return _error(409, str(exc))


# -- traces, loaded once for several analyses ---------------------------------------


class TraceCache:
    """The last few traces analysed, as columns, so a page's several requests load once.

    Columns, not the stored spans: they are smaller, and the garbage collector need
    not walk them (a cached 100,000-span trace as span objects made every full
    collection, and so some requests, 200-300 ms slower).

    Keyed by trace id and checked against the stored span count, so a trace that
    gains spans is loaded again. Concurrent requests for one trace load it once.
    """

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: OrderedDict[bytes, tuple[int, TraceSpans, dict[str, Any]]] = OrderedDict()
        self._loading: dict[bytes, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, trace_id: bytes) -> tuple[TraceSpans, dict[str, Any]]:
        """Return a trace's columns and a dict for what is computed from them (kept with it).

        Raises:
            NotFound: The trace is not stored.
        """
        summary = get_source().get_summary(trace_id)
        if summary is None:
            msg = f"trace not found: {trace_id.hex()}"
            raise NotFound(msg)
        with self._lock:
            loading = self._loading.setdefault(trace_id, threading.Lock())
        with loading:
            try:
                with self._lock:
                    hit = self._items.get(trace_id)
                    if hit is not None and hit[0] == summary.span_count:
                        self._items.move_to_end(trace_id)
                        return hit[1], hit[2]
                spans = get_source().get_trace(trace_id)
                if not spans:
                    msg = f"trace not found: {trace_id.hex()}"
                    raise NotFound(msg)
                trace = trace_spans(spans)
                derived: dict[str, Any] = {}
                with self._lock:
                    self._items[trace_id] = (summary.span_count, trace, derived)
                    self._items.move_to_end(trace_id)
                    while len(self._items) > self._size:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(trace_id, None)
        return trace, derived


_CACHE_KEY = "cvtrace.analyses_cache"


@bp.record_once
def _add_cache(state: BlueprintSetupState) -> None:
    state.app.extensions[_CACHE_KEY] = TraceCache()


def load_trace(trace_id_text: str) -> tuple[TraceSpans, dict[str, Any]]:
    """Return a trace (from the current app's cache) by its hex id.

    Raises:
        BadParameter: The id is not hex.
        NotFound: No such trace.
    """
    cache: TraceCache = current_app.extensions[_CACHE_KEY]
    return cache.get(parse_trace_id(trace_id_text))


def _hex_ids(trace: TraceSpans, derived: dict[str, Any]) -> list[str]:
    """Return the trace's span ids in hex (made once per trace: 20 ms at 100,000 spans)."""
    ids = derived.get("hex_ids")
    if ids is None:
        ids = derived["hex_ids"] = [span_id.hex() for span_id in trace.span_ids]
    return ids


def _us(ns: int) -> int:
    return ns // 1000


# -- one trace ----------------------------------------------------------------------


@bp.get("/traces/<trace_id>/critical-path")
def trace_critical_path(trace_id: str) -> Response:
    """The critical path of a trace's main root, in time order."""
    trace, derived = load_trace(trace_id)
    sections = critical_path(trace)
    if not sections:
        return envelope([])
    # times relative to the root's start in µs, so the sections end exactly at the
    # root's startTime + duration as its Jaeger JSON says (each rounded alike)
    root = trace.main_root()
    assert root is not None
    origin_ns = trace.starts[root]
    origin_us = _us(origin_ns)
    hex_ids = _hex_ids(trace, derived)
    # the path of an N+1 of 100,000 queries has 100,000 sections: formatted directly
    # (hex ids and integers need no escaping), twice as fast as dicts through json.dumps
    items = ",".join(
        f'{{"spanID":"{hex_ids[span]}","start":{origin_us + (start - origin_ns) // 1000},'
        f'"end":{origin_us + (end - origin_ns) // 1000}}}'
        for span, start, end in sections
    )
    body = f'{{"data":[{items}],"total":{len(sections)},"limit":0,"offset":0,"errors":null}}'
    return Response(body, mimetype="application/json")


@bp.get("/traces/<trace_id>/stats")
def trace_statistics(trace_id: str) -> Response:
    """Statistics per (service, operation), most repeated operation first."""
    trace, _ = load_trace(trace_id)
    rows = trace_stats(trace)
    data = [
        {
            "service": r.service,
            "operation": r.operation,
            "count": r.count,
            "totalDuration": _us(r.total_ns),
            "selfDuration": _us(r.self_ns),
            "minDuration": _us(r.min_ns),
            "maxDuration": _us(r.max_ns),
            "errors": r.errors,
        }
        for r in rows
    ]
    return envelope(data)


@bp.get("/traces/<trace_id>/flamegraph")
def trace_flamegraph(trace_id: str) -> Response:
    """The spans merged by path (service, operation), depth first, in start order."""
    trace, _ = load_trace(trace_id)
    tree = path_tree(trace)
    starts, first = trace.starts, tree.first_span
    data = [
        {
            "id": n,
            "parent": tree.parent[n],
            "service": tree.service[n],
            "operation": tree.operation[n],
            "depth": tree.depth[n],
            "count": tree.count[n],
            "totalDuration": _us(tree.total_ns[n]),
            "selfDuration": _us(tree.self_ns[n]),
            "errors": tree.errors[n],
            "spanID": trace.span_ids[first[n]].hex(),
        }
        for n in depth_first(tree.parent, lambda n: (starts[first[n]], n))
    ]
    return envelope(data)


@bp.get("/traces/<trace_id>/search")
def trace_search(trace_id: str) -> Response:
    """The ids of the spans matching ``q``, ``service``, ``status`` and ``minDuration``."""
    args = request.args
    status = args.get("status", "").strip().lower()
    if status not in ("", "error", "ok", "unset"):
        msg = f"status: {status[:20]!r} is not one of error, ok, unset"
        raise BadParameter(msg)
    raw_min = args.get("minDuration", "").strip()
    what = SpanFilter(
        text=args.get("q", ""),
        service=args.get("service", ""),
        status=status,
        min_duration_ns=parse_duration_ns(raw_min, "minDuration") if raw_min else 0,
    )
    trace, derived = load_trace(trace_id)
    texts = derived.get("texts")
    if texts is None:
        # the columns keep no attributes: read the spans again, once per trace
        spans = get_source().get_trace(trace.trace_id)
        if [s.span.span_id for s in spans] != trace.span_ids:  # it grew meanwhile
            msg = "the trace is receiving spans; search again"
            raise Conflict(msg)
        texts = derived["texts"] = span_texts(trace, spans)
    found = find_spans(trace, texts, what)
    return envelope([trace.span_ids[i].hex() for i in found])


def _summary_json(summary: TraceSummary) -> dict[str, Any]:
    return {
        "traceID": summary.trace_id.hex(),
        "rootService": summary.root_service,
        "rootName": summary.root_name,
        "startTime": _us(summary.start_ns),
        "duration": _us(summary.duration_ns),
        "spanCount": summary.span_count,
        "errorCount": summary.error_count,
    }


def _limit(default: int = 20) -> int:
    raw = request.args.get("limit", "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"limit: {raw[:20]!r} is not an integer"
        raise BadParameter(msg) from None
    if value < 1:
        msg = f"limit: {value} is not positive"
        raise BadParameter(msg)
    return min(value, MAX_RESULTS)


@bp.get("/traces/<trace_id>/same-shape")
def same_shape(trace_id: str) -> Response:
    """Traces with the same root operation and (service, operation) pairs, newest first."""
    limit = _limit()
    trace, derived = load_trace(trace_id)
    shape = derived.get("shape")
    if shape is None:
        shape = derived["shape"] = trace_shape(trace)
    if shape.root is None:
        return envelope([])
    own_id = trace.trace_id
    store = get_source()
    candidates = [
        s
        for s in store.search(
            TraceQuery(service=shape.root[0], operation=shape.root[1], limit=SHAPE_CANDIDATES)
        )
        if s.trace_id != own_id and set(s.services) == shape.services
    ]
    found: list[dict[str, Any]] = []
    budget = SHAPE_SPAN_BUDGET
    for i in range(0, len(candidates), 50):
        chunk = candidates[i : i + 50]
        loaded = store.get_traces([s.trace_id for s in chunk])
        for summary in chunk:
            spans = loaded.get(summary.trace_id)
            if not spans:
                continue
            budget -= len(spans)
            if trace_shape(trace_spans(spans)) == shape:
                found.append(_summary_json(summary))
                if len(found) >= limit:
                    return envelope(found)
        if budget <= 0:
            break
    return envelope(found)


def _side_json(side: Side | None, trace: TraceSpans) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "count": side.count,
        "totalDuration": _us(side.total_ns),
        "selfDuration": _us(side.self_ns),
        "errors": side.errors,
        "spanID": trace.span_ids[side.first_span].hex(),
    }


def _trace_json(trace_id: str, trace: TraceSpans) -> dict[str, Any]:
    root = trace.main_root()
    return {
        "traceID": parse_trace_id(trace_id).hex(),
        "rootService": trace.services[root] if root is not None else "",
        "rootName": trace.names[root] if root is not None else "",
        "startTime": _us(trace.starts[root]) if root is not None else 0,
        "duration": _us(trace.duration(root)) if root is not None else 0,
        "spanCount": len(trace),
    }


@bp.get("/compare")
def compare() -> Response:
    """Two traces merged by path: counts and times in each, and where they differ."""
    ids = {}
    for side in ("a", "b"):
        raw = request.args.get(side, "").strip()
        if not raw:
            msg = f"{side}: a trace id is required (compare?a=TRACE_ID&b=TRACE_ID)"
            raise BadParameter(msg)
        ids[side] = raw
    trace_a, _ = load_trace(ids["a"])
    trace_b, _ = load_trace(ids["b"])
    nodes = compare_traces(trace_a, trace_b)
    data = {
        "a": _trace_json(ids["a"], trace_a),
        "b": _trace_json(ids["b"], trace_b),
        "nodes": [
            {
                "id": n.id,
                "parent": n.parent,
                "service": n.service,
                "operation": n.operation,
                "depth": n.depth,
                "presence": n.presence,
                "a": _side_json(n.a, trace_a),
                "b": _side_json(n.b, trace_b),
                "totalDiff": _us(n.total_diff_ns),
                "selfDiff": _us(n.self_diff_ns),
            }
            for n in nodes
        ],
    }
    return envelope(data, total=len(nodes))


# -- the store: service map and RED metrics ----------------------------------------


MAX_MS = MAX_NS // MS
"""The latest time and longest duration in ms the store's nanosecond times hold (2262)."""


def _ms_param(name: str, default: int) -> int:
    """Return a time or duration in ms (Jaeger's unit for these APIs), up to 2262.

    Raises:
        BadParameter: Not a whole number, or out of that range.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:  # also more than 4300 digits
        msg = f"unable to parse param '{name}': {raw[:40]!r} is not a whole number of milliseconds"
        raise BadParameter(msg) from None
    if not -MAX_MS <= value <= MAX_MS:
        msg = f"{name}: {raw[:40]!r} ms is out of range; at most {MAX_MS} (the year 2262)"
        raise BadParameter(msg)
    return value


def _positive_ms(name: str, default: int) -> int:
    value = _ms_param(name, default)
    if value <= 0:
        msg = f"{name}: {value} ms is not a positive duration"
        raise BadParameter(msg)
    return value


def _window_ns(default_lookback_ms: int) -> tuple[int, int]:
    """Return (start, end) in ns from ``endTs`` and ``lookback`` (ms, as Jaeger's)."""
    end_ms = _ms_param("endTs", time.time_ns() // MS)
    if end_ms < 0:
        msg = f"endTs: {end_ms} is before 1970"
        raise BadParameter(msg)
    lookback_ms = _positive_ms("lookback", default_lookback_ms)
    return (end_ms - lookback_ms) * MS, end_ms * MS


def _link_json(link: Link) -> dict[str, Any]:
    return {
        "parent": link.parent,
        "child": link.child,
        "callCount": link.call_count,
        "errorCount": link.error_count,
    }


@bp.get("/dependencies")
def dependencies() -> Response:
    """Calls between services that started in the window; with ``service``, its own."""
    start_ns, end_ns = _window_ns(DEFAULT_DEPENDENCY_LOOKBACK_MS)
    service = request.args.get("service", "")
    links = [Link(*row) for row in get_store().dependencies(start_ns, end_ns)]
    if service:
        links = [link for link in links if service in (link.parent, link.child)]
    links.sort(key=lambda link: (-link.call_count, link.parent, link.child))
    return envelope([_link_json(link) for link in links])


@bp.get("/dependencies/traces")
def dependency_traces() -> Response:
    """The newest traces in the window with a call from ``parent`` to ``child``."""
    parent = request.args.get("parent", "")
    child = request.args.get("child", "")
    if not parent or not child:
        msg = "parent and child: both services are required"
        raise BadParameter(msg)
    start_ns, end_ns = _window_ns(DEFAULT_DEPENDENCY_LOOKBACK_MS)
    store = get_store()
    ids = store.call_traces(parent, child, start_ns, end_ns, _limit())
    summaries = [store.get_summary(trace_id) for trace_id in ids]
    return envelope([_summary_json(s) for s in summaries if s is not None])


def _span_kinds() -> frozenset[int]:
    raw = request.args.getlist("spanKind")
    if not raw:
        return frozenset({Span.SPAN_KIND_SERVER})
    kinds = set()
    for text in raw:
        name = text.strip().lower().removeprefix("span_kind_")
        if name not in SPAN_KINDS:
            msg = (
                f"unable to parse param 'spanKind': unsupported span kind: {text[:40]!r}; "
                f"expected one of {', '.join(SPAN_KINDS)} (or SPAN_KIND_SERVER ...)"
            )
            raise BadParameter(msg)
        kinds.add(SPAN_KINDS[name])
    return frozenset(kinds)


def metrics_query() -> MetricsQuery:
    """Build a metrics query from Jaeger's parameters.

    Raises:
        BadParameter: A parameter is missing or malformed, or the series would be
            too long.
    """
    args = request.args
    services = frozenset(s for s in args.getlist("service") if s)
    if not services:
        msg = "unable to parse param 'service': please provide at least one service name"
        raise BadParameter(msg)
    raw_group = args.get("groupByOperation", "").strip()
    if raw_group and raw_group not in _TRUE | _FALSE:
        msg = f"unable to parse param 'groupByOperation': {raw_group[:20]!r} is not a boolean"
        raise BadParameter(msg)
    start_ns, end_ns = _window_ns(DEFAULT_METRICS_LOOKBACK_MS)
    step_ms = _positive_ms("step", DEFAULT_STEP_MS)
    rate_per_ms = _positive_ms("ratePer", DEFAULT_RATE_PER_MS)
    points = (end_ns - start_ns) // (step_ms * MS) + 1
    if points > MAX_POINTS:
        msg = (
            f"step: {step_ms} ms over a lookback of {(end_ns - start_ns) // MS} ms makes "
            f"{points} points per series; at most {MAX_POINTS}: use a longer step"
        )
        raise BadParameter(msg)
    steps = -(-rate_per_ms // step_ms)
    if steps > MAX_POINTS:
        msg = (
            f"ratePer: {rate_per_ms} ms is {steps} steps of {step_ms} ms; at most "
            f"{MAX_POINTS}: use a shorter ratePer or a longer step"
        )
        raise BadParameter(msg)
    return MetricsQuery(
        services=services,
        end_ns=end_ns,
        lookback_ns=end_ns - start_ns,
        step_ns=step_ms * MS,
        rate_per_ns=rate_per_ms * MS,
        group_by_operation=raw_group in _TRUE,
        span_kinds=_span_kinds(),
    )


def entry_calls(query: MetricsQuery) -> Iterator[Call]:
    """Yield the stored entry spans a metrics query covers."""
    rows, operations = get_store().entry_calls(
        query.first_start_ns, query.end_ns, sorted(query.services)
    )
    for start, duration, operation, flags in rows:
        service, name = operations[operation]
        yield Call(start, duration, service, name, flags >> 3, bool(flags & 1), True, None, b"")


def _metric_response(family: dict[str, Any]) -> Response:
    """A ``MetricFamily`` as Jaeger answers it: the bare message, no envelope."""
    body = json.dumps(family, separators=(",", ":"), allow_nan=False)
    return Response(body, mimetype="application/json")


@bp.get("/metrics/calls")
def metrics_calls() -> Response:
    """Entry spans per second of each service (or service and operation)."""
    query = metrics_query()
    return _metric_response(call_rates(entry_calls(query), query))


@bp.get("/metrics/errors")
def metrics_errors() -> Response:
    """The fraction of entry spans in error of each service (or service and operation)."""
    query = metrics_query()
    return _metric_response(error_rates(entry_calls(query), query))


@bp.get("/metrics/latencies")
def metrics_latencies() -> Response:
    """A quantile of entry span durations (ms) of each service (or service and operation)."""
    raw = request.args.get("quantile", "").strip()
    try:
        quantile = float(raw)
    except ValueError:
        msg = f"unable to parse param 'quantile': {raw[:20]!r} is not a number such as 0.95"
        raise BadParameter(msg) from None
    if not 0 < quantile <= 1:
        msg = f"quantile: {quantile} is not in (0, 1]; for example 0.5, 0.95 or 0.99"
        raise BadParameter(msg)
    query = metrics_query()
    return _metric_response(latency_family(entry_calls(query), query, quantile))


@bp.get("/metrics/minstep")
def metrics_minstep() -> Response:
    """The smallest step, in ms: any (spans are stored with their own times)."""
    return envelope(MIN_STEP_MS)
