"""Plotly figures of traces, built by pure functions (no server, no I/O).

Plotly renders a small HTML subset in its text (``<b>``, ``<a href>``), so every
span-derived string put into a figure goes through :func:`html.escape`; plotly
shows the entities as the original characters, as text.

The trace page draws its waterfall from :func:`waterfall_data`: compact rows
(numbers as base64 typed arrays, each string once, escaped here) that
``viewer.js`` turns into plotly traces (SVG) for the rows in view only, and
for groups of rows when more than 1,500 are in view, so a 50,000-span trace
costs about as much to draw as a small one. The traces are one line trace per
service (a bar is a thick segment), one for error outlines, and one marker
trace at span starts that carries hover text and the span id (clicks). The
hover's key attributes come from :func:`attribute_notes`, for the rows drawn.

:func:`waterfall_figure` builds the whole trace as one plotly figure in Python
(WebGL, every row), for use outside the page.
"""

from __future__ import annotations

import base64
import html
import sys
from array import array
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from typing import Any

import plotly.graph_objects as go
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from cvtrace.store import StoredSpan, TraceSummary
from cvtrace.viewer.jaeger import any_value_python
from cvtrace.viewer.tracetree import Row, tree_rows

__all__ = [
    "attribute_notes",
    "durations_figure",
    "format_duration_ns",
    "service_colors",
    "waterfall_data",
    "waterfall_figure",
    "waterfall_spec",
]

PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#B279A2",
    "#72B7B2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
    "#2F4B7C",
)
ERROR_COLOR = "#D62728"
VISIBLE_ROWS = 60
ROW_PX = 22
LARGE_TRACE_SPANS = 5_000
HOVER_KEYS = (
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "url.path",
    "db.system.name",
    "db.query.text",
    "db.statement",
    "rpc.method",
    "error.type",
)
_MAX_LABEL = 80


def _clip(text: str, limit: int = _MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def esc(text: object, limit: int = _MAX_LABEL) -> str:
    """Return span-derived text, shortened and escaped for plotly."""
    return html.escape(_clip(str(text), limit), quote=True)


def format_duration_ns(duration_ns: int) -> str:
    """Return a duration for people: ``850µs``, ``12.3ms``, ``4.56s``."""
    if duration_ns < 1_000_000:
        return f"{duration_ns / 1000:.0f}µs"
    if duration_ns < 1_000_000_000:
        return f"{duration_ns / 1e6:.3g}ms"
    return f"{duration_ns / 1e9:.3g}s"


def service_colors(services: Sequence[str]) -> dict[str, str]:
    """Return a colour per service, in order of first appearance."""
    colors: dict[str, str] = {}
    for service in services:
        if service not in colors:
            colors[service] = PALETTE[len(colors) % len(PALETTE)]
    return colors


MAX_INDENT = 12


def row_label(row: Row, name: str | None = None, deepest: int = 0) -> str:
    """Return the y-axis label of a row: escaped name and markers, indented.

    Plotly right-aligns y-axis labels, so depth is shown by padding shallower
    rows on the right: two spaces per level below ``deepest`` (at most 12 levels).
    """
    marks = ""
    if row.orphan:
        marks += " ⚠"
    if row.skewed:
        marks += " ⏱"
    if row.collapsed:
        marks += f" ▸{row.child_count}"
    pad = "\u2002\u2002" * max(0, min(deepest, MAX_INDENT) - min(row.depth, MAX_INDENT))
    if name is None:
        name = esc(row.stored.span.name, 60)
    return f"{name}{marks}{pad}"


def _hover(row: Row, t0_ns: int, brief: bool, name: str, service: str) -> str:
    span = row.stored.span
    duration = max(0, span.end_time_unix_nano - span.start_time_unix_nano)
    lines = [
        f"<b>{name}</b>",
        f"service: {service}",
        f"duration: {format_duration_ns(duration)}",
        f"start: +{format_duration_ns(max(0, span.start_time_unix_nano - t0_ns))}",
    ]
    if span.status.code == Status.STATUS_CODE_ERROR:
        lines.append(f"<b>error</b> {esc(span.status.message, 60)}")
    if row.orphan:
        lines.append("parent missing from trace")
    if row.skewed:
        lines.append("outside its parent's time (clock skew?)")
    if not brief:
        attrs = {kv.key: kv.value for kv in span.attributes}
        for key in HOVER_KEYS:
            if key in attrs:
                lines.append(f"{esc(key)}: {esc(any_value_python(attrs[key]), 60)}")
    return "<br>".join(lines)


FLAG_ERROR = 1
FLAG_ORPHAN = 2
FLAG_SKEWED = 4
FLAG_COLLAPSED = 8
WATERFALL_FORMAT = 1
"""Version of :func:`waterfall_data`'s layout (part of its cacheable URL)."""
_HOVER_KEY_SET = frozenset(HOVER_KEYS)


def typed_array(values: Sequence[float] | Sequence[int], dtype: str) -> dict[str, str]:
    """Return numbers as plotly's base64 typed-array spec ``{"dtype", "bdata"}``.

    ``dtype`` is one of ``f8``, ``u1``, ``u2``, ``u4`` (little-endian, as
    JavaScript's typed arrays on every platform the viewer runs on).
    """
    code = {"f8": "d", "u1": "B", "u2": "H", "u4": "I"}[dtype]
    packed = array(code, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return {"dtype": dtype, "bdata": base64.b64encode(packed.tobytes()).decode("ascii")}


def _attribute_lines(span: Any) -> str:
    """Return a span's key attributes (:data:`HOVER_KEYS`) as escaped hover lines."""
    return "<br>".join(
        f"{esc(kv.key)}: {esc(any_value_python(kv.value), 60)}"
        for kv in span.attributes
        if kv.key in _HOVER_KEY_SET
    )


def attribute_notes(rows: Sequence[Row], first: int, last: int) -> dict[int, str]:
    """Return the key attributes of rows ``first`` to ``last - 1`` as escaped hover lines.

    Rows without any are left out. Reading every span's attributes is the most
    expensive part of a waterfall, so the page asks for the rows it draws only.
    """
    notes: dict[int, str] = {}
    for y in range(max(0, first), min(len(rows), last)):
        text = _attribute_lines(rows[y].stored.span)
        if text:
            notes[y] = text
    return notes


def waterfall_data(
    spans: Sequence[StoredSpan],
    *,
    collapsed: Collection[bytes] = (),
    focus_span_id: bytes | None = None,
    rows: Sequence[Row] | None = None,
    service_order: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the waterfall of one trace as compact rows, for the page to draw.

    One entry per row in tree order, in columns: numbers as base64 typed arrays
    (``{"dtype", "bdata"}``, as plotly.js reads them), strings once each in a
    table (``names``, ``services``, ``notes``) with a row's index into it. Every
    string is escaped here; the page only joins them with its own markup. The
    page (``viewer.js``) draws the rows in view as plotly traces.

    Args:
        spans: The trace's spans, as the store returns them.
        collapsed: Span ids whose subtrees are hidden.
        focus_span_id: A span to scroll the initial view to.
        rows: ``tree_rows(spans, collapsed)`` if the caller has it already.
        service_order: Services to colour first, in this order (the page's
            header); the others follow in order of first appearance.

    Returns:
        ``rowCount``; ``ids`` (the rows' span ids, 16 hex digits each, joined);
        columns ``start``/``end`` (ms since the trace's start), ``depth``,
        ``service``, ``name``, ``note`` (the error line of the hover; the key
        attributes are :func:`attribute_notes`, asked for by the page) and
        ``flags`` (``FLAG_*`` bits); ``children`` (row -> child count of
        collapsed rows); tables ``services``, ``colors``, ``names``,
        ``notes``; ``focusRow`` (or ``None``) and ``visibleRows``.
    """
    if rows is None:
        rows = tree_rows(spans, collapsed)
    t0_ns = min((s.span.start_time_unix_nano for s in spans), default=0)
    colors = service_colors([*service_order, *(r.stored.service for r in rows)])
    service_index = {name: i for i, name in enumerate(colors)}
    protos = [r.stored.span for r in rows]
    # one pass per column: list comprehensions are the fast path over protobufs
    start = [(p.start_time_unix_nano - t0_ns) / 1e6 for p in protos]
    end = [max(s, (p.end_time_unix_nano - t0_ns) / 1e6) for s, p in zip(start, protos, strict=True)]
    names: dict[str, int] = {}
    name = [names.setdefault(n, len(names)) for n in [p.name for p in protos]]
    error_code = Status.STATUS_CODE_ERROR
    errors = [p.status.code == error_code for p in protos]
    notes: dict[str, int] = {"": 0}
    note = [0] * len(rows)
    for y, (p, is_error) in enumerate(zip(protos, errors, strict=True)):
        if is_error:
            text = f"<b>error</b> {esc(p.status.message, 60)}"
            note[y] = notes.setdefault(text, len(notes))
    flags = [
        (FLAG_ERROR if is_error else 0)
        | (FLAG_ORPHAN if row.orphan else 0)
        | (FLAG_SKEWED if row.skewed else 0)
        | (FLAG_COLLAPSED if row.collapsed else 0)
        for row, is_error in zip(rows, errors, strict=True)
    ]
    children = {y: row.child_count for y, row in enumerate(rows) if row.collapsed}
    focus_row = None
    if focus_span_id is not None:
        focus_row = next((y for y, p in enumerate(protos) if p.span_id == focus_span_id), None)
    return {
        "format": WATERFALL_FORMAT,
        "rowCount": len(rows),
        "ids": b"".join(p.span_id for p in protos).hex(),
        "start": typed_array(start, "f8"),
        "end": typed_array(end, "f8"),
        "depth": typed_array([min(r.depth, 0xFFFF) for r in rows], "u2"),
        "service": typed_array([service_index[r.stored.service] for r in rows], "u2"),
        "name": typed_array(name, "u4"),
        "note": typed_array(note, "u4"),
        "flags": typed_array(flags, "u1"),
        "children": children,
        "services": [esc(s, 60) for s in colors],
        "colors": list(colors.values()),
        "names": [esc(n, 60) for n in names],
        "notes": list(notes),
        "errorColor": ERROR_COLOR,
        "focusRow": focus_row,
        "visibleRows": VISIBLE_ROWS,
        "rowPx": ROW_PX,
        "maxIndent": MAX_INDENT,
    }


def waterfall_figure(
    spans: Sequence[StoredSpan],
    *,
    collapsed: Collection[bytes] = (),
    focus_span_id: bytes | None = None,
    rows: Sequence[Row] | None = None,
) -> go.Figure:
    """Return the waterfall of one trace: a row per span in tree order.

    Takes the same arguments as :func:`waterfall_spec`, and returns its
    figure as a plotly ``Figure``.
    """
    spec = waterfall_spec(spans, collapsed=collapsed, focus_span_id=focus_span_id, rows=rows)
    # Plotly's per-element validation costs seconds at 50,000 spans; the spec's
    # shape is validated once by the tests (tests/viewer/test_figures.py).
    return go.Figure(data=spec["data"], layout=spec["layout"], _validate=False)


def waterfall_spec(
    spans: Sequence[StoredSpan],
    *,
    collapsed: Collection[bytes] = (),
    focus_span_id: bytes | None = None,
    rows: Sequence[Row] | None = None,
) -> dict[str, Any]:
    """Return the waterfall of one trace as a plotly figure dict (``data``, ``layout``).

    Args:
        spans: The trace's spans, as the store returns them.
        collapsed: Span ids whose subtrees are hidden.
        focus_span_id: A span to scroll the initial view to.
        rows: ``tree_rows(spans, collapsed)`` if the caller has it already.

    Returns:
        A figure whose marker trace (``meta="spans"``) has the span id of each
        point in ``customdata``.
    """
    if rows is None:
        rows = tree_rows(spans, collapsed)
    if not rows:
        return {"data": [], "layout": {"title": {"text": "no spans"}}}
    t0_ns = min(s.span.start_time_unix_nano for s in spans)
    colors = service_colors([r.stored.service for r in rows])
    brief = len(rows) > LARGE_TRACE_SPANS
    segments: dict[str, tuple[list[float | None], list[int | None]]] = {s: ([], []) for s in colors}
    error_x: list[float | None] = []
    error_y: list[int | None] = []
    mx: list[float] = []
    my: list[int] = []
    mcolor: list[str] = []
    msymbol: list[str] = []
    hover: list[str] = []
    ids: list[str] = []
    labels: list[str] = []
    focus_row: int | None = None
    deepest = max(r.depth for r in rows)
    names: dict[str, str] = {}  # escaped once per distinct name
    services: dict[str, str] = {}
    for y, row in enumerate(rows):
        span = row.stored.span
        start_ms = (span.start_time_unix_nano - t0_ns) / 1e6
        end_ms = max(start_ms, (span.end_time_unix_nano - t0_ns) / 1e6)
        xs, ys = segments[row.stored.service]
        xs.extend((start_ms, end_ms, None))
        ys.extend((y, y, None))
        is_error = span.status.code == Status.STATUS_CODE_ERROR
        if is_error:
            error_x.extend((start_ms, end_ms, None))
            error_y.extend((y, y, None))
        mx.append(start_ms)
        my.append(y)
        mcolor.append(ERROR_COLOR if is_error else colors[row.stored.service])
        msymbol.append("x" if is_error else "circle")
        name = names.get(span.name)
        if name is None:
            name = names[span.name] = esc(span.name, 60)
        service = services.get(row.stored.service)
        if service is None:
            service = services[row.stored.service] = esc(row.stored.service, 60)
        hover.append(_hover(row, t0_ns, brief, name, service))
        ids.append(span.span_id.hex())
        labels.append(row_label(row, name, deepest))
        if focus_span_id is not None and span.span_id == focus_span_id:
            focus_row = y
    traces: list[dict[str, Any]] = [
        {
            "type": "scattergl",
            "x": xs,
            "y": ys,
            "mode": "lines",
            "line": {"color": colors[service], "width": 12},
            "name": esc(service, 40),
            "hoverinfo": "skip",
            "connectgaps": False,
        }
        for service, (xs, ys) in segments.items()
    ]
    if error_x:
        traces.append(
            {
                "type": "scattergl",
                "x": error_x,
                "y": error_y,
                "mode": "lines",
                "line": {"color": ERROR_COLOR, "width": 3},
                "name": "error",
                "hoverinfo": "skip",
            }
        )
    traces.append(
        {
            "type": "scattergl",
            "x": mx,
            "y": my,
            "mode": "markers",
            "marker": {"color": mcolor, "symbol": msymbol, "size": 9, "line": {"width": 0}},
            "hovertext": hover,
            "hoverinfo": "text",
            "customdata": ids,
            "meta": "spans",
            "name": "spans",
            "showlegend": False,
        }
    )
    shown = min(len(rows), VISIBLE_ROWS)
    first = 0
    if focus_row is not None and focus_row >= shown:
        first = max(0, focus_row - shown // 2)
    layout = {
        "height": shown * ROW_PX + 140,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 40},
        "hovermode": "closest",
        "clickmode": "event",
        "dragmode": "pan",
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        "xaxis": {"title": {"text": "ms since trace start"}, "zeroline": False},
        "yaxis": {
            "tickmode": "array",
            "tickvals": list(range(len(rows))),
            "ticktext": labels,
            "range": [first + shown - 0.5, first - 0.5],
            "automargin": True,
            "showgrid": False,
            "zeroline": False,
        },
        "meta": {"rows": len(rows)},
    }
    return {"data": traces, "layout": layout}


def durations_figure(summaries: Sequence[TraceSummary]) -> go.Figure:
    """Return a scatter of trace duration over start time; each point is a trace.

    The trace id of each point is in ``customdata``; the page opens it on click.
    """
    figure = go.Figure()
    if summaries:
        errors = [s.error_count > 0 for s in summaries]
        figure.add_trace(
            go.Scatter(
                x=[
                    datetime.fromtimestamp(s.start_ns / 1e9, tz=timezone.utc).isoformat()
                    for s in summaries
                ],
                y=[s.duration_ns / 1e6 for s in summaries],
                mode="markers",
                marker={
                    "size": [min(24, 6 + s.span_count**0.5) for s in summaries],
                    "color": [ERROR_COLOR if e else PALETTE[0] for e in errors],
                    "opacity": 0.8,
                },
                customdata=[s.trace_id.hex() for s in summaries],
                hovertext=[
                    f"{esc(s.root_service, 40)}: {esc(s.root_name)}<br>"
                    f"{format_duration_ns(s.duration_ns)}, {s.span_count} spans"
                    + (f", {s.error_count} errors" if s.error_count else "")
                    for s in summaries
                ],
                hoverinfo="text",
                meta="traces",
            )
        )
    figure.update_layout(
        height=220,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        xaxis={"title": {"text": "start (UTC)"}},
        yaxis={"title": {"text": "duration (ms)"}, "rangemode": "tozero"},
        hovermode="closest",
    )
    return figure
