"""The viewer's pages: search, and one trace as a waterfall with span details.

Every page is drawn by the browser from data built here (``figures.py``); the
pages' scripts are in ``static/`` and put span-derived text in the page as text
only. Unknown traces and bad inputs get a page in the viewer's layout that says
what is wrong."""

from __future__ import annotations

import gc
import json
import shlex
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import version
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    has_request_context,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from cvtrace.otlp.json_form import message_to_otlp_dict
from cvtrace.store import StoredSpan, TraceQuery, TraceSummary, spans_to_traces_data
from cvtrace.viewer import get_store
from cvtrace.viewer.figures import (
    WATERFALL_FORMAT,
    attribute_notes,
    durations_data,
    format_duration_ns,
    service_color,
    service_colors,
    waterfall_data,
)
from cvtrace.viewer.importing import counted
from cvtrace.viewer.jaeger import any_value_python
from cvtrace.viewer.jaeger_api import (
    MAX_NS,
    BadParameter,
    checked_text,
    parse_duration_ns,
    parse_trace_id,
)
from cvtrace.viewer.remote import RemoteError
from cvtrace.viewer.searchindex import search_index
from cvtrace.viewer.sources import get_source, note_problem, remote_problems
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
MAX_URL_DEPTH = 30
"""The deepest ``depth`` a trace page's URL may ask for: its "Collapse to…" menu's last."""
_KIND_NAMES = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
_STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}


def figure_json(figure: Mapping[Any, Any]) -> str:
    """Return figure data as JSON that is safe inside ``<script>`` (and as a body)."""
    text = json.dumps(figure, separators=(",", ":"), allow_nan=False)
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


bp.add_app_template_filter(counted, "counted")  # {{ n|counted('span') }}: 1 span, 2 spans


PLOTLY_VERSION = version("plotly")
"""The installed plotly package's version: plotly.js's URL carries it, so a browser
may keep the file for good (a new plotly package is a new URL)."""


@bp.app_context_processor
def _plotly_url() -> dict[str, str]:
    return {"plotly_js_url": url_for("ui.plotly_js", v=PLOTLY_VERSION)}


EXPORT_ENVIRON_KEY = "cvtrace.export"
"""Set in a request's WSGI environ by :mod:`cvtrace.viewer.exporting` (in-process only:
no HTTP header can set a key without the ``HTTP_`` prefix): the page is rendered for a
single-file export, and the key holds what the page says about it."""


@bp.app_context_processor
def _export_context() -> dict[str, Any]:
    """Give templates ``exported``: the export's facts, or ``None`` on a served page."""
    return {"exported": request.environ.get(EXPORT_ENVIRON_KEY) if has_request_context() else None}


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


MAX_SEARCH_LIMIT = 1000
"""The most traces the search page lists."""


def search_query() -> TraceQuery:
    """Build a store query from the search form.

    Raises:
        BadParameter: A field is malformed.
    """
    args = request.args
    if args.get("operation") and not args.get("service"):
        msg = "operation: choose a service too (an operation is a span name of one service)"
        raise BadParameter(msg)
    query = TraceQuery(
        service=checked_text(args.get("service", ""), "service") or None,
        operation=args.get("operation") or None,
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
        query.limit = int(raw_limit)
    except ValueError:  # also more than 4300 digits
        msg = f"limit: {raw_limit[:80]!r} is not a number"
        raise BadParameter(msg) from None
    if not 1 <= query.limit <= MAX_SEARCH_LIMIT:
        msg = f"limit: {raw_limit[:80]!r} is out of range; expected 1 to {MAX_SEARCH_LIMIT}"
        raise BadParameter(msg)
    return query


SORTS: dict[str, tuple[str, Any, bool]] = {
    "newest": ("newest first", lambda s: s.start_ns, True),
    "oldest": ("oldest first", lambda s: s.start_ns, False),
    "longest": ("longest first", lambda s: s.duration_ns, True),
    "shortest": ("shortest first", lambda s: s.duration_ns, False),
    "spans": ("most spans", lambda s: s.span_count, True),
    "errors": ("most errors", lambda s: s.error_count, True),
}
"""Orders of the search results: the traces found (the newest up to the limit)."""


def sort_results(results: list[TraceSummary], sort: str) -> list[TraceSummary]:
    """Return the results in the order ``sort`` names (a key of :data:`SORTS`).

    Raises:
        BadParameter: ``sort`` is not one of them.
    """
    if sort not in SORTS:
        msg = f"sort: {sort[:40]!r} is not one of {', '.join(SORTS)}"
        raise BadParameter(msg)
    _, key, descending = SORTS[sort]
    return sorted(results, key=key, reverse=descending)  # stable: ties stay newest first


@bp.get("/")
def search() -> tuple[str, int]:
    """The search page (400, with the page's own message, for a bad field)."""
    source = get_source()
    error = None
    results: list[TraceSummary] = []
    more = False
    limit = 0
    try:
        query = search_query()
        limit = query.limit
        query.limit = limit + 1  # one more than shown: says whether the limit cut the list
        found = source.search(query)
        more = len(found) > limit
        results = sort_results(found[:limit], request.args.get("sort") or "newest")
    except BadParameter as exc:
        error = str(exc)
        results = []
    except RemoteError as exc:  # the remote alone, and it failed: say so on the page
        note_problem(exc)
    services = _or_nothing(source.services)
    service = request.args.get("service", "")
    operations = _or_nothing(lambda: source.operations(service)) if service and not error else []
    colors = service_colors(sorted({name for r in results for name in r.services}))
    return render_template(
        "search.html",
        form=request.args,
        services=services,
        operations=operations,
        lookbacks=LOOKBACKS,
        sorts=[(key, text) for key, (text, _, _) in SORTS.items()],
        results=results,
        more=more,
        limit=limit,
        colors=colors,
        error=error,
        figure=figure_json(durations_data(results)) if results else None,
        total_spans=source.span_count(),
        origins={r.trace_id: source.origin(r.trace_id) for r in results},
        show_origin=source.remote is not None,
    ), (400 if error else 502 if remote_problems() and source.local is None else 200)


def _or_nothing(read: Any) -> list[str]:
    """Return what ``read()`` returns, or nothing (noted on the page) if the remote fails."""
    try:
        return list(read())
    except RemoteError as exc:
        note_problem(exc)
        return []


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


class _CachedTrace:
    """A loaded trace: its spans, tree rows and, once built, its ``waterfall.json`` body."""

    __slots__ = ("body", "rows", "search_body", "span_count", "spans")

    def __init__(self, spans: list[StoredSpan], rows: list[Row]) -> None:
        self.span_count = len(spans)
        self.spans = spans
        self.rows = rows
        self.body: str | None = None
        self.search_body: str | None = None


@contextmanager
def _no_collection() -> Iterator[None]:
    """Hold off the garbage collector while a trace's objects are made.

    Decoding a 100,000-span trace makes a few hundred thousand objects that all
    live on: each full collection meanwhile walks them all for nothing (the trace
    loads in ~0.26 s instead of ~0.40 s). Collections resume, and catch up, after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _TraceCache:
    """The last two traces loaded, so their waterfall and hover notes load them once.

    Small on purpose: a 100,000-span trace takes ~130 MB once decoded, with its tree.
    """

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._items: OrderedDict[bytes, _CachedTrace] = OrderedDict()
        self._loading: dict[bytes, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, trace_id: bytes) -> tuple[_CachedTrace, list[str]]:
        """Return a trace (loaded once, however many ask at once) and its services.

        The services come in the summary's order. An unknown trace is a 404.
        """
        summary = get_source().get_summary(trace_id)
        if summary is None:
            abort(404)
        services = list(summary.services)
        with self._lock:
            loading = self._loading.setdefault(trace_id, threading.Lock())
        with loading:
            try:
                with self._lock:
                    hit = self._items.get(trace_id)
                    if hit is not None and hit.span_count == summary.span_count:
                        self._items.move_to_end(trace_id)
                        return hit, services
                with _no_collection():
                    spans = get_source().get_trace(trace_id)
                    if not spans:
                        abort(404)
                    loaded = _CachedTrace(spans, tree_rows(spans))
                with self._lock:
                    self._items[trace_id] = loaded
                    self._items.move_to_end(trace_id)
                    while len(self._items) > self._size:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(trace_id, None)
        return loaded, services

    def peek(self, trace_id: bytes) -> _CachedTrace | None:
        """Return a trace if it is loaded already (never loads it)."""
        with self._lock:
            return self._items.get(trace_id)


_CACHE_KEY = "cvtrace.trace_cache"


@bp.record_once
def _add_trace_cache(state: BlueprintSetupState) -> None:
    state.app.extensions[_CACHE_KEY] = _TraceCache()


def _trace_cache() -> _TraceCache:
    """Return the current app's trace cache (one per app, like its store)."""
    cache: _TraceCache = current_app.extensions[_CACHE_KEY]
    return cache


def trace_rows(raw_id: bytes) -> list[Row]:
    """Return a stored trace's spans in tree order, loaded once per app (404 if unknown)."""
    cached, _ = _trace_cache().get(raw_id)
    return cached.rows


def _trace_id_or_404(text: str) -> bytes:
    try:
        return parse_trace_id(text)
    except BadParameter:
        abort(404)


def not_found_page(heading: str, lines: list[str], status: int = 404) -> tuple[str, int]:
    """Return the viewer's "not found" page (in its layout, with a way back)."""
    return render_template("notfound.html", heading=heading, lines=lines), status


def _unknown_trace(trace_id: str) -> tuple[str, int]:
    source = get_source()
    if source.local is None:
        assert source.remote is not None
        return not_found_page(
            f"Trace {trace_id} is not in the Jaeger at {source.remote.url}",
            [
                "It may not have arrived yet (tracers and collectors send spans in "
                "batches: reload in a few seconds), or it may be past that Jaeger's "
                "retention, or it went to another Jaeger.",
            ],
        )
    store = source.local
    retention = []
    if store.max_spans:
        retention.append(f"it keeps the newest {store.max_spans:,} spans")
    if store.max_age_s:
        retention.append(f"it deletes traces older than {store.max_age_s / 3600:g} hours")
    kept = " and ".join(retention) if retention else "it has no retention limit set"
    return not_found_page(
        f"Trace {trace_id} is not in this viewer's store",
        [
            "It may not have been flushed yet: tracers send spans in batches (every 5 "
            "seconds by default, OTEL_BSP_SCHEDULE_DELAY), and a trace shows up once its "
            "first spans arrive. Reload in a few seconds.",
            f"Or it may be past retention: {kept} (CVTRACE_VIEWER_MAX_SPANS, "
            "CVTRACE_VIEWER_MAX_AGE_HOURS).",
            "Or it went to another store: this viewer shows " + source.describe() + ".",
        ],
    )


@bp.app_errorhandler(RemoteError)
def _remote_failed(error: RemoteError) -> Any:
    """The remote Jaeger failed where only it could answer: 502, never a 500."""
    path = request.path
    if path.startswith(("/api/", "/v1/")) or path.endswith(".json"):
        body = json.dumps(
            {
                "data": None,
                "total": 0,
                "limit": 0,
                "offset": 0,
                "errors": [{"code": 502, "msg": str(error)}],
            }
        )
        return Response(body, status=502, mimetype="application/json")
    return not_found_page(
        "The remote Jaeger did not answer",
        [
            str(error),
            "Reload once it is back; traces in the local store are still shown."
            if get_source().local is not None
            else "Reload once it is back.",
        ],
        502,
    )


@bp.app_context_processor
def _trace_sources() -> dict[str, Any]:
    return {"remote_problems": remote_problems, "trace_sources": get_source().describe()}


@bp.app_errorhandler(404)
def _page_not_found(error: HTTPException) -> Any:
    """A page that does not exist gets the viewer's page; JSON answers stay as they are."""
    path = request.path
    if path.startswith(("/api/", "/v1/")) or path.endswith(".json"):
        return error
    return not_found_page("Nothing here", [f"The viewer has no page at {path[:200]}."])


@bp.get("/trace")
def goto_trace() -> Any:
    """Open the trace whose id the header's box names (400 page for a bad id)."""
    text = "".join(request.args.get("id", "").split())
    try:
        raw_id = parse_trace_id(text)
    except BadParameter:
        shown = text[:64] or "(nothing)"
        return not_found_page(
            f"{shown} is not a trace id",
            ["A trace id is up to 32 hex digits (0-9, a-f), as in the trace page's address."],
            400,
        )
    return redirect(url_for("ui.trace", trace_id=raw_id.hex()))


@bp.get("/trace/<trace_id>")
def trace(trace_id: str) -> Any:
    """One trace: header, waterfall (drawn from ``waterfall.json``), span details.

    The page is rendered from the trace's stored summary alone, so it answers at
    once however big the trace; the spans load once, for ``waterfall.json``. The
    facts that need the span tree (depth, orphans, clock skew) come with the
    waterfall's rows and the page fills them in. ``span`` (a span to open),
    ``depth`` (the tree shown that many levels deep), ``collapse`` and ``expand`` (span
    ids whose subtrees start hidden, or shown against ``depth``) are the page's to apply;
    the page writes them back into its URL as the view changes.
    """
    try:
        raw_id = parse_trace_id(trace_id)
    except BadParameter:
        return not_found_page(
            f"{trace_id[:64]} is not a trace id",
            ["A trace id is up to 32 hex digits (0-9, a-f)."],
        )
    source = get_source()
    summary = source.get_summary(raw_id)
    if summary is None:
        return _unknown_trace(raw_id.hex())
    origin = source.origin(raw_id)
    collapsed = _span_id_list(request.args.get("collapse", ""))
    expanded = _span_id_list(request.args.get("expand", ""))
    depth = request.args.get("depth", "")
    focus = _span_id_list(request.args.get("span", ""))
    version = _figure_version(summary.span_count)
    return render_template(
        "trace.html",
        trace_id=raw_id.hex(),
        root_name=summary.root_name,
        root_service=summary.root_service,
        has_root=summary.has_root,
        services=summary.services,
        colors=service_colors(summary.services),
        span_count=summary.span_count,
        error_count=summary.error_count,
        start_ns=summary.start_ns,
        duration_ns=summary.duration_ns,
        figure_url=url_for("ui.waterfall_json", trace_id=raw_id.hex(), v=version),
        notes_url=url_for("ui.waterfall_notes", trace_id=raw_id.hex(), v=version),
        search_url=url_for("ui.search_index_json", trace_id=raw_id.hex(), v=version),
        collapsed=",".join(c.hex() for c in collapsed),
        expanded=",".join(e.hex() for e in expanded),
        depth=depth if depth.isdigit() and 0 < int(depth) <= MAX_URL_DEPTH else "",
        focus=focus[0].hex() if focus else "",
        remote_url=source.remote.url if origin == "remote" and source.remote else "",
        saved=_saved_note(origin),
        kept_in=_kept_in(raw_id, origin),
    )


def _saved_text(new_spans: str) -> str:
    """Say what a save stored (``?saved=`` of the page it redirects to)."""
    if new_spans == "0":
        return "it was there already: no new spans"
    return f"{new_spans} new spans" if new_spans != "1" else "1 new span"


def _saved_note(origin: str) -> str:
    """The confirmation of a save, for the page shown from the local store."""
    saved = request.args.get("saved", "")
    if not saved.isdigit() or origin != "local":
        return ""
    return f"the local store: saved from the Jaeger ({_saved_text(saved)})"


def _kept_in(raw_id: bytes, origin: str) -> str:
    """With ``--no-local``, where a trace shown from the Jaeger is saved, if it is:
    the page says so instead of offering to save it again."""
    if origin != "remote" or get_source().local is not None:
        return ""
    store = get_store()
    if store.get_summary(raw_id) is None:
        return ""
    saved = request.args.get("saved", "")
    done = f"Saved ({_saved_text(saved)}) to" if saved.isdigit() else "Also in"
    return (
        f"{done} the local store {store.path}: this viewer runs with --no-local and shows "
        f"the Jaeger's copy; cvtrace view --db {store.path} shows the saved one"
    )


def _from_another_site() -> bool:
    """Return whether a form post says it comes from another site.

    Browsers say where a request comes from in ``Sec-Fetch-Site``; the ``Origin`` of a
    form post is ``null`` here (the pages' ``Referrer-Policy: no-referrer``), so it
    counts only when it names another origin.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin", "null")
    return origin != "null" and urlsplit(origin).netloc != request.host


@bp.post("/trace/<trace_id>/save")
def save_trace(trace_id: str) -> Any:
    """Save a trace of the remote Jaeger into the local store (spans stored already
    are recognized, so saving twice adds nothing), then show it from there."""
    raw_id = _trace_id_or_404(trace_id)
    source = get_source()
    if source.remote is None:
        abort(404)
    if _from_another_site():  # a form on another site's page posting here
        abort(403)
    found = source.remote_trace(raw_id)
    if found is None:
        return _unknown_trace(raw_id.hex())
    try:
        result = get_store().write_request(found.request)
    except Exception as exc:  # read-only store, disk full, busy past its timeout
        return not_found_page(
            f"Trace {raw_id.hex()} could not be saved", [f"The local store refused it: {exc}"], 503
        )
    return redirect(
        url_for("ui.trace", trace_id=raw_id.hex(), saved=f"{result.new_spans}"), code=303
    )


def _figure_version(span_count: int) -> str:
    """Return what the waterfall of a trace depends on besides its id: spans, format."""
    return f"{span_count}.{WATERFALL_FORMAT}"


def _waterfall(trace_id: str) -> _CachedTrace:
    """Return a trace from the cache, with its ``waterfall.json`` body built."""
    raw_id = _trace_id_or_404(trace_id)
    cached, services = _trace_cache().get(raw_id)
    if cached.body is None:
        with _no_collection():
            data = waterfall_data(cached.spans, rows=cached.rows, service_order=services)
        data["tree"] = {  # facts of the tree, for the page's header
            "depth": max_depth(cached.rows),
            "orphans": sum(1 for r in cached.rows if r.orphan),
            "skewed": sum(1 for r in cached.rows if r.skewed),
        }
        cached.body = figure_json(data)
    return cached


def _cacheable(response: Response, span_count: int) -> Response:
    """Let the browser keep a trace's answer for a day if its link names the span count."""
    if request.args.get("v") == _figure_version(span_count):
        response.cache_control.private = True
        response.cache_control.max_age = 86400
    return response


@bp.get("/trace/<trace_id>/waterfall.json")
def waterfall_json(trace_id: str) -> Response:
    """Every span of a trace in tree order, as :func:`figures.waterfall_data` columns.

    With ``v`` (the page's link: span count and format), the browser may keep the
    answer for a day: a trace that gains spans gets a new ``v``.
    """
    cached = _waterfall(trace_id)
    assert cached.body is not None
    return _cacheable(Response(cached.body, mimetype="application/json"), cached.span_count)


@bp.get("/trace/<trace_id>/search.json")
def search_index_json(trace_id: str) -> Response:
    """The attributes of a trace's rows, for the page's in-trace search.

    Rows are numbered as in ``waterfall.json`` (:func:`searchindex.search_index`);
    cacheable like it.
    """
    cached, _ = _trace_cache().get(_trace_id_or_404(trace_id))
    if cached.search_body is None:
        with _no_collection():
            cached.search_body = figure_json(search_index(cached.rows))
    response = Response(cached.search_body, mimetype="application/json")
    return _cacheable(response, cached.span_count)


MAX_NOTE_ROWS = 5000
"""Rows per ``notes.json`` request (the page asks for the rows it draws)."""


@bp.get("/trace/<trace_id>/notes.json")
def waterfall_notes(trace_id: str) -> Response:
    """The key attributes of waterfall rows ``rows=FIRST-LAST`` (for the hover).

    Rows are numbered as in ``waterfall.json``; answers ``{row: [[key, value],
    ...]}`` for the rows that have any (:func:`figures.attribute_notes`). Without
    ``rows``, every row's (the single-file export embeds the URL as the page names it,
    and answers the page's ``&rows=`` requests from that).
    """
    rows = request.args.get("rows")
    if rows is not None:
        first_text, _, last_text = rows.partition("-")
        try:
            first, last = int(first_text), int(last_text)
        except ValueError:  # also more than 4300 digits
            abort(400)
        if not 0 <= first <= last:
            abort(400)
    cached, _ = _trace_cache().get(_trace_id_or_404(trace_id))
    if rows is None:
        first, last = 0, len(cached.rows)
    else:
        last = min(last, first + MAX_NOTE_ROWS)
    notes = attribute_notes(cached.rows, first, last)
    body = figure_json(notes)
    return _cacheable(Response(body, mimetype="application/json"), cached.span_count)


def _otlp_json(pieces: Iterable[Sequence[StoredSpan]]) -> Iterator[str]:
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
    pieces = get_source().trace_pieces(raw_id)
    if pieces is None:
        abort(404)
    response = Response(_otlp_json(pieces), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="trace-{raw_id.hex()}.otlp.json"'
    )
    return response


@bp.get("/trace/<trace_id>/export.html")
def trace_html(trace_id: str) -> Any:
    """Download a trace as one self-contained HTML file (:mod:`cvtrace.viewer.exporting`)."""
    from cvtrace.viewer.exporting import ExportError, TraceNotFound, export_html_chunks

    raw_id = _trace_id_or_404(trace_id)
    if get_source().get_summary(raw_id) is None:
        return _unknown_trace(raw_id.hex())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:  # the spans' details are made as the answer is written: never whole in memory
        chunks = export_html_chunks(app, raw_id, base_url=request.host_url)
    except TraceNotFound:
        return _unknown_trace(raw_id.hex())
    except ExportError as exc:  # the page needs what the export cannot embed: a bug
        current_app.logger.error("exporting trace %s failed: %s", raw_id.hex(), exc)
        return not_found_page("This trace cannot be exported as HTML", [str(exc)], 500)
    response = Response(chunks, mimetype="text/html")
    response.headers["Content-Disposition"] = f'attachment; filename="trace-{raw_id.hex()}.html"'
    return response


def _pairs(attributes: Any) -> list[list[Any]]:
    return [[kv.key, any_value_python(kv.value)] for kv in attributes]


def _offset_text(ns: int) -> str:
    """Return a time relative to another as ``+1.2ms`` (or ``-3µs``)."""
    return ("-" if ns < 0 else "+") + format_duration_ns(abs(ns))


def _link(store: Any, link: Any) -> dict[str, Any]:
    """Return a span link for the details panel: where it leads, if it is stored."""
    trace_hex, span_hex = link.trace_id.hex(), link.span_id.hex()
    try:
        target = store.get_span(link.trace_id, link.span_id) if any(link.trace_id) else None
        known = target is not None or (
            any(link.trace_id) and store.get_summary(link.trace_id) is not None
        )
    except RemoteError as exc:  # the link's target is not local, and the remote failed
        note_problem(exc)
        target, known = None, False
    if target is not None:
        stored, url = "span", url_for("ui.trace", trace_id=trace_hex, span=span_hex)
    elif known:
        stored, url = "trace", url_for("ui.trace", trace_id=trace_hex)
    else:
        stored, url = "none", ""
    return {
        "traceId": trace_hex,
        "spanId": span_hex,
        "stored": stored,
        "url": url,
        "name": target.span.name if target is not None else "",
        "service": target.service if target is not None else "",
        "attributes": _pairs(link.attributes),
    }


def _cached_row(trace_id: bytes, span_id: bytes) -> Row | None:
    """Return a span's tree row if its trace is loaded and ``row`` (the page's row) is it.

    The page names the row it shows: reading one span from the store reads its
    whole trace's span groups (~15-30 ms each for a 100,000-span trace, twice with
    the parent); the loaded trace answers at once.
    """
    cached = _trace_cache().peek(trace_id)
    hint = request.args.get("row", type=int)
    if cached is None or hint is None or not 0 <= hint < len(cached.rows):
        return None
    row = cached.rows[hint]
    return row if row.stored.span.span_id == span_id else None


@bp.get("/trace/<trace_id>/spans/<span_id>.json")
def span_details(trace_id: str, span_id: str) -> Response:
    """Everything about one span, for the details panel (rendered as text by the page).

    Event times are given relative to the span's start (``offset``) as well;
    each link says whether its span (``"span"``), only its trace (``"trace"``)
    or nothing (``"none"``) is in this store, and where it leads.
    """
    try:
        raw_trace = parse_trace_id(trace_id)
        raw_span = bytes.fromhex(span_id)
    except (BadParameter, ValueError):
        abort(404)
    store = get_source()
    row = _cached_row(raw_trace, raw_span)
    if row is not None:
        stored, orphan, skewed = row.stored, row.orphan, row.skewed
    else:
        found = store.get_span(raw_trace, raw_span)
        if found is None:
            abort(404)
        stored = found
        parent = stored.span.parent_span_id
        parent_span = store.get_span(raw_trace, parent) if parent and parent != bytes(8) else None
        orphan = bool(parent) and parent != bytes(8) and parent_span is None
        skewed = parent_span is not None and (
            stored.span.start_time_unix_nano < parent_span.span.start_time_unix_nano
            or stored.span.end_time_unix_nano > parent_span.span.end_time_unix_nano
        )
    summary = store.get_summary(raw_trace)
    trace_start = summary.start_ns if summary is not None else stored.span.start_time_unix_nano
    data = span_details_data(
        raw_trace,
        stored,
        orphan=orphan,
        skewed=skewed,
        trace_start_ns=trace_start,
        page_url=url_for("ui.trace", trace_id=raw_trace.hex()),
    )
    return Response(json.dumps(data, default=str), mimetype="application/json")


def dropped_counts(stored: StoredSpan) -> dict[str, int]:
    """Return what a span's producer dropped by its size limits, by kind (none: ``{}``).

    OTLP counts what a limit dropped (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``,
    ``OTEL_SPAN_EVENT_COUNT_LIMIT``, ...: ``dropped_*_count``) on the span, its events,
    links, resource and scope. (A value shortened by a length limit,
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, carries no mark in OTLP.)
    """
    span = stored.span
    counts = {
        "attributes": span.dropped_attributes_count,
        "events": span.dropped_events_count,
        "links": span.dropped_links_count,
        "resource attributes": stored.resource.dropped_attributes_count,
        "scope attributes": stored.scope.dropped_attributes_count,
    }
    if span.events:  # most spans have none: skip the sums (~10 µs a span in an export)
        counts["event attributes"] = sum(e.dropped_attributes_count for e in span.events)
    if span.links:
        counts["link attributes"] = sum(link.dropped_attributes_count for link in span.links)
    return {kind: n for kind, n in counts.items() if n}


def span_details_data(
    raw_trace: bytes,
    stored: StoredSpan,
    *,
    orphan: bool,
    skewed: bool,
    trace_start_ns: int,
    page_url: str,
) -> dict[str, Any]:
    """Return everything about one span for the details panel (``spans/<id>.json``).

    ``page_url`` is the trace page's, which ``deepLink`` extends with ``?span=``. Needs
    a request context (links to other spans are URLs of this viewer).
    """
    store = get_source()
    span = stored.span
    parent = span.parent_span_id
    return {
        "traceId": raw_trace.hex(),
        "spanId": span.span_id.hex(),
        "parentSpanId": parent.hex() if parent else "",
        "name": span.name,
        "service": stored.service,
        "kind": _KIND_NAMES.get(span.kind, str(span.kind)),
        "start": utc_text(span.start_time_unix_nano),
        "startOffset": _offset_text(span.start_time_unix_nano - trace_start_ns),
        "color": service_color(stored.service),
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
                "offset": _offset_text(e.time_unix_nano - span.start_time_unix_nano),
                "attributes": _pairs(e.attributes),
            }
            for e in span.events
        ],
        "links": [_link(store, link) for link in span.links],
        "dropped": dropped_counts(stored),
        "orphan": orphan,
        "skewed": skewed,
        "traceState": span.trace_state,
        "deepLink": f"{page_url}?span={span.span_id.hex()}",
    }
