"""``otlp``: to an OpenTelemetry Collector (or any OTLP endpoint), per the standard variables.

The OpenTelemetry SDK's own OTLP exporters do the work, so every standard variable
keeps its meaning: ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT``, ``_PROTOCOL`` (``grpc``
or ``http/protobuf``, the default), ``_HEADERS``, ``_COMPRESSION``, ``_TIMEOUT``,
``_CERTIFICATE``, ``_CLIENT_KEY``, ``_CLIENT_CERTIFICATE`` and ``_INSECURE``.

Those exporters log a line per failed batch; while a collector is down that is a line
every few seconds. cvtrace's processor logs the outage when it starts and when it
ends, so the SDK exporters' loggers get a filter that lets one line through per
message per :data:`QUIET_INTERVAL_S`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

from opentelemetry.sdk.trace.export import SpanExporter

from ..exceptions import CvtraceConfigError

PROTOCOLS = ("http/protobuf", "grpc")
QUIET_INTERVAL_S = 300.0
SDK_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.common.http",
)


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    """The OTLP protocol for traces from the standard variables (default http/protobuf)."""
    env = os.environ if environ is None else environ
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        protocol = raw.lower()
        if protocol not in PROTOCOLS:
            msg = (
                f"{variable}: {raw!r} is not supported by the Python OTLP exporters; "
                f"use {' or '.join(PROTOCOLS)}"
            )
            raise CvtraceConfigError(msg)
        return protocol
    return "http/protobuf"


def create_otlp_exporter(environ: Mapping[str, str] | None = None) -> SpanExporter:
    """Return the SDK's OTLP span exporter for the configured protocol."""
    quiet_sdk_exporter_logs()
    if otlp_protocol(environ) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


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
