"""An OTLP/gRPC exporter on grpc's public API, for destinations with their own settings.

The ``otlp`` exporter (with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``) and the ``jaeger``
exporter (with a ``grpc://`` endpoint) go through this class. Like its HTTP sibling it
sends exactly the metadata it is given (the SDK's gRPC exporter falls back to
``OTEL_EXPORTER_OTLP_HEADERS`` when given none, which would hand a collector's
credentials to Jaeger), and it sends cvtrace's encoding as it is: the request is
already serialised, so it goes out as bytes, never parsed into a message again.

The channel is opened on the first export in each process, so a gunicorn master that
initialises tracing before forking never holds a gRPC channel its workers inherit
(gRPC channels do not survive a fork). Retryable are the codes the OTLP spec names,
and ``RESOURCE_EXHAUSTED`` when the server says when to retry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError

from .._version import __version__
from ..exceptions import CvtraceConfigError
from ._otlp_transport import Attempt, OtlpTransportExporter

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
COMPRESSIONS = {
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
#: What an OpenTelemetry Collector accepts by default (``max_recv_msg_size_mib: 4``).
MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 64 * 1024
_CHANNEL_OPTIONS = (
    ("grpc.primary_user_agent", f"cvtrace/{__version__}"),
    # Reconnect within seconds once the collector is back, not after gRPC's
    # default backoff of up to two minutes.
    ("grpc.max_reconnect_backoff_ms", 5000),
)


class OtlpGrpcSpanExporter(OtlpTransportExporter):
    """Send spans as OTLP/gRPC to one endpoint.

    Args:
        target: ``host:port``.
        credentials: TLS credentials; ``None`` for a plaintext channel.
        metadata: every metadata entry to send (lower-case keys).
        compression: ``none``, ``gzip`` or ``deflate``.
        timeout_s: the time budget of one export, retries included.
        max_request_bytes: the largest encoded request; a larger batch is split.
    """

    def __init__(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        compression: str = "none",
        timeout_s: float = 10.0,
        max_request_bytes: int | None = MAX_REQUEST_BYTES,
    ) -> None:
        super().__init__(timeout_s=timeout_s, max_request_bytes=max_request_bytes)
        self.target = target
        self._credentials = credentials
        self._metadata = tuple((key.lower(), value) for key, value in (metadata or {}).items())
        self._compression = COMPRESSIONS[compression]
        self._channel: grpc.Channel | None = None
        self._channel_pid = 0
        self._export: grpc.UnaryUnaryMultiCallable[bytes, bytes] | None = None

    def _attempt(self, data: bytes, timeout_s: float) -> Attempt:
        try:
            self._call()(data, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as error:
            # Raised by the call, the error is also a grpc.Call (code, details, trailers).
            call: grpc.Call = error  # type: ignore[assignment]
            code = call.code()
            retry_after_s = _retry_delay_s(call.trailing_metadata())
            retryable = code in RETRYABLE_CODES or (
                code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after_s is not None
            )
            reason = f"{code.name} {call.details() or ''}".strip()
            return Attempt(False, retryable, reason, retry_after_s)
        return Attempt(ok=True)

    def _call(self) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
        """The Export method on this process's channel, opened on first use."""
        if self._export is None or self._channel_pid != os.getpid():
            if self._credentials is None:
                channel = grpc.insecure_channel(
                    self.target, _CHANNEL_OPTIONS, compression=self._compression
                )
            else:
                channel = grpc.secure_channel(
                    self.target, self._credentials, _CHANNEL_OPTIONS, compression=self._compression
                )
            # No serializer: the request is cvtrace's encoded bytes; the response's
            # partial_success is not read (as over HTTP).
            self._export = channel.unary_unary(EXPORT_METHOD)
            self._channel, self._channel_pid = channel, os.getpid()
        return self._export

    def _close(self) -> None:
        if self._channel is not None and self._channel_pid == os.getpid():
            self._channel.close()  # cancels a request in flight
        self._channel = self._export = None


def _retry_delay_s(trailers: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in the trailing metadata, if any.

    ``RetryInfo`` holds one field, 1, a ``google.protobuf.Duration``: its bytes are
    0x0A, the length (one byte: a Duration is under 128 bytes), and the Duration.
    """
    for key, value in trailers or ():
        if key != "google.rpc.retryinfo-bin" or not isinstance(value, bytes):
            continue
        if len(value) < 2 or value[0] != 0x0A or value[1] >= 0x80:
            return None
        try:
            delay = Duration.FromString(value[2 : 2 + value[1]])
        except DecodeError:
            return None
        return max(delay.seconds + delay.nanos / 1e9, 0.0)
    return None


def read_credentials(
    certificate: tuple[str, str | None],
    client_key: tuple[str, str | None],
    client_certificate: tuple[str, str | None],
) -> grpc.ChannelCredentials:
    """TLS credentials from PEM files, each given as (variable, path or None).

    Raises:
        CvtraceConfigError: a file cannot be read; the message names its variable.
    """
    return grpc.ssl_channel_credentials(
        root_certificates=_read(*certificate),
        private_key=_read(*client_key),
        certificate_chain=_read(*client_certificate),
    )


def _read(variable: str, path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        msg = f"{variable}: cannot read {path!r} ({error.strerror}); give a readable PEM file"
        raise CvtraceConfigError(msg) from None
