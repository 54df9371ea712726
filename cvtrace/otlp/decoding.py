"""Decoding OTLP export requests from the wire: body, gzip, protobuf or OTLP JSON.

What a receiver (the viewer's OTLP/HTTP port, its Flask route) or an importer
needs to turn bytes into an ``ExportTraceServiceRequest``, with the limits that
keep hostile input cheap:

- the body is read and decompressed in steps and refused as soon as it is over
  the size limit, compressed or not (a gzip bomb stops at the limit);
- gzip input is fed to zlib in slices of at most :data:`_CHUNK` bytes, so a body
  of many concatenated members costs time linear in its size (feeding the whole
  rest after each member copied it once per member: 200,000 empty members, 4 MB,
  took 15 s), and at most :data:`MAX_GZIP_MEMBERS` members are accepted.
"""

from __future__ import annotations

import zlib
from typing import Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from cvtrace.otlp.json_form import OtlpJsonError, parse_otlp_json

__all__ = [
    "JSON",
    "MAX_GZIP_MEMBERS",
    "PROTOBUF",
    "BadBody",
    "BodyTooLarge",
    "decode_request",
    "gunzip",
    "read_body",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_GZIP_MEMBERS = 1024
"""Concatenated gzip members accepted in one body (senders write one)."""
_CHUNK = 256 * 1024
_GZIP = 16 + zlib.MAX_WBITS


class BodyTooLarge(Exception):
    """The body is over the size limit (before or after decompression)."""


class BadBody(ValueError):
    """The body cannot be decoded; the message says why."""


class Readable(Protocol):
    """A request body: ``read(size)`` returns up to ``size`` bytes, ``b""`` at its end."""

    def read(self, size: int = -1, /) -> bytes: ...


def read_body(stream: Readable, encoding: str, limit: int) -> bytes:
    """Read a request body and decompress it, stopping at ``limit`` bytes.

    Args:
        stream: The body.
        encoding: ``gzip`` or ``identity`` (the ``Content-Encoding``).
        limit: The largest body accepted, compressed and decompressed.

    Raises:
        BodyTooLarge: The body, as sent or decompressed, is over ``limit`` bytes.
        BadBody: The gzip data is corrupt.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    del chunks
    if encoding != "gzip":
        return raw
    return gunzip(raw, limit)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` (one or more members), refusing more than ``limit`` bytes out.

    Raises:
        BodyTooLarge: The data decompresses to more than ``limit`` bytes.
        BadBody: The data is not gzip, ends early, or has too many members.
    """
    out = bytearray()
    view = memoryview(data)
    pos = 0
    members = 0
    try:
        while pos < len(view) or members == 0:
            members += 1
            if members > MAX_GZIP_MEMBERS:
                msg = f"the gzip body has more than {MAX_GZIP_MEMBERS} members"
                raise BadBody(msg)
            inflater = zlib.decompressobj(wbits=_GZIP)
            while not inflater.eof:
                piece = view[pos : pos + _CHUNK]
                if not piece:
                    msg = "the gzip stream ends early"
                    raise BadBody(msg)
                out += inflater.decompress(piece, limit + 1 - len(out))
                if len(out) > limit:
                    raise BodyTooLarge
                # what zlib took of the piece; the rest is fed again (or is the next member)
                pos += len(piece) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
    except zlib.error as exc:
        msg = f"the body is not valid gzip: {exc}"
        raise BadBody(msg) from None
    return bytes(out)


def decode_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an ``ExportTraceServiceRequest`` from protobuf or OTLP JSON.

    Args:
        body: The decompressed body.
        content_type: :data:`PROTOBUF` or :data:`JSON`.

    Raises:
        BadBody: The body is not a valid request.
    """
    if content_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except Exception as exc:  # DecodeError, or anything upb raises on garbage
            msg = f"the body is not an ExportTraceServiceRequest: {exc}"
            raise BadBody(msg) from None
    try:
        return parse_otlp_json(body, ExportTraceServiceRequest())
    except OtlpJsonError as exc:
        raise BadBody(str(exc)) from None
