"""A lean OTLP/HTTP protobuf exporter for destinations with their own settings.

Every OTLP/HTTP destination (``otlp``, ``jaeger``, ``newrelic``) goes through this
class. It sends exactly the headers it is given: the SDK's exporter always merges
``OTEL_EXPORTER_OTLP_HEADERS`` in, which would hand a collector's credentials to
Jaeger or New Relic. Encoding, splitting and retries are
:class:`._otlp_transport.OtlpTransportExporter`'s; retryable here are 429, 502, 503,
504 and connection errors, and ``Retry-After`` is honoured.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping

import requests

from ._otlp_transport import Attempt, OtlpTransportExporter

COMPRESSIONS = ("none", "gzip", "deflate")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class OtlpHttpSpanExporter(OtlpTransportExporter):
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
        super().__init__(timeout_s=timeout_s, max_request_bytes=max_request_bytes)
        self.endpoint = endpoint
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

    def _prepare(self, body: bytes) -> bytes:
        if self._compression == "gzip":
            return gzip.compress(body, compresslevel=6)
        if self._compression == "deflate":
            return zlib.compress(body)
        return body

    def _attempt(self, data: bytes, timeout_s: float) -> Attempt:
        try:
            response = self._session.post(self.endpoint, data=data, timeout=timeout_s)
        except requests.RequestException as error:
            return Attempt(ok=False, retryable=True, reason=str(error))
        status = response.status_code
        if 200 <= status < 300:
            return Attempt(ok=True)
        return Attempt(
            ok=False,
            retryable=status in RETRYABLE_STATUS,
            reason=f"{status} {response.reason}",
            retry_after_s=_retry_after_s(response.headers.get("Retry-After")),
        )

    def _close(self) -> None:
        self._session.close()


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Authenticate nothing: headers carry any credentials."""
    return request


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
