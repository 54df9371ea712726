"""The viewer's pages: search, and one trace as a waterfall with span details."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import version
from importlib.resources import files
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.blueprints import BlueprintSetupState

from cvtrace.otlp.json_form import message_to_otlp_dict
from cvtrace.store import StoredSpan, TracePieces, TraceQuery, spans_to_traces_data
from cvtrace.viewer import get_store
from cvtrace.viewer.figures import (
    WATERFALL_FORMAT,
    attribute_notes,
    durations_figure,
    format_duration_ns,
    service_colors,
    waterfall_data,
)
from cvtrace.viewer.jaeger import any_value_python
from cvtrace.viewer.jaeger_api import (
    MAX_NS,
    BadParameter,
    checked_text,
    parse_duration_ns,
    parse_trace_id,
)
from cvtrace.viewer.tracetree import Row, max_depth, tree_rows

bp = Blueprint("ui", __name__, template_folder="templates")

LOOKBACKS = (
    ("", "any time"),
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("6h", "last 6 hours"),
    ("1d", "last day"),
    ("7d", "last 7 days"),
)
_KIND_NAMES = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
_STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}


def figure_json(figure: Any) -> str:
    """Return a figure (or figure dict) as JSON that is safe inside ``<script>``."""
    if isinstance(figure, dict):
        text = json.dumps(figure, separators=(",", ":"), allow_nan=False)
    else:
        text = figure.to_json()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def utc_text(ns: int) -> str:
    """Return an epoch time in nanoseconds as readable UTC."""
    try:
        moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ns)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@bp.app_template_filter("duration")
def _duration_filter(ns: int) -> str:
    return format_duration_ns(int(ns))


@bp.app_template_filter("utc")
def _utc_filter(ns: int) -> str:
    return utc_text(int(ns))


PLOTLY_VERSION = version("plotly")
"""The installed plotly package's version: plotly.js's URL carries it, so a browser
may keep the file for good (a new plotly package is a new URL)."""


@bp.app_context_processor
def _plotly_url() -> dict[str, str]:
    return {"plotly_js_url": url_for("ui.plotly_js", v=PLOTLY_VERSION)}


@bp.get("/static/plotly.min.js")
def plotly_js() -> Response:
    """Serve plotly.js from the installed plotly package (works offline)."""
    path = files("plotly") / "package_data" / "plotly.min.js"
    response = send_file(str(path), mimetype="text/javascript", max_age=365 * 86400)
    if request.args.get("v") == PLOTLY_VERSION:
        response.cache_control.immutable = True
    return response


def parse_tags(text: str) -> dict[str, str]:
    """Parse ``key=value`` filters separated by spaces (quote values with spaces).

    Raises:
        BadParameter: A filter is not key=value.
    """
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        msg = f"tags: {exc}"
        raise BadParameter(msg) from None
    tags: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            msg = f"tags: {part!r} is not key=value"
            raise BadParameter(msg)
        tags[key] = value
    return tags


def _datetime_ns(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{name}: {text!r} is not a date and time such as 2025-01-31T13:45"
        raise BadParameter(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        ns = int(moment.timestamp() * 1e9)
    except (OverflowError, OSError, ValueError):  # before year 1 in UTC
        ns = -1
    if not 0 <= ns <= MAX_NS:
        msg = f"{name}: {text!r} is out of range; expected 1970-01-01 to 2262-04-11"
        raise BadParameter(msg)
    return ns


def search_query() -> TraceQuery:
    """Build a store query from the search form.

    Raises:
        BadParameter: A field is malformed.
    """
    args = request.args
    query = TraceQuery(
        service=checked_text(args.get("service", ""), "service") or None,
        operation=(args.get("operation") or None) if args.get("service") else None,
        tags=parse_tags(args.get("tags", "")),
        errors_only=bool(args.get("errors")),
    )
    if args.get("min_duration", "").strip():
        query.min_duration_ns = parse_duration_ns(args["min_duration"], "min duration")
    if args.get("max_duration", "").strip():
        query.max_duration_ns = parse_duration_ns(args["max_duration"], "max duration")
    lookback = args.get("lookback", "").strip()
    if lookback:
        query.start_min_ns = max(0, time.time_ns() - parse_duration_ns(lookback, "time range"))
    start = _datetime_ns(args.get("from", ""), "from")
    if start is not None:
        query.start_min_ns = start
    query.start_max_ns = _datetime_ns(args.get("to", ""), "to")
    raw_limit = args.get("limit", "").strip() or "20"
    try:
        query.limit = max(1, min(int(raw_limit), 1000))
    except ValueError:  # also more than 4300 digits
        msg = f"limit: {raw_limit[:80]!r} is not a number"
        raise BadParameter(msg) from None
    return query


@bp.get("/")
def search() -> tuple[str, int]:
    """The search page (400, with the page's own message, for a bad field)."""
    store = get_store()
    error = None
    results = []
    try:
        query = search_query()
        results = store.search(query)
    except BadParameter as exc:
        error = str(exc)
    services = store.services()
    service = request.args.get("service", "")
    operations = store.operations(service) if service and error is None else []
    colors = service_colors(sorted({name for r in results for name in r.services}))
    return render_template(
        "search.html",
        form=request.args,
        services=services,
        operations=operations,
        lookbacks=LOOKBACKS,
        results=results,
        colors=colors,
        error=error,
        figure=figure_json(durations_figure(results)) if results else None,
        total_spans=store.span_count(),
    ), (400 if error else 200)


def _span_id_list(text: str) -> list[bytes]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if len(part) == 16:
            try:
                out.append(bytes.fromhex(part))
            except ValueError:
                continue
    return out


_Bodies = dict[str, tuple[str, list[Row]]]
"""A cached trace's ``waterfall.json`` answers and their rows, by ``collapse`` argument."""


class _TraceCache:
    """The last two traces loaded, so their waterfalls (collapsed, focused) load them once.

    Small on purpose: a 50,000-span trace holds tens of MB of decoded spans.
    """

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._items: OrderedDict[bytes, tuple[int, list[StoredSpan], list[Row], _Bodies]] = (
            OrderedDict()
        )
        self._loading: dict[bytes, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, trace_id: bytes) -> tuple[list[StoredSpan], list[Row], list[str], _Bodies]:
        """Return a trace's spans, full tree rows, services (summary order) and bodies.

        ``bodies`` keeps the trace's ``waterfall.json`` answers and their rows by
        their ``collapse`` argument, for the callers to fill. Concurrent requests
        for one trace load it once; an unknown trace is a 404.
        """
        summary = get_store().get_summary(trace_id)
        if summary is None:
            abort(404)
        services = list(summary.services)
        with self._lock:
            loading = self._loading.setdefault(trace_id, threading.Lock())
        with loading:
            try:
                with self._lock:
                    hit = self._items.get(trace_id)
                    if hit is not None and hit[0] == summary.span_count:
                        self._items.move_to_end(trace_id)
                        return hit[1], hit[2], services, hit[3]
                spans = get_store().get_trace(trace_id)
                if not spans:
                    abort(404)
                rows = tree_rows(spans)
                bodies: _Bodies = {}
                with self._lock:
                    self._items[trace_id] = (len(spans), spans, rows, bodies)
                    self._items.move_to_end(trace_id)
                    while len(self._items) > self._size:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(trace_id, None)
        return spans, rows, services, bodies


_CACHE_KEY = "cvtrace.trace_cache"


@bp.record_once
def _add_trace_cache(state: BlueprintSetupState) -> None:
    state.app.extensions[_CACHE_KEY] = _TraceCache()


def _trace_cache() -> _TraceCache:
    """Return the current app's trace cache (one per app, like its store)."""
    cache: _TraceCache = current_app.extensions[_CACHE_KEY]
    return cache


def _trace_id_or_404(text: str) -> bytes:
    try:
        return parse_trace_id(text)
    except BadParameter:
        abort(404)


@bp.get("/trace/<trace_id>")
def trace(trace_id: str) -> str:
    """One trace: header, waterfall (loaded from ``waterfall.json``), span details.

    The page is rendered from the trace's stored summary alone, so it answers at
    once however big the trace; the spans load once, for ``waterfall.json``,
    while the browser loads plotly.js. The facts that need the span tree (depth,
    orphans, clock skew) come with the waterfall's rows and the page fills them in.
    """
    raw_id = _trace_id_or_404(trace_id)
    summary = get_store().get_summary(raw_id)
    if summary is None:
        abort(404)
    collapsed = _span_id_list(request.args.get("collapse", ""))
    focus = _span_id_list(request.args.get("span", ""))
    query: dict[str, Any] = {}
    if collapsed:
        query["collapse"] = ",".join(c.hex() for c in collapsed)
    if focus:
        query["span"] = focus[0].hex()
    return render_template(
        "trace.html",
        trace_id=raw_id.hex(),
        root_name=summary.root_name,
        root_service=summary.root_service,
        has_root=summary.has_root,
        services=summary.services,
        colors=service_colors(list(summary.services)),
        span_count=summary.span_count,
        error_count=summary.error_count,
        start_ns=summary.start_ns,
        duration_ns=summary.duration_ns,
        figure_url=url_for(
            "ui.waterfall_json",
            trace_id=raw_id.hex(),
            v=_figure_version(summary.span_count),
            **({"collapse": query["collapse"]} if collapsed else {}),
        ),
        notes_url=url_for(
            "ui.waterfall_notes",
            trace_id=raw_id.hex(),
            v=_figure_version(summary.span_count),
            **({"collapse": query["collapse"]} if collapsed else {}),
        ),
        collapsed=query.get("collapse", ""),
        focus=query.get("span", ""),
    )


_BODIES_PER_TRACE = 4
"""``waterfall.json`` answers kept per cached trace (each collapse set is one)."""


def _figure_version(span_count: int) -> str:
    """Return what the waterfall of a trace depends on besides its id: spans, format."""
    return f"{span_count}.{WATERFALL_FORMAT}"


def _waterfall(trace_id: str) -> tuple[str, list[Row], int]:
    """Return the ``waterfall.json`` body of a trace's ``collapse`` set, its rows and span count."""
    raw_id = _trace_id_or_404(trace_id)
    spans, rows, services, bodies = _trace_cache().get(raw_id)
    collapsed = _span_id_list(request.args.get("collapse", ""))
    key = ",".join(sorted(c.hex() for c in collapsed))
    hit = bodies.get(key)
    if hit is not None:
        return hit[0], hit[1], len(spans)
    shown = tree_rows(spans, collapsed) if collapsed else rows
    data = waterfall_data(spans, rows=shown, service_order=services)
    # facts of the whole tree (collapsed or not), for the page's header
    data["tree"] = {
        "depth": max_depth(rows),
        "orphans": sum(1 for r in rows if r.orphan),
        "skewed": sum(1 for r in rows if r.skewed),
    }
    body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    if len(bodies) >= _BODIES_PER_TRACE:
        bodies.clear()
    bodies[key] = (body, shown)
    return body, shown, len(spans)


def _cacheable(response: Response, span_count: int) -> Response:
    """Let the browser keep a trace's answer for a day if its link names the span count."""
    if request.args.get("v") == _figure_version(span_count):
        response.cache_control.private = True
        response.cache_control.max_age = 86400
    return response


@bp.get("/trace/<trace_id>/waterfall.json")
def waterfall_json(trace_id: str) -> Response:
    """The waterfall's rows of a trace (``collapse`` as on the page).

    The page scrolls to its ``span`` itself, so one answer serves every span
    of a trace and is kept with the trace in the cache.

    With ``v`` (the page's link: span count and format), the browser may keep the
    answer for a day: a trace that gains spans gets a new ``v``.
    """
    body, _, span_count = _waterfall(trace_id)
    return _cacheable(Response(body, mimetype="application/json"), span_count)


MAX_NOTE_ROWS = 5000
"""Rows per ``notes.json`` request (the page asks for the rows it draws)."""


@bp.get("/trace/<trace_id>/notes.json")
def waterfall_notes(trace_id: str) -> Response:
    """The key attributes of waterfall rows ``rows=FIRST-LAST`` (hover lines, escaped).

    Rows are numbered as in ``waterfall.json`` with the same ``collapse``;
    answers ``{row: text}`` for the rows that have any.
    """
    first_text, _, last_text = request.args.get("rows", "").partition("-")
    try:
        first, last = int(first_text), int(last_text)
    except ValueError:  # also more than 4300 digits
        abort(400)
    if not 0 <= first <= last:
        abort(400)
    _, rows, span_count = _waterfall(trace_id)
    notes = attribute_notes(rows, first, min(last, first + MAX_NOTE_ROWS))
    body = json.dumps(notes, separators=(",", ":"))
    return _cacheable(Response(body, mimetype="application/json"), span_count)


def _otlp_json(pieces: TracePieces) -> Iterator[str]:
    """Yield a trace as OTLP JSON ``TracesData``, one ``ResourceSpans`` per stored group.

    Written a few span groups at a time, so a 200,000-span trace never sits in
    memory whole (a resource may come several times: OTLP allows it)."""
    yield '{"resourceSpans":['
    separator = ""
    for piece in pieces:
        data = message_to_otlp_dict(spans_to_traces_data(piece))
        for resource_spans in data.get("resourceSpans", []):
            yield separator + json.dumps(resource_spans, separators=(",", ":"))
            separator = ","
    yield "]}"


@bp.get("/trace/<trace_id>/otlp.json")
def trace_otlp_json(trace_id: str) -> Response:
    """Download a trace as OTLP JSON (``TracesData``; re-importable via /v1/traces)."""
    raw_id = _trace_id_or_404(trace_id)
    pieces = get_store().trace_pieces(raw_id)
    if pieces is None:
        abort(404)
    response = Response(_otlp_json(pieces), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="trace-{raw_id.hex()}.otlp.json"'
    )
    return response


def _pairs(attributes: Any) -> list[list[Any]]:
    return [[kv.key, any_value_python(kv.value)] for kv in attributes]


@bp.get("/trace/<trace_id>/spans/<span_id>.json")
def span_details(trace_id: str, span_id: str) -> Response:
    """Everything about one span, for the details panel (rendered as text by the page)."""
    try:
        raw_trace = parse_trace_id(trace_id)
        raw_span = bytes.fromhex(span_id)
    except (BadParameter, ValueError):
        abort(404)
    store = get_store()
    stored = store.get_span(raw_trace, raw_span)
    if stored is None:
        abort(404)
    span = stored.span
    parent = span.parent_span_id
    parent_span = store.get_span(raw_trace, parent) if parent and parent != bytes(8) else None
    orphan = bool(parent) and parent != bytes(8) and parent_span is None
    skewed = parent_span is not None and (
        span.start_time_unix_nano < parent_span.span.start_time_unix_nano
        or span.end_time_unix_nano > parent_span.span.end_time_unix_nano
    )
    data = {
        "traceId": raw_trace.hex(),
        "spanId": span.span_id.hex(),
        "parentSpanId": parent.hex() if parent else "",
        "name": span.name,
        "service": stored.service,
        "kind": _KIND_NAMES.get(span.kind, str(span.kind)),
        "start": utc_text(span.start_time_unix_nano),
        "duration": format_duration_ns(max(0, span.end_time_unix_nano - span.start_time_unix_nano)),
        "status": {
            "code": _STATUS_NAMES.get(span.status.code, str(span.status.code)),
            "message": span.status.message,
        },
        "attributes": _pairs(span.attributes),
        "resource": _pairs(stored.resource.attributes),
        "scope": {
            "name": stored.scope.name,
            "version": stored.scope.version,
            "attributes": _pairs(stored.scope.attributes),
        },
        "events": [
            {
                "name": e.name,
                "time": utc_text(e.time_unix_nano),
                "attributes": _pairs(e.attributes),
            }
            for e in span.events
        ],
        "links": [
            {
                "traceId": link.trace_id.hex(),
                "spanId": link.span_id.hex(),
                "attributes": _pairs(link.attributes),
            }
            for link in span.links
        ],
        "orphan": orphan,
        "skewed": skewed,
        "traceState": span.trace_state,
        "deepLink": url_for("ui.trace", trace_id=raw_trace.hex(), span=span.span_id.hex()),
    }
    return Response(json.dumps(data, default=str), mimetype="application/json")
