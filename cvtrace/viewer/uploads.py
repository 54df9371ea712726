"""``POST /api/import``: a trace file uploaded from the search page, imported.

The body is the file as it is on disk (any format and compression ``cvtrace import``
reads, :mod:`cvtrace.viewer.importing`), sent with ``Content-Type:
application/octet-stream`` and the file's name in ``?name=``; the answer is the
import's summary as JSON (``ok`` false when anything was rejected). Like every
``/api`` route it needs the token when one is set (the page's cookie carries it).

``application/octet-stream`` is not a type a form or a "simple" cross-site request can
send, so another site's page cannot make a browser post here without a CORS preflight,
which the viewer does not answer; a request that says it is cross-site
(``Sec-Fetch-Site``) or from another origin is refused as well.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from cvtrace.viewer import get_store
from cvtrace.viewer.importing import Importer

bp = Blueprint("uploads", __name__)

DEFAULT_IMPORT_MAX_BODY_BYTES = 256 * 1024 * 1024
UPLOAD_TYPE = "application/octet-stream"


class _TooLarge(Exception):
    """The upload is over the limit."""


class _Limited:
    """A body stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise _TooLarge
        return data


def _answer(status: int, data: dict[str, Any]) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _cross_site() -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc != request.host


@bp.post("/api/import")
def import_traces() -> Response:
    """Import one uploaded trace file; answer the summary."""
    if _cross_site():
        return _answer(403, {"error": "cross-site imports are refused"})
    if (request.mimetype or "").lower() != UPLOAD_TYPE:
        return _answer(415, {"error": f"send the file as {UPLOAD_TYPE}"})
    limit = int(current_app.config.get("IMPORT_MAX_BODY_BYTES") or DEFAULT_IMPORT_MAX_BODY_BYTES)
    if request.content_length is not None and request.content_length > limit:
        return _answer(413, {"error": f"the file is over {limit:,} bytes"})
    name = request.args.get("name", "").strip()[:200] or "upload"
    importer = Importer(get_store(), limit=int(current_app.config["OTLP_MAX_BODY_BYTES"]))
    try:
        importer.import_stream(_Limited(request.stream, limit), name)  # type: ignore[arg-type]
    except _TooLarge:
        importer.flush()
        summary = importer.summary.as_json()
        summary["error"] = f"the file is over {limit:,} bytes: imported up to there"
        return _answer(413, {**summary, "ok": False})
    return _answer(200, {**importer.summary.as_json(), "ok": importer.summary.ok})
