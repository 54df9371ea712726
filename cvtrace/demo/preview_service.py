"""The preview service (service ``preview``): draws circuits as SVG, over HTTP.

A separate process from the site, so that one request to the site makes one trace across
two services. ``POST /render`` takes ``{"circuit": <document>, "title": "..."}`` and
answers ``image/svg+xml``; ``GET /up`` is its health check. Run it with
``gunicorn -b 0.0.0.0:8001 'cvtrace.demo.preview_service:create_app()'`` or
``python -m cvtrace.demo.serve preview``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, request
from opentelemetry import trace
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

import cvtrace
from cvtrace.demo.config import service_name
from cvtrace.demo.document import CircuitError, parse_circuit
from cvtrace.demo.errors import register_error_handlers
from cvtrace.demo.logs import configure_logging
from cvtrace.demo.svg import TooLargeToRender, render_svg

SERVICE_NAME = "preview"

bp = Blueprint("preview", __name__)
tracer = trace.get_tracer(__name__)


@bp.get("/up")
def up() -> Response:
    """Answer 200 "ok": the service has no dependencies to check."""
    return Response("ok\n", mimetype="text/plain")


@bp.post("/render")
def render() -> Response:
    """Draw the circuit in the request body."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or "circuit" not in data:
        msg = 'the body must be a JSON object {"circuit": <circuit document>, "title": "..."}'
        raise BadRequest(msg)
    title = data.get("title", "")
    if not isinstance(title, str) or len(title) > 200:
        msg = "title must be a string of at most 200 characters"
        raise BadRequest(msg)
    try:
        netlist = parse_circuit(data["circuit"])
    except CircuitError as exc:
        raise BadRequest(str(exc)) from None
    with tracer.start_as_current_span("render svg") as span:
        span.set_attribute("demo.gates", len(netlist.gates))
        span.set_attribute("demo.wires", len(netlist.wires))
        try:
            svg = render_svg(netlist, title)
        except TooLargeToRender as exc:
            raise RequestEntityTooLarge(str(exc)) from None
    return Response(svg, mimetype="image/svg+xml")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the preview service.

    Args:
        config: Flask settings to apply (tests use this).
    """
    configure_logging()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    if config:
        app.config.update(config)
    app.register_blueprint(bp)
    register_error_handlers(app)
    cvtrace.init(app=app, service_name=service_name(SERVICE_NAME))
    return app
