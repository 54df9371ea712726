"""The data the viewer's pages draw, built by pure functions (no server, no I/O).

- :func:`waterfall_data`: one trace as compact columns (numbers as base64 typed
  arrays, each string once) in tree order, every span of the trace. The trace
  page (``waterfall.js``) draws the rows in view only, and collapses and expands
  subtrees itself: a row's subtree is the rows after it that are deeper.
- :func:`attribute_notes`: the key attributes of some rows, for the hover; the
  page asks for the rows it draws.
- :func:`durations_data`: the search page's scatter of trace duration over
  start time, with its axes.
- :func:`service_color`: a service's colour, from its name alone, so it is the
  same on every page.

Strings are sent as they are: the pages only ever set them as text
(``textContent``), never as markup.
"""

from __future__ import annotations

import base64
import colorsys
import functools
import hashlib
import statistics
import sys
from array import array
from collections.abc import Iterable, Sequence
from math import log10
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Status

from cvtrace.store import StoredSpan, TraceSummary
from cvtrace.viewer.jaeger import any_value_python
from cvtrace.viewer.tracetree import Row, tree_rows

__all__ = [
    "ERROR_COLOR",
    "attribute_notes",
    "durations_data",
    "format_duration_ns",
    "service_color",
    "service_colors",
    "waterfall_data",
]

ERROR_COLOR = "#D62728"
"""Errors' red: relative luminance 0.16, so 5.0:1 on white and 3.5:1 on the dark theme."""
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
MAX_NAME = 300
"""Longest span or service name sent with the rows (the details panel has the rest)."""
MAX_NOTE = 200
"""Longest attribute value in a hover note."""


def format_duration_ns(duration_ns: int) -> str:
    """Return a duration for people: ``850µs``, ``12.3ms``, ``4.56s``."""
    if duration_ns < 1_000_000:
        return f"{duration_ns / 1000:.0f}µs"
    if duration_ns < 1_000_000_000:
        return f"{duration_ns / 1e6:.3g}ms"
    return f"{duration_ns / 1e9:.3g}s"


# -- colours -----------------------------------------------------------------------

LUMINANCE_TIERS = (0.15, 0.24)
"""Relative luminances of service colours (WCAG 2): between 0.15 and 0.24 a colour
has at least 3:1 contrast on white (1.05 / 0.29 = 3.6) and on the dark theme's
background #15191E (luminance 0.0095: 0.20 / 0.0595 = 3.4). Two tiers, picked by
the name's hash like the hue, tell apart services whose hues are close."""


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def relative_luminance(color: str) -> float:
    """Return the WCAG relative luminance of ``#RRGGBB``."""
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast_ratio(a: str, b: str) -> float:
    """Return the WCAG contrast ratio of two ``#RRGGBB`` colours (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


SERVICE_HUES = (30, 45, 62, 90, 125, 155, 175, 192, 208, 222, 240, 258, 275, 292, 310)
"""Hues (degrees) of service colours, spread to look apart; no reds (errors' colour)."""


@functools.lru_cache(maxsize=4096)
def service_color(name: str) -> str:
    """Return a service's colour, ``#RRGGBB``, derived from its name only.

    The hue (one of :data:`SERVICE_HUES`) and the luminance tier (one of
    :data:`LUMINANCE_TIERS`) come from a hash of the name; the lightness is the one
    that gives that luminance, so every colour reads on light and dark backgrounds.
    """
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    pick = int.from_bytes(digest, "big")
    hue = SERVICE_HUES[pick % len(SERVICE_HUES)] / 360
    target = LUMINANCE_TIERS[(pick // len(SERVICE_HUES)) % len(LUMINANCE_TIERS)]
    saturation = 0.75
    low, high = 0.0, 1.0
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    for _ in range(24):  # luminance grows with HLS lightness: bisect for the target
        mid = (low + high) / 2
        rgb = colorsys.hls_to_rgb(hue, mid, saturation)
        luminance = 0.2126 * _linear(rgb[0]) + 0.7152 * _linear(rgb[1]) + 0.0722 * _linear(rgb[2])
        if luminance < target:
            low = mid
        else:
            high = mid
    return "#" + "".join(f"{round(c * 255):02X}" for c in rgb)


def service_colors(services: Iterable[str]) -> dict[str, str]:
    """Return :func:`service_color` for each service, in order of first appearance."""
    return {service: service_color(service) for service in services}


# -- the waterfall -------------------------------------------------------------------

FLAG_ERROR = 1
FLAG_ORPHAN = 2
FLAG_SKEWED = 4
WATERFALL_FORMAT = 2
"""Version of :func:`waterfall_data`'s layout (part of its cacheable URL)."""
_HOVER_KEY_SET = frozenset(HOVER_KEYS)


def typed_array(values: Sequence[float] | Sequence[int], dtype: str) -> dict[str, str]:
    """Return numbers as a base64 typed array ``{"dtype", "bdata"}``.

    ``dtype`` is one of ``f8``, ``u1``, ``u2``, ``u4`` (little-endian, as
    JavaScript's typed arrays on every platform the viewer runs on).
    """
    code = {"f8": "d", "u1": "B", "u2": "H", "u4": "I"}[dtype]
    packed = array(code, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return {"dtype": dtype, "bdata": base64.b64encode(packed.tobytes()).decode("ascii")}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attribute_notes(rows: Sequence[Row], first: int, last: int) -> dict[int, list[list[str]]]:
    """Return the key attributes (:data:`HOVER_KEYS`) of rows ``first`` to ``last - 1``.

    Answers ``{row: [[key, value], ...]}`` for the rows that have any, values as
    text (shortened to :data:`MAX_NOTE`). Reading every span's attributes is the
    most expensive part of a waterfall, so the page asks for the rows it draws only.
    """
    notes: dict[int, list[list[str]]] = {}
    for y in range(max(0, first), min(len(rows), last)):
        pairs = [
            [kv.key, _clip(str(any_value_python(kv.value)), MAX_NOTE)]
            for kv in rows[y].stored.span.attributes
            if kv.key in _HOVER_KEY_SET
        ]
        if pairs:
            notes[y] = pairs
    return notes


def waterfall_data(
    spans: Sequence[StoredSpan],
    *,
    rows: Sequence[Row] | None = None,
    service_order: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the waterfall of one trace as compact columns, for the page to draw.

    One entry per span in tree order (depth first, children by start time), in
    columns: numbers as base64 typed arrays (``{"dtype", "bdata"}``), strings once
    each in a table (``names``, ``services``, ``notes``, ``eventNames``) with a
    row's index into it.

    Args:
        spans: The trace's spans, as the store returns them.
        rows: ``tree_rows(spans)`` if the caller has it already.
        service_order: Services to list first, in this order (the page's header);
            the others follow in order of first appearance.

    Returns:
        ``rowCount``; ``ids`` (the rows' span ids, 16 hex digits each, joined);
        columns ``start``/``end`` (ms since the trace's start), ``depth``,
        ``service``, ``name``, ``note`` (the status message of an error, or 0)
        and ``flags`` (``FLAG_*`` bits); the spans' events as columns
        ``eventRow``, ``eventTime`` (ms since the trace's start) and
        ``eventName``; tables ``services``, ``colors`` (:func:`service_color`),
        ``names``, ``notes`` and ``eventNames``.
    """
    if rows is None:
        rows = tree_rows(spans)
    t0_ns = min((r.start_ns for r in rows), default=0)
    services = list(dict.fromkeys([*service_order, *(r.stored.service for r in rows)]))
    service_index = {name: i for i, name in enumerate(services)}
    protos = [r.stored.span for r in rows]
    # one pass per column: list comprehensions are the fast path over protobufs
    start = [(r.start_ns - t0_ns) / 1e6 for r in rows]
    end = [max(s, (r.end_ns - t0_ns) / 1e6) for s, r in zip(start, rows, strict=True)]
    names: dict[str, int] = {}
    name = [names.setdefault(n, len(names)) for n in [p.name for p in protos]]
    error_code = Status.STATUS_CODE_ERROR
    errors = [p.status.code == error_code for p in protos]
    notes: dict[str, int] = {"": 0}
    note = [0] * len(rows)
    for y, (p, is_error) in enumerate(zip(protos, errors, strict=True)):
        if is_error and p.status.message:
            note[y] = notes.setdefault(_clip(p.status.message, MAX_NOTE), len(notes))
    flags = [
        (FLAG_ERROR if is_error else 0)
        | (FLAG_ORPHAN if row.orphan else 0)
        | (FLAG_SKEWED if row.skewed else 0)
        for row, is_error in zip(rows, errors, strict=True)
    ]
    event_names: dict[str, int] = {}
    event_row: list[int] = []
    event_time: list[float] = []
    event_name: list[int] = []
    for y, events in enumerate([p.events for p in protos]):
        for event in events:
            event_row.append(y)
            event_time.append((event.time_unix_nano - t0_ns) / 1e6)
            event_name.append(event_names.setdefault(_clip(event.name, MAX_NAME), len(event_names)))
    return {
        "format": WATERFALL_FORMAT,
        "rowCount": len(rows),
        "ids": b"".join([r.span_id for r in rows]).hex(),
        "start": typed_array(start, "f8"),
        "end": typed_array(end, "f8"),
        "depth": typed_array([min(r.depth, 0xFFFF) for r in rows], "u2"),
        "service": typed_array([service_index[r.stored.service] for r in rows], "u2"),
        "name": typed_array(name, "u4"),
        "note": typed_array(note, "u4"),
        "flags": typed_array(flags, "u1"),
        "eventRow": typed_array(event_row, "u4"),
        "eventTime": typed_array(event_time, "f8"),
        "eventName": typed_array(event_name, "u4"),
        "services": [_clip(s, MAX_NAME) for s in services],
        "colors": [service_color(s) for s in services],
        "names": [_clip(n, MAX_NAME) for n in names],
        "notes": list(notes),
        "eventNames": list(event_names),
        "errorColor": ERROR_COLOR,
    }


# -- the search page's scatter ----------------------------------------------------------

MIN_TIME_PAD_MS = 1_000.0
"""Least time shown either side of the results: one result (or several within a
few milliseconds) still gets an axis of seconds, not of ±1 ms."""
LOG_RATIO = 20.0
"""Durations this many times the median or more: the log axis is the default."""


def durations_data(summaries: Sequence[TraceSummary]) -> dict[str, Any]:
    """Return the search results' scatter: a point per trace, duration over start time.

    Returns:
        Columns ``start`` (ms since the epoch), ``duration`` (ms), ``spans``,
        ``errors``, ``traceId``, ``service`` (the root's), ``name`` (the root's)
        and ``color`` (the root service's, :func:`service_color`); the axes:
        ``xRange`` (ms since the epoch, padded by at least
        :data:`MIN_TIME_PAD_MS`), ``yRange`` (0 to the longest, padded),
        ``logRange`` (log10 of ms, for the log axis) and ``log`` (whether the log
        axis is the better default: a duration :data:`LOG_RATIO` times the
        median or more).
    """
    starts = [s.start_ns / 1e6 for s in summaries]
    durations = [s.duration_ns / 1e6 for s in summaries]
    if summaries:
        first, last = min(starts), max(starts)
        pad = max((last - first) * 0.05, MIN_TIME_PAD_MS)
        longest = max(durations)
        positive = [d for d in durations if d > 0] or [1e-3]
        median = statistics.median(positive)
        low, high = min(positive), max(positive)
    else:
        first = last = pad = longest = median = 0.0
        low = high = 1.0
    return {
        "start": starts,
        "duration": durations,
        "spans": [s.span_count for s in summaries],
        "errors": [s.error_count for s in summaries],
        "traceId": [s.trace_id.hex() for s in summaries],
        "service": [_clip(s.root_service, MAX_NAME) for s in summaries],
        "name": [_clip(s.root_name, MAX_NAME) for s in summaries],
        "color": [service_color(s.root_service) for s in summaries],
        "xRange": [first - pad, last + pad],
        "yRange": [0.0, max(longest * 1.08, 1.0)],
        "logRange": [log10(low) - 0.3, log10(high) + 0.3],
        "log": len(summaries) >= 3 and longest >= LOG_RATIO * median,
    }
