"""OTLP/gRPC trace receiver (``TraceService/Export``), same storage path as HTTP.

gRPC itself handles compression; the method takes the request's bytes (no
deserializer), decodes them, refuses undecodable ones with ``INVALID_ARGUMENT``,
and hands both the message and the bytes to
:meth:`cvtrace.store.SpanStore.write_request`, as the HTTP receiver does: spans
are stored as sent, and invalid spans are refused the same way and reported in
``partial_success``. With a token, calls need the metadata ``authorization:
Bearer TOKEN``.

Memory is bounded as for HTTP: decoding and storing take one of the viewer's
shared :class:`~cvtrace.viewer.receiver.DecodeSlots` (``UNAVAILABLE``, which
exporters retry, when none is free in time). gRPC reads a call's message only
when one of the ``workers`` threads runs it, so at most ``workers`` messages are
in memory; calls beyond wait, held back by HTTP/2 flow control. (No
``maximum_concurrent_rpcs``: its ``RESOURCE_EXHAUSTED`` carries no ``RetryInfo``,
and exporters drop the batch for it.)
"""

from __future__ import annotations

import logging
import socket
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cvtrace.store import SpanStore, StoreFullError, StoreReadOnlyError
from cvtrace.viewer.auth import header_authorized
from cvtrace.viewer.receiver import DecodeSlots, export_response, store_request

logger = logging.getLogger(__name__)


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Stores the spans of each Export call."""

    def __init__(self, store: SpanStore, token: str | None, slots: DecodeSlots) -> None:
        self._store = store
        self._token = token
        self._slots = slots

    def Export(
        self, request: ExportTraceServiceRequest | bytes, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        """Store one request's valid spans (given decoded, or as its bytes)."""
        if self._token is not None:
            metadata = dict(context.invocation_metadata())
            authorization = metadata.get("authorization")
            if not header_authorized(
                self._token, authorization if isinstance(authorization, str) else None
            ):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        with self._slots.hold() as had_slot:
            if not had_slot:
                context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"{self._slots.size} requests are being decoded; retry later",
                )
            return self._store_message(request, context)

    def _store_message(
        self, request: ExportTraceServiceRequest | bytes, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        encoded: bytes | None = None
        if isinstance(request, bytes):
            encoded = request
            try:
                message = ExportTraceServiceRequest.FromString(encoded)
            except Exception as exc:  # DecodeError, or anything upb raises on garbage
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the message is not an ExportTraceServiceRequest: {exc}",
                )
                raise  # context.abort raises: this line only informs type checkers
        else:
            message = request
        try:
            result = store_request(self._store, message, encoded)
        except StoreFullError as exc:  # the store logs it, once
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except StoreReadOnlyError as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except sqlite3.OperationalError as exc:
            logger.warning("the span store is busy: %s", exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, "the span store is busy")
        return export_response(result)


def start_grpc_server(
    store: SpanStore,
    host: str,
    port: int,
    *,
    token: str | None = None,
    max_message_bytes: int = 64 * 1024 * 1024,
    workers: int = 4,
    slots: DecodeSlots | None = None,
) -> tuple[grpc.Server, int]:
    """Start the gRPC receiver on ``host:port`` (0 picks a free port).

    ``slots`` bounds the requests decoded at once, shared with the viewer's
    other receivers (default: a bound of this server's own).

    Returns:
        The running server and the port it listens on.

    Raises:
        OSError: The address cannot be bound.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvtrace-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    receiver = TraceReceiver(store, token, slots if slots is not None else DecodeSlots())
    export: grpc.RpcMethodHandler[bytes, ExportTraceServiceResponse]
    export = grpc.unary_unary_rpc_method_handler(
        receiver.Export,
        request_deserializer=None,  # the bytes: stored as sent, decoded by Export
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": export}
            ),
        )
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if port:
        _check_bindable(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpcio's answer to a port it cannot bind (older ones return 0)
        bound = 0
    if bound == 0:
        msg = f"cannot listen for OTLP/gRPC on {address}"
        raise OSError(msg)
    server.start()
    return server, bound


def _check_bindable(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go: grpcio says only "failed to bind", this says why.

    Raises:
        OSError: with the system's reason (``errno``), e.g. the address is in use.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpcio binds
        probe.bind((host.strip("[]"), port))
