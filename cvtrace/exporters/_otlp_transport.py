"""What cvtrace's two OTLP transports share: encoding, splitting, retries.

:class:`OtlpTransportExporter` encodes a batch with
:class:`cvtrace.otlp.encoding.SpanEncoder` (several times cheaper than the SDK's
encoder, on a thread that shares the GIL with requests), splits it so that no request
exceeds ``max_request_bytes``, and sends each request with retries: what the OTLP
spec calls retryable is retried with exponential backoff inside the export timeout,
honouring the server's delay when it gives one; shutdown stops retrying at once.
The transports (:mod:`._otlp_http`, :mod:`._otlp_grpc`) make one attempt each.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..otlp.encoding import SpanEncoder

_MAX_BACKOFF_S = 32.0


class Attempt(NamedTuple):
    """How one attempt to send a request went."""

    ok: bool
    retryable: bool = False
    """Whether the OTLP spec says to try again (a 503, UNAVAILABLE, a refused connection)."""
    reason: str = ""
    """Why it failed, for the outage log line."""
    retry_after_s: float | None = None
    """The delay the server asked for, if it asked."""


class OtlpTransportExporter(SpanExporter):
    """Send spans as OTLP protobuf requests, retrying what is retryable.

    Args:
        timeout_s: the time budget of one export, retries included.
        max_request_bytes: the largest encoded request (before compression); a larger
            batch is split. ``None`` sends any size.
    """

    def __init__(self, *, timeout_s: float, max_request_bytes: int | None) -> None:
        self._encoder = SpanEncoder()
        self._timeout_s = timeout_s
        self._max_request_bytes = max_request_bytes
        self._stopping = threading.Event()
        self.last_error = ""
        """Why the last failed request failed, for the outage log line."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode and send ``spans``, split into requests that fit the size limit."""
        if self._stopping.is_set():
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        deadline = time.monotonic() + self._timeout_s
        ok = True
        for body in self._encode(list(spans)):
            ok = self._send(body, deadline) and ok
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Stop retrying and release the connection."""
        self._stopping.set()
        self._close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True

    def _attempt(self, data: bytes, timeout_s: float) -> Attempt:
        """Send one request; never raise."""
        raise NotImplementedError

    def _prepare(self, body: bytes) -> bytes:
        """What goes on the wire for an encoded request (compressed, for HTTP)."""
        return body

    def _close(self) -> None:
        """Release the connection (aborting a request in flight, where possible)."""

    def _encode(self, spans: list[ReadableSpan]) -> list[bytes]:
        body = self._encoder.encode(spans)
        limit = self._max_request_bytes
        if limit is None or len(body) <= limit:
            return [body]
        if len(spans) == 1:
            self.last_error = (
                f"span {spans[0].name!r} is {len(body)} bytes encoded, over the "
                f"{limit}-byte request limit"
            )
            return [b""]  # sending nothing fails the export, so the loss is counted
        middle = len(spans) // 2
        return self._encode(spans[:middle]) + self._encode(spans[middle:])

    def _send(self, body: bytes, deadline: float) -> bool:
        if not body:
            return False
        data = self._prepare(body)
        for attempt in range(64):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                return False
            result = self._attempt(data, remaining)
            if result.ok:
                return True
            self.last_error = result.reason
            if not result.retryable:
                return False
            backoff = result.retry_after_s
            if backoff is None:
                backoff = _backoff_s(attempt)
            if backoff >= deadline - time.monotonic():
                return False
            if self._stopping.wait(backoff):
                return False
        return False


def _backoff_s(attempt: int) -> float:
    """Exponential backoff with jitter: about 1, 2, 4 ... seconds."""
    return float(min(2**attempt, _MAX_BACKOFF_S) * random.uniform(0.8, 1.2))
