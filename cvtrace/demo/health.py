"""``GET /up``: the health check deployment tools poll.

It runs a query, so a dead database fails it. cvtrace excludes ``/up`` from tracing, so
neither the request nor its query makes a span.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cvtrace.demo.db import get_db

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/up")
def up() -> Response:
    """Answer 200 "ok" when the database answers, 503 otherwise."""
    try:
        get_db().execute(text("SELECT 1"))
    except SQLAlchemyError:
        logger.exception("health check: the database is not answering")
        return Response("database unavailable\n", status=503, mimetype="text/plain")
    return Response("ok\n", mimetype="text/plain")
