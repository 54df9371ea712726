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
import socket
import sqlite3
import zlib
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from flask import Blueprint, Response, current_app, request
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cvtrace.otlp.json_form import OtlpJsonError, parse_otlp_json
from cvtrace.store import SpanStore, WriteResult
from cvtrace.viewer import get_store
from cvtrace.viewer.auth import _host_name as host_name
from cvtrace.viewer.auth import header_authorized

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


def export_response(result: WriteResult) -> ExportTraceServiceResponse:
    """Return the OTLP response for a write, with partial success if needed."""
    response = ExportTraceServiceResponse()
    if result.rejected_spans:
        response.partial_success.rejected_spans = result.rejected_spans
        response.partial_success.error_message = result.error_message
    return response


def _drain(stream: Any, content_length: int | None, limit: int) -> None:
    """Read what is left of a refused body, so the client sees our answer."""
    if content_length is not None and content_length <= limit * _DRAIN_FACTOR:
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


class Reply(NamedTuple):
    """An answer to an OTLP/HTTP request, whatever serves it."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def _reply(http_status: int, code: int, message: str, content_type: str) -> Reply:
    body = _encode(status_pb2.Status(code=code, message=message), content_type)
    return Reply(http_status, content_type, body, {})


def export_traces(
    store: SpanStore,
    *,
    mimetype: str,
    content_encoding: str | None,
    content_length: int | None,
    authorization: str | None,
    host: str,
    stream: Any,
    token: str | None,
    allowed_hosts: Sequence[str] | None,
    limit: int,
) -> Reply:
    """Answer one ``POST /v1/traces``: check, decode and store it.

    The one implementation of the receiver's protocol, behind both the Flask
    route (tests, embedding) and :class:`OtlpHttpServer` (``cvtrace view``).

    Args:
        store: Where the spans go.
        mimetype: The request's content type without parameters, lower case.
        content_encoding: The ``Content-Encoding`` header, if any.
        content_length: The ``Content-Length`` header, if any.
        authorization: The ``Authorization`` header, if any.
        host: The ``Host`` header.
        stream: The body, read until it ends.
        token: The bearer token required, if any.
        allowed_hosts: Host names answered; others get 421 (``None``: any).
        limit: The largest body, after decompression.
    """
    reply_type = JSON if mimetype == JSON else PROTOBUF
    if allowed_hosts and host_name(host) not in allowed_hosts:
        _drain(stream, content_length, limit)
        return _reply(421, code_pb2.PERMISSION_DENIED, "unexpected Host header", reply_type)
    if not header_authorized(token, authorization):
        _drain(stream, content_length, limit)
        reply = _reply(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token", reply_type)
        reply.headers["WWW-Authenticate"] = 'Bearer realm="cvtrace"'
        return reply
    if mimetype not in (PROTOBUF, JSON):
        _drain(stream, content_length, limit)
        return _reply(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content type {mimetype or '(none)'!r}; send {PROTOBUF} or {JSON}",
            reply_type,
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "x-gzip":
        encoding = "gzip"
    if encoding not in ("gzip", "identity"):
        _drain(stream, content_length, limit)
        return _reply(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content encoding {encoding!r}; send gzip or none",
            reply_type,
        )
    if content_length is not None and content_length > limit:
        _drain(stream, content_length, limit)
        return _reply(413, code_pb2.INVALID_ARGUMENT, f"the body is over {limit} bytes", reply_type)
    try:
        body = read_body(stream, encoding, limit)
        message = decode_request(body, mimetype)
    except _TooLarge:
        _drain(stream, content_length, limit)
        return _reply(
            413,
            code_pb2.INVALID_ARGUMENT,
            f"the body is over {limit} bytes after decompression",
            reply_type,
        )
    except _BadBody as exc:
        return _reply(400, code_pb2.INVALID_ARGUMENT, str(exc), reply_type)
    try:
        result = store_request(store, message, body if mimetype == PROTOBUF else None)
    except sqlite3.OperationalError as exc:
        logger.warning("the span store is busy: %s", exc)
        reply = _reply(503, code_pb2.UNAVAILABLE, "the span store is busy", reply_type)
        reply.headers["Retry-After"] = "1"
        return reply
    return Reply(200, reply_type, _encode(export_response(result), reply_type), {})


@bp.post("/v1/traces")
def receive_traces() -> Response:
    """Receive one OTLP/HTTP export request."""
    reply = export_traces(
        get_store(),
        mimetype=(request.mimetype or "").lower(),
        content_encoding=request.headers.get("Content-Encoding"),
        content_length=request.content_length,
        authorization=request.headers.get("Authorization"),
        host=request.host,
        stream=request.stream,
        token=current_app.config.get("TOKEN"),
        allowed_hosts=current_app.config.get("ALLOWED_HOSTS"),
        limit=int(current_app.config["OTLP_MAX_BODY_BYTES"]),
    )
    return Response(
        reply.body, status=reply.status, content_type=reply.content_type, headers=reply.headers
    )


class _LimitedReader:
    """The body of one request on a kept-alive connection: ``length`` bytes."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.left = length

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes of the body (all that is left if negative)."""
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data: bytes = self._rfile.read(size)
        if len(data) < size:
            self.left = 0  # the client went away
        else:
            self.left -= len(data)
        return data


class _ChunkedReader:
    """A ``Transfer-Encoding: chunked`` body, decoded."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0
        self.done = False

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes of the decoded body."""
        if self.done:
            return b""
        if self._left == 0:
            line = self._rfile.readline(1024)
            try:
                self._left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                msg = "a chunk size is not hexadecimal"
                raise _BadChunk(msg) from None
            if self._left == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self.done = True
                return b""
        size = self._left if size < 0 else min(size, self._left)
        data: bytes = self._rfile.read(size)
        if len(data) < size:
            self.done = True
            return data
        self._left -= len(data)
        if self._left == 0:
            self._rfile.readline(1024)  # the chunk's CRLF
        return data


class _BadChunk(Exception):
    """A chunked body is malformed."""


class OtlpHttpServer(ThreadingHTTPServer):
    """The OTLP/HTTP port of ``cvtrace view``: ``POST /v1/traces`` and nothing else.

    A plain ``http.server`` with HTTP/1.1 keep-alive (a thread per connection,
    as exporters keep theirs open) instead of Flask on werkzeug's development
    server: the protocol is :func:`export_traces`, shared with the Flask route;
    werkzeug's request and body handling cost about 1.3 ms per 512-span request,
    as much as storing a fifth of its spans.

    Args:
        address: ``(host, port)``; port 0 picks a free one.
        store: Where the spans go.
        token: The bearer token required, if any.
        allowed_hosts: Host names answered; others get 421 (``None``: any).
        limit: The largest body, after decompression.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: SpanStore,
        *,
        token: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        limit: int = 64 * 1024 * 1024,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.store = store
        self.token = token
        self.allowed_hosts = allowed_hosts
        self.limit = limit
        super().__init__(address, _OtlpHandler)


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cvtrace-otlp"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # status, headers and body in one send (flushed after each request)
    timeout = 120  # an idle kept-alive connection is closed after this
    server: OtlpHttpServer

    def do_POST(self) -> None:
        """Answer ``POST /v1/traces``."""
        server = self.server
        headers = self.headers
        length_header = headers.get("Content-Length")
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        stream: _LimitedReader | _ChunkedReader
        content_length: int | None = None
        if chunked:
            stream = _ChunkedReader(self.rfile)
        else:
            try:
                content_length = int(length_header) if length_header is not None else 0
            except ValueError:
                content_length = -1
            if content_length < 0:
                self.send_error(400, "bad Content-Length")
                return
            stream = _LimitedReader(self.rfile, content_length)
        if self.path.split("?", 1)[0] != "/v1/traces":
            self._answer(Reply(404, "text/plain", b"not found: POST /v1/traces\n", {}), stream)
            return
        mimetype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        try:
            reply = export_traces(
                server.store,
                mimetype=mimetype,
                content_encoding=headers.get("Content-Encoding"),
                content_length=content_length,
                authorization=headers.get("Authorization"),
                host=headers.get("Host") or "",
                stream=stream,
                token=server.token,
                allowed_hosts=server.allowed_hosts,
                limit=server.limit,
            )
        except _BadChunk as exc:
            reply = _reply(400, code_pb2.INVALID_ARGUMENT, str(exc), PROTOBUF)
        except Exception:
            logger.exception("the OTLP receiver failed")
            reply = Reply(500, "text/plain", b"internal error\n", {})
        self._answer(reply, stream)

    def _answer(self, reply: Reply, stream: _LimitedReader | _ChunkedReader) -> None:
        unread = stream.left > 0 if isinstance(stream, _LimitedReader) else not stream.done
        # the reason phrase as werkzeug (which served this port before) writes it
        self.send_response(reply.status, HTTPStatus(reply.status).phrase.upper())
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if unread:  # a refused body left unread: the connection cannot carry another
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        """Refuse: the port only receives."""
        self.send_error(405, "send OTLP with POST /v1/traces")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing per request (errors are still logged)."""

    def log_error(self, format: str, *args: Any) -> None:
        """Log protocol errors at debug level (a client that went away, a timeout)."""
        logger.debug("OTLP/HTTP %s: " + format, self.address_string(), *args)
