"""Jaeger-compatible query API under ``/api`` (for Grafana's Jaeger data source).

- ``GET /api/services``
- ``GET /api/services/{service}/operations`` (and ``GET /api/operations?service=``)
- ``GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&start=&end=``
  ``&lookback=&limit=``
  (``tags`` is a JSON map; Jaeger's repeated ``tag=key:value`` works too;
  durations are Go durations such as ``40ms`` or ``1.5s``; times are µs since
  the epoch; ``lookback`` such as ``1h`` or ``2d`` when ``start`` is absent)
- ``GET /api/traces?traceID=&traceID=``: exactly those traces, in that order (the
  other parameters are ignored); ids not found are listed in ``errors``, as Jaeger's
  ``tracesByIDs`` does (200 even when none is found)
- ``GET /api/traces/{traceID}``

``/api/dependencies`` (the service map) and the analyses are in
:mod:`cvtrace.viewer.analyses_api`.

Answers are Jaeger's, field for field (tests/ops/test_jaeger_parity.py compares them
with a real Jaeger's): a search returns up to 100 traces by default and says
``"total": 0``, as Jaeger does. Where the viewer deliberately differs (a search's
duration and tag filters apply to the whole trace, ...) is listed in
docs/operations.md, "The viewer's Jaeger API".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import Blueprint, Response, request

from cvtrace.store import StoredSpan, TraceQuery, TraceSummary
from cvtrace.viewer.jaeger import jaeger_trace_json
from cvtrace.viewer.sources import Sources, get_source, remote_problems

bp = Blueprint("jaeger_api", __name__, url_prefix="/api")

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
MAX_LIMIT = 1500
DEFAULT_LIMIT = 100
"""Traces a search returns without ``limit``: Jaeger's default."""
MAX_NS = 2**63 - 1
"""The largest time or duration the store holds (SQLite's INTEGER): 2262-04-11 UTC, 292 years."""
MAX_US = MAX_NS // 1000


class BadParameter(ValueError):
    """A query parameter has a value the API cannot use."""


def checked_text(value: str, name: str) -> str:
    """Return ``value`` if it can be stored and searched for (UTF-8 text).

    Raises:
        BadParameter: ``value`` holds a lone surrogate (``\\ud800`` in JSON).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{name}: {value[:40]!r} is not valid Unicode text"
        raise BadParameter(msg) from None
    return value


def parse_duration_ns(text: str, name: str) -> int:
    """Return a Go-style duration (``1h2m``, ``1.5s``, ``40ms``) in nanoseconds.

    Raises:
        BadParameter: ``text`` is not such a duration, or is over 292 years.
    """
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        msg = f"{name}: {text[:80]!r} is not a duration such as 40ms, 1.5s or 2m"
        raise BadParameter(msg)
    if not total <= MAX_NS:  # also infinity, from hundreds of digits
        msg = f"{name}: {text[:80]!r} is out of range; at most 106751d (292 years)"
        raise BadParameter(msg)
    return int(total)


def _int_param(name: str, low: int, high: int) -> int | None:
    """Return an integer query parameter between ``low`` and ``high`` (None: absent).

    Raises:
        BadParameter: It is not an integer, or out of range.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:  # also more than 4300 digits
        msg = f"{name}: {raw[:80]!r} is not an integer"
        raise BadParameter(msg) from None
    if not low <= value <= high:
        msg = f"{name}: {raw[:80]!r} is out of range; expected {low} to {high}"
        raise BadParameter(msg)
    return value


def envelope(
    data: Any,
    status: int = 200,
    errors: list[dict[str, Any]] | None = None,
    *,
    total: int | None = None,
) -> Response:
    """Return the response shape every Jaeger API reply has.

    Encoded with ``json.dumps`` without sorting keys or indenting (Flask's
    ``jsonify`` sorts every object's keys: a tenth of a search's time).
    """
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    body = json.dumps(
        {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors},
        separators=(",", ":"),
    )
    return Response(body, status=status, mimetype="application/json")


def _error(status: int, msg: str) -> Response:
    return envelope(None, status, [{"code": status, "msg": msg}])


def parse_trace_id(text: str) -> bytes:
    """Return a hex trace id (up to 32 digits, left-padded) as 16 bytes.

    Raises:
        BadParameter: ``text`` is not hex or too long.
    """
    text = text.strip().lower()
    if not text or len(text) > 32 or not re.fullmatch(r"[0-9a-f]+", text):
        msg = f"traceID: {text[:40]!r} is not a hex trace id of up to 32 digits"
        raise BadParameter(msg)
    return bytes.fromhex(text.rjust(32, "0"))


def query_from_args() -> TraceQuery:
    """Build a store query from Jaeger's search parameters.

    Raises:
        BadParameter: A parameter is malformed.
    """
    args = request.args
    tags: dict[str, str] = {}
    raw_tags = args.get("tags", "").strip()
    if raw_tags:
        try:
            parsed = json.loads(raw_tags)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            msg = f'tags: {raw_tags[:80]!r} is not a JSON object such as {{"error":"true"}}'
            raise BadParameter(msg)
        for key, value in parsed.items():
            text = value if isinstance(value, str) else json.dumps(value)
            tags[checked_text(key, "tags")] = checked_text(text, "tags")
    for pair in args.getlist("tag"):
        key, sep, value = pair.partition(":")
        if not sep or not key:
            msg = f"tag: {pair[:80]!r} is not key:value"
            raise BadParameter(msg)
        tags[key] = value
    query = TraceQuery(
        service=checked_text(args.get("service", ""), "service") or None,
        operation=checked_text(args.get("operation", ""), "operation") or None,
        tags=tags,
    )
    for name, attr in (("minDuration", "min_duration_ns"), ("maxDuration", "max_duration_ns")):
        raw = args.get(name, "").strip()
        if raw:
            setattr(query, attr, parse_duration_ns(raw, name))
    start_us = _int_param("start", 0, MAX_US)
    end_us = _int_param("end", 0, MAX_US)
    lookback = args.get("lookback", "").strip()
    if start_us is None and lookback and lookback != "custom":
        now_us = end_us if end_us is not None else time.time_ns() // 1000
        start_us = max(0, now_us - parse_duration_ns(lookback, "lookback") // 1000)
    query.start_min_ns = start_us * 1000 if start_us is not None else None
    query.start_max_ns = end_us * 1000 if end_us is not None else None
    limit = _int_param("limit", -(2**63), 2**63 - 1)
    query.limit = max(1, min(limit if limit is not None else DEFAULT_LIMIT, MAX_LIMIT))
    return query


@bp.errorhandler(BadParameter)
def _bad_parameter(exc: BadParameter) -> Response:
    return _error(400, str(exc))


@bp.get("/services")
def services() -> Response:
    """List the services."""
    return envelope(get_source().services(), errors=_remote_errors())


@bp.get("/services/<path:service>/operations")
def operations(service: str) -> Response:
    """List one service's operation names."""
    return envelope(get_source().operations(service), errors=_remote_errors())


@bp.get("/operations")
def operations_v2() -> Response:
    """List one service's operations as ``{name, spanKind}`` objects."""
    service = checked_text(request.args.get("service", ""), "service")
    names = get_source().operations(service)
    return envelope([{"name": n, "spanKind": ""} for n in names], errors=_remote_errors())


def _remote_errors() -> list[dict[str, Any]] | None:
    """The remote's failure, when the local store answered alone (Jaeger's shape for
    a partial answer: data and errors)."""
    return [{"code": 502, "msg": text} for text in remote_problems()] or None


BIG_TRACE_SPANS = 10_000
"""Traces bigger than this are read and written out a few span groups at a time;
smaller ones are loaded together, up to this many spans at once."""
_ENVELOPE_END = ',"limit":0,"offset":0,"errors":null}'


def _traces_json(
    store: Sources,
    summaries: Sequence[TraceSummary],
    errors: list[dict[str, Any]] | None = None,
) -> Iterator[str]:
    """Yield the Jaeger JSON of the traces found, each whole, in bounded memory."""
    yield '{"data":['
    batch: list[bytes] = []
    batch_spans = 0

    def pieces_of(trace_ids: list[bytes]) -> Iterator[Iterable[Sequence[StoredSpan]]]:
        loaded = store.get_traces(trace_ids)
        for trace_id in trace_ids:
            spans = loaded.pop(trace_id, None)
            if spans:
                yield [spans]

    def flush() -> Iterator[Iterable[Sequence[StoredSpan]]]:
        nonlocal batch, batch_spans
        if batch:
            yield from pieces_of(batch)
        batch, batch_spans = [], 0

    def traces() -> Iterator[Iterable[Sequence[StoredSpan]]]:
        nonlocal batch_spans
        for summary in summaries:
            if summary.span_count > BIG_TRACE_SPANS:
                yield from flush()
                pieces = store.trace_pieces(summary.trace_id)
                if pieces is not None:
                    yield pieces
                continue
            if batch_spans + summary.span_count > BIG_TRACE_SPANS:
                yield from flush()
            batch.append(summary.trace_id)
            batch_spans += summary.span_count
        yield from flush()

    separator = ""
    for pieces in traces():
        yield separator
        yield from jaeger_trace_json(pieces)
        separator = ","
    if errors:  # the local store answered alone
        yield f'],"total":0,"limit":0,"offset":0,"errors":{json.dumps(errors)}}}'
    else:
        yield f'],"total":0{_ENVELOPE_END}'  # total 0, as Jaeger answers a search


def _json_stream(parts: Iterator[str]) -> Response:
    """A JSON response written as ``parts`` come (never whole in memory)."""
    return Response(parts, mimetype="application/json")


@bp.get("/traces")
def find_traces() -> Response:
    """Search traces, or fetch the ``traceID`` ones; each result is the full trace."""
    store = get_source()
    trace_ids = [parse_trace_id(text) for text in request.args.getlist("traceID")]
    if trace_ids:
        return _traces_by_ids(store, trace_ids)
    summaries = store.search(query_from_args())
    return _json_stream(_traces_json(store, summaries, _remote_errors()))


def _traces_by_ids(store: Sources, trace_ids: list[bytes]) -> Response:
    """Return the traces asked for by id; each one not found is an error entry
    (Jaeger's shape: ``{"msg": "trace not found", "traceID": ...}``, no code)."""
    summaries: list[TraceSummary] = []
    missing: list[dict[str, Any]] = []
    for raw_id in trace_ids:
        summary = store.get_summary(raw_id)
        if summary is None:
            missing.append({"msg": "trace not found", "traceID": raw_id.hex()})
        else:
            summaries.append(summary)
    errors = missing + (_remote_errors() or [])
    return _json_stream(_traces_json(store, summaries, errors or None))


@bp.get("/traces/<trace_id>")
def get_trace(trace_id: str) -> Response:
    """Return one trace, or 404."""
    raw_id = parse_trace_id(trace_id)
    store = get_source()
    summary = store.get_summary(raw_id)
    pieces: Iterable[Sequence[StoredSpan]] | None = None
    if summary is not None and summary.span_count <= BIG_TRACE_SPANS:
        spans = store.get_trace(raw_id)  # small: one read, not two
        pieces = [spans] if spans else None
    elif summary is not None:
        pieces = store.trace_pieces(raw_id)
    if pieces is None:
        return _error(404, "trace not found")

    def parts() -> Iterator[str]:
        yield '{"data":['
        yield from jaeger_trace_json(pieces)
        yield f'],"total":0{_ENVELOPE_END}'  # total 0, as Jaeger answers

    response = _json_stream(parts())
    if request.args.get("download"):
        response.headers["Content-Disposition"] = (
            f'attachment; filename="trace-{raw_id.hex()}.jaeger.json"'
        )
    return response
