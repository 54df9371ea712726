"""A lean OTLP/HTTP protobuf exporter for destinations with their own settings.

Every OTLP/HTTP destination (``otlp``, ``jaeger``, ``newrelic``) goes through this
class. It encodes with :class:`cvtrace.otlp.encoding.SpanEncoder` (several times
cheaper than the SDK's encoder, on a thread that shares the GIL with requests), and
sends exactly the headers it is given: the SDK's exporter always merges
``OTEL_EXPORTER_OTLP_HEADERS`` in, which would hand a collector's credentials to
Jaeger or New Relic. It retries what the OTLP spec calls
retryable (429, 502, 503, 504, connection errors) with exponential backoff inside
the export timeout, honours ``Retry-After``, stops retrying at shutdown, and splits a
batch whose encoded request would exceed ``max_request_bytes``.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
import zlib
from collections.abc import Mapping, Sequence

import requests
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..otlp.encoding import SpanEncoder

COMPRESSIONS = ("none", "gzip", "deflate")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_MAX_BACKOFF_S = 32.0


class OtlpHttpSpanExporter(SpanExporter):
    """Send spans as OTLP/HTTP protobuf to one endpoint.

    Args:
        endpoint: the full URL, ``/v1/traces`` included.
        headers: every header to send besides the content headers.
        compression: ``none``, ``gzip`` or ``deflate``.
        timeout_s: the time budget of one export, retries included.
        max_request_bytes: the largest encoded request (before compression); a larger
            batch is split. ``None`` sends any size.
        verify: TLS verification: ``True``, ``False`` or a CA bundle's path.
        client_cert: a client certificate file, or (certificate, key) files.
    """

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        *,
        compression: str = "none",
        timeout_s: float = 10.0,
        max_request_bytes: int | None = None,
        verify: bool | str = True,
        client_cert: str | tuple[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._encoder = SpanEncoder()
        self._session = requests.Session()
        self._session.verify = verify
        self._session.cert = client_cert
        # Any auth set (here none) spares requests a read of ~/.netrc on every POST.
        self._session.auth = _no_auth
        self._session.headers.update({"Content-Type": "application/x-protobuf"})
        if compression != "none":
            self._session.headers["Content-Encoding"] = compression
        self._session.headers.update(headers or {})
        self._compression = compression
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
        """Stop retrying and close the connection pool."""
        self._stopping.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True

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
        if self._compression == "gzip":
            data = gzip.compress(body, compresslevel=6)
        elif self._compression == "deflate":
            data = zlib.compress(body)
        else:
            data = body
        for attempt in range(64):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                return False
            try:
                response = self._session.post(self.endpoint, data=data, timeout=remaining)
            except requests.RequestException as error:
                status, reason, retry_after = None, str(error), None
            else:
                if 200 <= response.status_code < 300:
                    return True
                status, reason = response.status_code, response.reason
                retry_after = _retry_after_s(response.headers.get("Retry-After"))
            self.last_error = f"{status} {reason}" if status is not None else reason
            if status is not None and status not in RETRYABLE_STATUS:
                return False
            backoff = retry_after if retry_after is not None else _backoff_s(attempt)
            if backoff >= deadline - time.monotonic():
                return False
            if self._stopping.wait(backoff):
                return False
        return False


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Authenticate nothing: headers carry any credentials."""
    return request


def _backoff_s(attempt: int) -> float:
    """Exponential backoff with jitter: about 1, 2, 4 ... seconds."""
    return float(min(2**attempt, _MAX_BACKOFF_S) * random.uniform(0.8, 1.2))


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
