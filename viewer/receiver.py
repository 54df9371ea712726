"""OTLP/HTTP trace receiver: ``POST /v1/traces``.

Follows opentelemetry-proto's ``docs/specification.md``:

- bodies in ``application/x-protobuf`` or ``application/json`` (OTLP JSON), plain
  or ``Content-Encoding: gzip``; any other content type or encoding gets 415;
- 200 with an ``ExportTraceServiceResponse`` in the request's content type, with
  ``partial_success`` (rejected span count and why) when some spans were invalid;
- 400 with a ``google.rpc.Status`` for a body that cannot be decoded, 413 for a
  body over ``OTLP_MAX_BODY_BYTES`` after decompression (decompressed in steps,
  so a gzip bomb stops at the limit), 401 without the token when one is set,
  503 (retryable) when the store is busy;
- bad input never changes what is stored: a request is decoded in full before
  anything is written, and its valid spans are written in one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import zlib
from typing import Any

from flask import Blueprint, Response, current_app, request
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cvtrace.otlp_json import OtlpJsonError, parse_otlp_json
from cvtrace.store import SpanStore, WriteResult
from viewer import get_store
from viewer.auth import check_host, header_authorized

logger = logging.getLogger(__name__)

bp = Blueprint("receiver", __name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CHUNK = 256 * 1024
_DRAIN_FACTOR = 4


class _TooLarge(Exception):
    """The body is over the size limit."""


class _BadBody(Exception):
    """The body cannot be decoded."""


def read_body(stream: Any, encoding: str, limit: int) -> bytes:
    """Read and decompress a request body, stopping at ``limit`` bytes.

    Raises:
        _TooLarge: The body, decompressed, is over ``limit`` bytes.
        _BadBody: The gzip stream is corrupt.
    """
    raw = bytearray()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        raw += chunk
        if len(raw) > limit:
            raise _TooLarge
    if encoding != "gzip":
        return bytes(raw)
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    data = bytes(raw)
    try:
        while data:
            out += inflater.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise _TooLarge
            data = inflater.unconsumed_tail
            if inflater.eof:
                # concatenated gzip members are allowed by the format
                data = inflater.unused_data
                if data:
                    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        if not inflater.eof:
            msg = "the gzip stream ends early"
            raise _BadBody(msg)
    except zlib.error as exc:
        msg = f"the body is not valid gzip: {exc}"
        raise _BadBody(msg) from None
    return bytes(out)


def decode_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an ExportTraceServiceRequest from protobuf or OTLP JSON.

    Raises:
        _BadBody: The body is not a valid request.
    """
    if content_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except Exception as exc:  # DecodeError, or anything upb raises on garbage
            msg = f"the body is not an ExportTraceServiceRequest: {exc}"
            raise _BadBody(msg) from None
    try:
        return parse_otlp_json(body, ExportTraceServiceRequest())
    except OtlpJsonError as exc:
        raise _BadBody(str(exc)) from None


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == JSON:
        return MessageToJson(message, use_integers_for_enums=True, indent=None).encode()
    return message.SerializeToString()


def _status(http_status: int, code: int, message: str, content_type: str) -> Response:
    body = _encode(status_pb2.Status(code=code, message=message), content_type)
    return Response(body, status=http_status, content_type=content_type)


def export_response(result: WriteResult) -> ExportTraceServiceResponse:
    """Return the OTLP response for a write, with partial success if needed."""
    response = ExportTraceServiceResponse()
    if result.rejected_spans:
        response.partial_success.rejected_spans = result.rejected_spans
        response.partial_success.error_message = result.error_message
    return response


def _drain(limit: int) -> None:
    """Read what is left of a refused body, so the client sees our answer."""
    length = request.content_length
    if length is not None and length <= limit * _DRAIN_FACTOR:
        stream = request.stream
        while stream.read(_CHUNK):
            pass


def store_request(
    store: SpanStore, message: ExportTraceServiceRequest, encoded: bytes | None = None
) -> WriteResult:
    """Write a decoded request; the one storage path of both receivers.

    ``encoded`` is the protobuf ``message`` was decoded from, if any: the store
    keeps each span's bytes as sent instead of serializing it again.
    """
    return store.write_request(message, encoded)


@bp.post("/v1/traces")
def receive_traces() -> Response:
    """Receive one OTLP/HTTP export request."""
    mimetype = (request.mimetype or "").lower()
    reply_type = JSON if mimetype == JSON else PROTOBUF
    limit = int(current_app.config["OTLP_MAX_BODY_BYTES"])
    refused_host = check_host()
    if refused_host is not None:
        _drain(limit)
        return _status(421, code_pb2.PERMISSION_DENIED, "unexpected Host header", reply_type)
    if not header_authorized(current_app.config.get("TOKEN"), request.headers.get("Authorization")):
        _drain(limit)
        response = _status(
            401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token", reply_type
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="cvtrace"'
        return response
    if mimetype not in (PROTOBUF, JSON):
        _drain(limit)
        return _status(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content type {mimetype or '(none)'!r}; send {PROTOBUF} or {JSON}",
            reply_type,
        )
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "x-gzip":
        encoding = "gzip"
    if encoding not in ("gzip", "identity"):
        _drain(limit)
        return _status(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content encoding {encoding!r}; send gzip or none",
            reply_type,
        )
    if request.content_length is not None and request.content_length > limit:
        _drain(limit)
        return _status(
            413, code_pb2.INVALID_ARGUMENT, f"the body is over {limit} bytes", reply_type
        )
    try:
        body = read_body(request.stream, encoding, limit)
        message = decode_request(body, mimetype)
    except _TooLarge:
        _drain(limit)
        return _status(
            413,
            code_pb2.INVALID_ARGUMENT,
            f"the body is over {limit} bytes after decompression",
            reply_type,
        )
    except _BadBody as exc:
        return _status(400, code_pb2.INVALID_ARGUMENT, str(exc), reply_type)
    try:
        result = store_request(get_store(), message, body if mimetype == PROTOBUF else None)
    except sqlite3.OperationalError as exc:
        logger.warning("the span store is busy: %s", exc)
        response = _status(503, code_pb2.UNAVAILABLE, "the span store is busy", reply_type)
        response.headers["Retry-After"] = "1"
        return response
    return Response(
        _encode(export_response(result), reply_type), status=200, content_type=reply_type
    )
