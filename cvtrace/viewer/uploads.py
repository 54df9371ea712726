"""``POST /api/import``: trace files uploaded (the search page, or ``curl``), imported.

Two ways to send files (any format and compression ``cvtrace import`` reads,
:mod:`cvtrace.viewer.importing`):

- ``Content-Type: application/octet-stream``: the body is one file as it is on disk,
  its name in ``?name=`` (what the search page sends, a file at a time);
- ``multipart/form-data``: one or more files, in fields of any name (``curl -F
  file=@trace.json.gz``); it needs a ``Content-Length``.

The answer is JSON: the totals of the import (``traces``, ``spans``, ``newSpans``,
``rejectedRecords``, ``rejectedSpans``, ``problems``, ...), ``ok`` (false when anything
was rejected) and ``files``, the same for each file with its ``name``. The status is
200 when anything was imported or nothing was rejected, 400 when every record read
was rejected (nothing at all could be imported). Like every ``/api`` route it needs
the token when one is set (the page's cookie carries it).

A form on another site's page can post ``multipart/form-data`` (not
``application/octet-stream``, which needs a CORS preflight the viewer does not answer):
a request that says it is cross-site (``Sec-Fetch-Site``, which browsers send) or
from another origin (``Origin``, which browsers send on a cross-origin POST) is refused,
and the token cookie is ``SameSite=Strict``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from cvtrace.viewer import get_store
from cvtrace.viewer.importing import Importer, ImportSummary

bp = Blueprint("uploads", __name__)

DEFAULT_IMPORT_MAX_BODY_BYTES = 256 * 1024 * 1024
UPLOAD_TYPE = "application/octet-stream"
FORM_TYPE = "multipart/form-data"


class _TooLarge(Exception):
    """The upload is over the limit (``summary``: what was imported before it)."""

    def __init__(self, summary: ImportSummary | None = None) -> None:
        super().__init__("over the limit")
        self.summary = summary if summary is not None else ImportSummary()


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


def merged(parts: list[ImportSummary]) -> ImportSummary:
    """Return the totals of several files' import summaries."""
    total = ImportSummary()
    for part in parts:
        total.records += part.records
        total.spans += part.spans
        total.new_spans += part.new_spans
        total.rejected_records += part.rejected_records
        total.rejected_spans += part.rejected_spans
        total.problems.extend(part.problems)
        total.formats.update(part.formats)
        total.trace_ids.update(part.trace_ids)
    return total


def _summary_answer(
    files: list[tuple[str, ImportSummary]], error: str | None = None, status: int | None = None
) -> Response:
    """Answer the totals and each file's summary; 400 when nothing could be imported."""
    total = merged([summary for _, summary in files])
    data: dict[str, Any] = {
        **total.as_json(),
        "ok": total.ok and error is None,
        "files": [{"name": name, **summary.as_json(), "ok": summary.ok} for name, summary in files],
    }
    if error is not None:
        data["error"] = error
    if status is None:
        status = 400 if not total.ok and total.spans == 0 else 200
    return _answer(status, data)


def _import_one(stream: Any, name: str, limit: int) -> ImportSummary:
    """Import one file's bytes.

    Raises:
        _TooLarge: Over ``limit`` bytes (what came before it is imported).
    """
    importer = Importer(get_store(), limit=int(current_app.config["OTLP_MAX_BODY_BYTES"]))
    try:
        importer.import_stream(_Limited(stream, limit), name)  # type: ignore[arg-type]
    except _TooLarge:
        importer.flush()
        raise _TooLarge(importer.summary) from None
    return importer.summary


@bp.post("/api/import")
def import_traces() -> Response:
    """Import the uploaded trace files; answer the summary."""
    if _cross_site():
        return _answer(403, {"error": "cross-site imports are refused"})
    mimetype = (request.mimetype or "").lower()
    if mimetype not in (UPLOAD_TYPE, FORM_TYPE):
        return _answer(415, {"error": f"send one file as {UPLOAD_TYPE}, or files as {FORM_TYPE}"})
    limit = int(current_app.config.get("IMPORT_MAX_BODY_BYTES") or DEFAULT_IMPORT_MAX_BODY_BYTES)
    if request.content_length is not None and request.content_length > limit:
        return _answer(413, {"error": f"the upload is over {limit:,} bytes"})
    if mimetype == FORM_TYPE:
        return _import_form(limit)
    name = request.args.get("name", "").strip()[:200] or "upload"
    try:
        summary = _import_one(request.stream, name, limit)
    except _TooLarge as exc:
        message = f"the file is over {limit:,} bytes: imported up to there"
        return _summary_answer([(name, exc.summary)], message, 413)
    return _summary_answer([(name, summary)])


def _import_form(limit: int) -> Response:
    """Import the files of a ``multipart/form-data`` body, each under its own name.

    The body is at most ``limit`` bytes (checked before), so no file is over it.
    """
    if request.content_length is None:
        return _answer(411, {"error": f"a {FORM_TYPE} upload needs a Content-Length"})
    uploads = [upload for _, upload in request.files.items(multi=True)]
    if not uploads:
        return _answer(400, {"error": "the form has no file: send it as -F file=@PATH"})
    files = []
    for upload in uploads:
        name = (upload.filename or "upload").strip()[:200] or "upload"
        files.append((name, _import_one(upload.stream, name, limit)))
    return _summary_answer(files)
