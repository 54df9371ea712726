"""The pages drawn from the analyses: trace comparison, service map, RED metrics.

Each page is rendered from the store's service names alone; its script
(``static/analyses.js``) asks ``/api`` for the analysis (:mod:`.analyses_api`) and
draws it, so the pages answer at once and the JSON they show can be scripted.
"""

from __future__ import annotations

import json

from flask import Blueprint, render_template, request

from cvtrace.viewer import get_store
from cvtrace.viewer.figures import service_colors
from cvtrace.viewer.remote import RemoteError
from cvtrace.viewer.sources import get_source, note_problem

bp = Blueprint("analyses_ui", __name__, template_folder="templates")

WINDOWS = (
    ("15m", "last 15 minutes", 15 * 60_000),
    ("1h", "last hour", 3600_000),
    ("6h", "last 6 hours", 6 * 3600_000),
    ("1d", "last day", 86_400_000),
    ("7d", "last 7 days", 7 * 86_400_000),
    ("30d", "last 30 days", 30 * 86_400_000),
)
"""(value, label, lookback in ms) of the time windows the pages offer."""


def _window() -> str:
    chosen = request.args.get("window", "")
    return chosen if chosen in {w[0] for w in WINDOWS} else "1h"


def _colors_json() -> str:
    try:
        names = get_source().services()
    except RemoteError as exc:  # the colours are a nicety: the page still answers
        note_problem(exc)
        names = []
    colors = service_colors(names)
    return json.dumps(colors).replace("<", "\\u003c").replace(">", "\\u003e")


@bp.get("/compare")
def compare() -> str:
    """Two traces merged by path; ``a`` and ``b`` are trace ids."""
    return render_template(
        "compare.html",
        a=request.args.get("a", "").strip(),
        b=request.args.get("b", "").strip(),
        colors=_colors_json(),
    )


@bp.get("/map")
def service_map() -> str:
    """Services and the calls between them over a time window."""
    return render_template("map.html", windows=WINDOWS, window=_window(), colors=_colors_json())


@bp.get("/metrics")
def metrics() -> tuple[str, int]:
    """Rate, errors and latency over time of one service's operations (or one of them).

    Without ``service``, the first service's; a service the store has no spans of is
    named in a note (404), and no other service's charts are drawn in its place.
    """
    services = get_store().services()
    service = request.args.get("service", "")
    unknown = service if service and service not in services else ""
    if service not in services:
        service = services[0] if services and not unknown else ""
    page = render_template(
        "metrics.html",
        services=services,
        service=service,
        unknown=unknown,
        operation=request.args.get("operation", ""),
        windows=WINDOWS,
        window=_window(),
        colors=_colors_json(),
    )
    return page, 404 if unknown else 200
