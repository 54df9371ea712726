"""``cvtrace view``'s OTLP/HTTP port: an HTTP/1.1 server for ``POST /v1/traces`` alone.

A plain ``http.server`` with keep-alive (a thread per connection, as exporters
keep theirs open) instead of a WSGI server: the protocol is
:func:`cvtrace.viewer.receiver.export_traces`, shared with the viewer app's Flask
route; werkzeug's request and body handling cost about 1.3 ms per 512-span
request, as much as storing a fifth of its spans.

Framing is read strictly (RFC 9112), since this port may sit behind a proxy:

- ``Content-Length`` is digits only; several values (repeated headers or a
  list) must agree; with ``Transfer-Encoding`` as well, the request is refused
  (400), and so is a transfer coding other than ``chunked`` (501);
- a chunked body's sizes are 1-16 hex digits, each chunk ends with CRLF, the
  body ends with its last chunk: anything else is a 400;
- a body that ends early (the client went away) is never decoded or stored;
- after a refusal whose body was not read in full, the connection closes.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cvtrace.otlp.decoding import BadBody
from cvtrace.store import SpanStore
from cvtrace.viewer.receiver import DecodeSlots, Reply, export_traces

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
"""Connections the kernel queues before they are accepted (socketserver's default is 5:
a burst of connects then waits for SYN retransmits, a second or more)."""
_MAX_LINE = 4096
_MAX_TRAILERS = 64
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]+")


class _LimitedReader:
    """The body of one request on a kept-alive connection: ``length`` bytes."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.left = length

    @property
    def complete(self) -> bool:
        """Whether the whole body has been read."""
        return self.left == 0

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes of the body (all that is left if negative).

        Raises:
            BadBody: The connection ended before the body did.
        """
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data: bytes = self._rfile.read(size)
        if len(data) < size:
            self.left = -1
            msg = "the body ended before its Content-Length"
            raise BadBody(msg)
        self.left -= len(data)
        return data


class _ChunkedReader:
    """A ``Transfer-Encoding: chunked`` body, decoded; malformed framing is a :class:`BadBody`."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0
        self.done = False
        self.broken = False

    @property
    def complete(self) -> bool:
        """Whether the whole body, last chunk and trailers included, has been read."""
        return self.done and not self.broken

    def _fail(self, msg: str) -> BadBody:
        self.broken = True
        return BadBody(msg)

    def _line(self) -> bytes:
        line: bytes = self._rfile.readline(_MAX_LINE + 1)
        if not line.endswith(b"\r\n"):
            what = "ends early" if len(line) <= _MAX_LINE else "has a line too long"
            raise self._fail(f"the chunked body {what}")
        return line[:-2]

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes of the decoded body.

        Raises:
            BadBody: The chunked framing is malformed, or the body ends early.
        """
        if self.done or self.broken:
            return b""
        if self._left == 0:
            size_text = self._line().split(b";", 1)[0].rstrip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise self._fail(f"a chunk size is not 1-16 hex digits: {size_text[:40]!r}")
            self._left = int(size_text, 16)
            if self._left == 0:
                for _ in range(_MAX_TRAILERS):
                    if not self._line():
                        self.done = True
                        return b""
                raise self._fail(f"the chunked body has more than {_MAX_TRAILERS} trailers")
        size = self._left if size < 0 else min(size, self._left)
        data: bytes = self._rfile.read(size)
        if len(data) < size:
            raise self._fail("the chunked body ends inside a chunk")
        self._left -= len(data)
        if self._left == 0 and self._rfile.read(2) != b"\r\n":
            raise self._fail("a chunk does not end with CRLF")
        return data


class _FramingError(Exception):
    """The request's body framing headers are invalid: answer ``status`` and close."""

    def __init__(self, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.status = status


def content_length(values: Sequence[str]) -> int | None:
    """Return the body length that ``Content-Length`` header values give (None: absent).

    Each value is digits only (RFC 9110: ``1*DIGIT``; ``+92``, ``9_2``, `` 92x``
    are not lengths); repeated headers, or a comma-separated list, must agree.

    Raises:
        _FramingError: A value is not a length, or the values differ.
    """
    lengths: set[int] = set()
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if not _DIGITS.fullmatch(item):
                msg = f"Content-Length {item[:40]!r} is not a number of bytes"
                raise _FramingError(msg)
            lengths.add(int(item))
    if len(lengths) > 1:
        msg = "conflicting Content-Length headers"
        raise _FramingError(msg)
    return lengths.pop() if lengths else None


class OtlpHttpServer(ThreadingHTTPServer):
    """The OTLP/HTTP port of ``cvtrace view``: ``POST /v1/traces`` and nothing else.

    Args:
        address: ``(host, port)``; port 0 picks a free one.
        store: Where the spans go.
        token: The bearer token required, if any.
        allowed_hosts: Host names answered; others get 421 (``None``: any).
        limit: The largest body, as sent and after decompression.
        slots: Bounds the requests decoded at once, shared with the viewer's
            other receivers (default: a bound of this server's own).
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        store: SpanStore,
        *,
        token: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        limit: int = 64 * 1024 * 1024,
        slots: DecodeSlots | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.store = store
        self.token = token
        self.allowed_hosts = allowed_hosts
        self.limit = limit
        self.slots = slots if slots is not None else DecodeSlots()
        super().__init__(address, _OtlpHandler)


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cvtrace-otlp"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # status, headers and body in one send (flushed after each request)
    timeout = 120  # an idle kept-alive connection is closed after this
    server: OtlpHttpServer

    def _body(self) -> tuple[_LimitedReader | _ChunkedReader, int | None]:
        """Return the body's reader and its declared length.

        Raises:
            _FramingError: The framing headers are invalid.
        """
        headers = self.headers
        length = content_length(headers.get_all("Content-Length") or [])
        codings = headers.get_all("Transfer-Encoding")
        if codings is None:
            return _LimitedReader(self.rfile, length or 0), length
        if length is not None:
            msg = "both Content-Length and Transfer-Encoding"
            raise _FramingError(msg)
        coding = ",".join(codings).strip(" \t").lower()
        if coding != "chunked":
            msg = f"unsupported Transfer-Encoding {coding[:40]!r}; send chunked or none"
            raise _FramingError(msg, 501)  # RFC 9112, 6.1: a coding not understood
        return _ChunkedReader(self.rfile), None

    def do_POST(self) -> None:
        """Answer ``POST /v1/traces``."""
        server = self.server
        headers = self.headers
        try:
            stream, length = self._body()
        except _FramingError as exc:
            self._answer(Reply(exc.status, "text/plain", f"{exc}\n".encode(), {}), None)
            return
        if self.path.split("?", 1)[0] != "/v1/traces":
            self._answer(Reply(404, "text/plain", b"not found: POST /v1/traces\n", {}), stream)
            return
        mimetype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        try:
            reply = export_traces(
                server.store,
                mimetype=mimetype,
                content_encoding=headers.get("Content-Encoding"),
                content_length=length,
                authorization=headers.get("Authorization"),
                host=headers.get("Host") or "",
                stream=stream,
                token=server.token,
                allowed_hosts=server.allowed_hosts,
                limit=server.limit,
                slots=server.slots,
            )
        except Exception:
            logger.exception("the OTLP receiver failed")
            reply = Reply(500, "text/plain", b"internal error\n", {})
        self._answer(reply, stream)

    def _answer(self, reply: Reply, stream: _LimitedReader | _ChunkedReader | None) -> None:
        # the reason phrase as werkzeug (which served this port before) writes it
        self.send_response(reply.status, HTTPStatus(reply.status).phrase.upper())
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if stream is None or not stream.complete:
            # a body left unread or broken: the connection cannot carry another request
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
