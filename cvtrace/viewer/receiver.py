"""OTLP/HTTP trace receiver protocol: ``POST /v1/traces``, whatever serves it.

Follows opentelemetry-proto's ``docs/specification.md``:

- bodies in ``application/x-protobuf`` or ``application/json`` (OTLP JSON), plain
  or ``Content-Encoding: gzip`` (decoded by :mod:`cvtrace.otlp.decoding`); any
  other content type or encoding gets 415;
- 200 with an ``ExportTraceServiceResponse`` in the request's content type, with
  ``partial_success`` (rejected span count and why) when some spans were invalid;
- 400 with a ``google.rpc.Status`` for a body that cannot be decoded, 413 for a
  body over ``OTLP_MAX_BODY_BYTES`` (as sent or decompressed), 401 without the
  token when one is set, 503 with ``Retry-After`` when the store is busy or
  :data:`DEFAULT_MAX_CONCURRENT_REQUESTS` requests are being decoded already,
  507 when the store's disk is full and 403 when it is read-only (neither
  retryable: the status's message says why and what to do);
- bad input never changes what is stored: a request is decoded in full before
  anything is written, and its valid spans are written in one transaction.

:func:`export_traces` is the protocol; the Flask route below serves it in the
viewer's app, and :mod:`cvtrace.viewer.otlp_http` on ``cvtrace view``'s OTLP port.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cvtrace.otlp.decoding import (
    JSON,
    PROTOBUF,
    BadBody,
    BodyTooLarge,
    Readable,
    decode_request,
    read_body,
)
from cvtrace.store import SpanStore, StoreFullError, StoreReadOnlyError, WriteResult
from cvtrace.viewer import get_store
from cvtrace.viewer.auth import _host_name as host_name
from cvtrace.viewer.auth import header_authorized

logger = logging.getLogger(__name__)

bp = Blueprint("receiver", __name__)

_CHUNK = 256 * 1024
_DRAIN_FACTOR = 4
DEFAULT_MAX_CONCURRENT_REQUESTS = 2
"""OTLP requests read, decoded and stored at once, over all receivers of a viewer.

Each holds up to about six times its size in memory (the body, the decoded message,
the rows, SQLite's copy: README.md, "The viewer's memory"); more at once would
not go faster (one writer, the GIL) but would multiply that."""
SLOT_WAIT_S = 5.0
"""How long a request waits for a slot before it is answered 503 (retry later)."""


class DecodeSlots:
    """At most ``size`` OTLP requests read, decoded and stored at once.

    Shared by every receiver of one viewer (the OTLP/HTTP port, the Flask route,
    gRPC): the memory a request needs grows with its size, so the number of them
    in flight is what bounds the viewer's memory. A request waits up to
    ``wait_s`` for a slot; one that gets none is answered "unavailable, retry".
    """

    def __init__(self, size: int = DEFAULT_MAX_CONCURRENT_REQUESTS, wait_s: float = SLOT_WAIT_S):
        self.size = size
        self.wait_s = wait_s
        self._semaphore = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def hold(self) -> Iterator[bool]:
        """Hold a slot while in the ``with``; yield whether one was had."""
        had = self._semaphore.acquire(timeout=self.wait_s)
        try:
            yield had
        finally:
            if had:
                self._semaphore.release()


_SLOTS_KEY = "cvtrace.decode_slots"


@bp.record_once
def _add_slots(state: BlueprintSetupState) -> None:
    size = int(state.app.config.get("OTLP_MAX_CONCURRENT_REQUESTS") or 0)
    state.app.extensions[_SLOTS_KEY] = DecodeSlots(size or DEFAULT_MAX_CONCURRENT_REQUESTS)


def decode_slots(app: Flask) -> DecodeSlots:
    """Return the request slots of a viewer app (to share with its other receivers)."""
    slots: DecodeSlots = app.extensions[_SLOTS_KEY]
    return slots


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


def _drain(stream: Readable, content_length: int | None, limit: int) -> None:
    """Read what is left of a refused body, so the client sees our answer."""
    if content_length is not None and content_length <= limit * _DRAIN_FACTOR:
        with contextlib.suppress(BadBody):  # a broken body: the connection closes
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
    stream: Readable,
    token: str | None,
    allowed_hosts: Sequence[str] | None,
    limit: int,
    slots: DecodeSlots | None = None,
) -> Reply:
    """Answer one ``POST /v1/traces``: check, decode and store it.

    The one implementation of the receiver's protocol, behind both the Flask
    route (tests, embedding) and :class:`cvtrace.viewer.otlp_http.OtlpHttpServer`
    (``cvtrace view``).

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
        limit: The largest body, as sent and after decompression.
        slots: Bounds the requests decoded at once (``None``: no bound).
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
    with slots.hold() if slots is not None else contextlib.nullcontext(True) as had_slot:
        if not had_slot:
            _drain(stream, content_length, limit)
            reply = _reply(
                503,
                code_pb2.UNAVAILABLE,
                f"{slots.size if slots else 0} requests are being decoded; retry later",
                reply_type,
            )
            reply.headers["Retry-After"] = "1"
            return reply
        return _decode_and_store(store, stream, mimetype, encoding, content_length, limit)


def _decode_and_store(
    store: SpanStore,
    stream: Readable,
    mimetype: str,
    encoding: str,
    content_length: int | None,
    limit: int,
) -> Reply:
    reply_type = JSON if mimetype == JSON else PROTOBUF
    try:
        body = read_body(stream, encoding, limit)
        message = decode_request(body, mimetype)
    except BodyTooLarge:
        _drain(stream, content_length, limit)
        return _reply(
            413,
            code_pb2.INVALID_ARGUMENT,
            f"the body is over {limit} bytes (as sent or after decompression)",
            reply_type,
        )
    except BadBody as exc:
        return _reply(400, code_pb2.INVALID_ARGUMENT, str(exc), reply_type)
    try:
        result = store_request(store, message, body if mimetype == PROTOBUF else None)
    except StoreFullError as exc:  # the store logs it, once
        return _reply(507, code_pb2.RESOURCE_EXHAUSTED, str(exc), reply_type)
    except StoreReadOnlyError as exc:
        return _reply(403, code_pb2.PERMISSION_DENIED, str(exc), reply_type)
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
        slots=decode_slots(current_app),
    )
    return Response(
        reply.body, status=reply.status, content_type=reply.content_type, headers=reply.headers
    )
