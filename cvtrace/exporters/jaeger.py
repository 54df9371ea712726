"""``jaeger``: OTLP straight to a Jaeger, which ingests OTLP on 4317 (gRPC) and 4318 (HTTP).

The old Jaeger-protocol exporter packages are gone; Jaeger speaks OTLP natively.
``CVTRACE_JAEGER_ENDPOINT`` is ``http://host:4318`` (OTLP/HTTP, ``/v1/traces`` is
appended unless present) or ``grpc://host:4317`` (OTLP/gRPC, plaintext). No
``OTEL_EXPORTER_OTLP_*`` header is sent to Jaeger: those belong to the ``otlp`` exporter.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

from ..exceptions import CvtraceConfigError
from ._otlp_grpc import OtlpGrpcSpanExporter
from ._otlp_http import OtlpHttpSpanExporter

TRACES_PATH = "/v1/traces"


class JaegerSpanExporter(OtlpHttpSpanExporter):
    """OTLP/HTTP protobuf to a Jaeger collector."""


class JaegerGrpcSpanExporter(OtlpGrpcSpanExporter):
    """OTLP/gRPC to a Jaeger collector (plaintext)."""


def create_jaeger_exporter(endpoint: str, timeout_s: float = 10.0) -> SpanExporter:
    """Return an exporter to Jaeger at ``endpoint`` (``CVTRACE_JAEGER_ENDPOINT``).

    Raises:
        CvtraceConfigError: the endpoint is not an http(s):// or grpc:// URL with a host.
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https", "grpc") or not parts.hostname:
        msg = (
            f"CVTRACE_JAEGER_ENDPOINT: {endpoint!r} is not an OTLP endpoint; "
            "use http://jaeger:4318 (OTLP/HTTP) or grpc://jaeger:4317 (OTLP/gRPC)"
        )
        raise CvtraceConfigError(msg)
    if parts.scheme == "grpc":
        return JaegerGrpcSpanExporter(parts.netloc, timeout_s=timeout_s)
    path = parts.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    url = parts._replace(path=path).geturl()
    return JaegerSpanExporter(url, timeout_s=timeout_s)
