"""``otlp``: to an OpenTelemetry Collector (or any OTLP endpoint), per the standard variables.

The standard variables keep the meaning the OpenTelemetry Python SDK gives them:
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the full URL) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
(a base URL, ``/v1/traces`` appended for HTTP); ``_PROTOCOL`` (``http/protobuf``, the
default, or ``grpc``); ``_HEADERS``; ``_COMPRESSION`` (``gzip``, ``deflate``, ``none``);
``_TIMEOUT`` (seconds); ``_CERTIFICATE``, ``_CLIENT_KEY``, ``_CLIENT_CERTIFICATE``; and
``_INSECURE`` for gRPC. Each has a ``OTEL_EXPORTER_OTLP_TRACES_*`` form that wins.

Both protocols go through cvtrace's own exporters (:mod:`._otlp_http`,
:mod:`._otlp_grpc`) and encoder. For gRPC, as in the SDK, an ``https://`` endpoint
means TLS and ``http://`` plaintext; an endpoint without a scheme uses TLS unless
``_INSECURE`` is true.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.re import parse_env_headers

from ..config import parse_bool
from ..exceptions import CvtraceConfigError
from ._otlp_http import COMPRESSIONS, OtlpHttpSpanExporter

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_TIMEOUT_S = 10.0


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
    """Return the OTLP span exporter the standard variables describe.

    Raises:
        CvtraceConfigError: a variable's value is unusable; the message names it.
    """
    env = os.environ if environ is None else environ
    if otlp_protocol(env) == "grpc":
        from ._otlp_grpc import OtlpGrpcSpanExporter, read_credentials  # grpc: ~0.1 s to import

        target, secure = _grpc_target(env)
        credentials = (
            read_credentials(
                setting(env, "CERTIFICATE"),
                setting(env, "CLIENT_KEY"),
                setting(env, "CLIENT_CERTIFICATE"),
            )
            if secure
            else None
        )
        return OtlpGrpcSpanExporter(
            target,
            credentials,
            _headers(env),
            compression=_compression(env),
            timeout_s=_timeout_s(env),
        )
    return OtlpHttpSpanExporter(
        _http_endpoint(env),
        _headers(env),
        compression=_compression(env),
        timeout_s=_timeout_s(env),
        verify=setting(env, "CERTIFICATE")[1] or True,
        client_cert=_client_cert(env),
    )


def _grpc_target(env: Mapping[str, str]) -> tuple[str, bool]:
    """The ``host:port`` to dial, and whether over TLS."""
    variable, endpoint = setting(env, "ENDPOINT")
    endpoint = endpoint or DEFAULT_GRPC_ENDPOINT
    scheme, target = "", endpoint
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        scheme, target = parts.scheme.lower(), parts.netloc
    if not target:
        msg = f"{variable}: {endpoint!r} has no host; use for example http://collector:4317"
        raise CvtraceConfigError(msg)
    insecure_variable, insecure = setting(env, "INSECURE")
    if scheme == "https":
        return target, True
    if insecure is not None:
        return target, not parse_bool(insecure_variable, insecure)
    return target, scheme != "http"


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
