"""``otlp``: to an OpenTelemetry Collector (or any OTLP endpoint), per the standard variables.

The standard variables keep the meaning the OpenTelemetry Python SDK gives them:
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the full URL) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
(a base URL, ``/v1/traces`` appended for HTTP); ``_PROTOCOL`` (``http/protobuf``, the
default, or ``grpc``); ``_HEADERS``; ``_COMPRESSION`` (``gzip``, ``deflate``, ``none``);
``_TIMEOUT`` (seconds); ``_CERTIFICATE``, ``_CLIENT_KEY``, ``_CLIENT_CERTIFICATE``; and
``_INSECURE`` for gRPC. Each has a ``OTEL_EXPORTER_OTLP_TRACES_*`` form that wins.

OTLP/HTTP goes through cvtrace's own exporter and encoder. OTLP/gRPC uses the SDK's
exporter with cvtrace's encoder; its log line per failed batch is cut down to one
per message per :data:`QUIET_INTERVAL_S`, as cvtrace's processor reports outages
itself when they start and end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.re import parse_env_headers

from ..exceptions import CvtraceConfigError
from ..otlp.encoding import SpanEncoder
from ._otlp_http import COMPRESSIONS, OtlpHttpSpanExporter

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_TIMEOUT_S = 10.0
QUIET_INTERVAL_S = 300.0
SDK_EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.grpc.exporter",)


def setting(environ: Mapping[str, str], name: str) -> tuple[str, str | None]:
    """Return (variable, value) of ``OTEL_EXPORTER_OTLP_TRACES_<name>``, else the generic one."""
    for variable in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return f"OTEL_EXPORTER_OTLP_{name}", None


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    """The OTLP protocol for traces from the standard variables (default http/protobuf)."""
    env = os.environ if environ is None else environ
    variable, raw = setting(env, "PROTOCOL")
    if raw is None:
        return "http/protobuf"
    if raw.lower() not in PROTOCOLS:
        msg = (
            f"{variable}: {raw!r} is not supported by the Python OTLP exporters; "
            f"use {' or '.join(PROTOCOLS)}"
        )
        raise CvtraceConfigError(msg)
    return raw.lower()


def create_otlp_exporter(environ: Mapping[str, str] | None = None) -> SpanExporter:
    """Return the OTLP span exporter the standard variables describe."""
    env = os.environ if environ is None else environ
    if otlp_protocol(env) == "grpc":
        quiet_sdk_exporter_logs()
        return GrpcOtlpSpanExporter()
    return OtlpHttpSpanExporter(
        _http_endpoint(env),
        _headers(env),
        compression=_compression(env),
        timeout_s=_timeout_s(env),
        verify=setting(env, "CERTIFICATE")[1] or True,
        client_cert=_client_cert(env),
    )


def _http_endpoint(env: Mapping[str, str]) -> str:
    specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_HTTP_ENDPOINT
    return f"{base.removesuffix('/')}/v1/traces"


def _headers(env: Mapping[str, str]) -> dict[str, str]:
    _, raw = setting(env, "HEADERS")
    return dict(parse_env_headers(raw or "", liberal=True))


def _compression(env: Mapping[str, str]) -> str:
    variable, raw = setting(env, "COMPRESSION")
    compression = (raw or "none").lower()
    if compression not in COMPRESSIONS:
        msg = f"{variable}: unknown compression {raw!r}; expected one of {', '.join(COMPRESSIONS)}"
        raise CvtraceConfigError(msg)
    return compression


def _timeout_s(env: Mapping[str, str]) -> float:
    variable, raw = setting(env, "TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        timeout_s = float(raw)
    except ValueError:
        timeout_s = 0.0
    if timeout_s <= 0:
        msg = f"{variable}: {raw!r} is not a number of seconds above zero; use for example 10"
        raise CvtraceConfigError(msg)
    return timeout_s


def _client_cert(env: Mapping[str, str]) -> str | tuple[str, str] | None:
    certificate = setting(env, "CLIENT_CERTIFICATE")[1]
    key = setting(env, "CLIENT_KEY")[1]
    if certificate and key:
        return (certificate, key)
    return certificate


class GrpcOtlpSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC exporter, encoding with :class:`SpanEncoder`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cvtrace_encoder = SpanEncoder()

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(self._cvtrace_encoder.encode(data))


class RepeatedRecordFilter(logging.Filter):
    """Let one record per message template through per ``interval_s``."""

    def __init__(self, interval_s: float = QUIET_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last_seen: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is the first of its kind in the interval."""
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last_seen.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last_seen[key] = now
        return True


_FILTER = RepeatedRecordFilter()


def quiet_sdk_exporter_logs() -> None:
    """Install the repeated-record filter on the SDK exporters' loggers (once)."""
    for name in SDK_EXPORTER_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if _FILTER not in sdk_logger.filters:
            sdk_logger.addFilter(_FILTER)
