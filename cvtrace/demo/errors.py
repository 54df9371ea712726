"""Error responses: a clear message, as JSON or as a page, for every 4xx and 5xx."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template
from opentelemetry import trace
from werkzeug.exceptions import HTTPException, InternalServerError

from cvtrace.demo.inputs import wants_json

logger = logging.getLogger(__name__)


def error_response(error: HTTPException) -> tuple[Response | str, int]:
    """Render ``error`` as ``{"error": {"status": ..., "message": ...}}`` or an HTML page."""
    status = error.code or 500
    message = error.description or error.name
    if wants_json():
        return jsonify(error={"status": status, "message": message}), status
    return render_template("error.html", status=status, title=error.name, message=message), status


def _unexpected(error: Exception) -> tuple[Response | str, int]:
    logger.exception("unhandled error", exc_info=error)
    trace.get_current_span().record_exception(error)
    return error_response(InternalServerError("something went wrong on our side"))


def register_error_handlers(app: Flask) -> None:
    """Make every HTTP error, and every unexpected exception, render as above."""
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(Exception, _unexpected)
