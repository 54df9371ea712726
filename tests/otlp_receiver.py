"""Minimal real OTLP receivers for the tests: HTTP and gRPC on 127.0.0.1.

They decode every request into ``ExportTraceServiceRequest`` and keep it with its
headers, so tests assert on what actually crossed the wire. The HTTP one can be told
to answer with another status or to be slow, to play a failing collector.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import grpc
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class Received:
    """One request as received."""

    path: str
    headers: dict[str, str]
    body_bytes: int
    """Size of the body on the wire (compressed, if it was)."""
    request: trace_service_pb2.ExportTraceServiceRequest


@dataclass
class _Receiver:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        """Every span received, in arrival order."""
        with self.lock:
            return [
                span
                for item in self.received
                for resource_spans in item.request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]

    def resources(self) -> list[dict[str, Any]]:
        """The resource attributes of every received ResourceSpans."""
        with self.lock:
            return [
                {kv.key: _value(kv.value) for kv in rs.resource.attributes}
                for item in self.received
                for rs in item.request.resource_spans
            ]

    def wait_for_spans(self, count: int, timeout_s: float = 10.0) -> list[Span]:
        """Wait until at least ``count`` spans arrived; return them all."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            spans = self.spans()
            if len(spans) >= count:
                return spans
            time.sleep(0.02)
        return self.spans()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(span: Span | Span.Event) -> dict[str, Any]:
    """A span's (or a span event's) attributes as a plain dict."""
    return {kv.key: _value(kv.value) for kv in span.attributes}


class HttpOtlpReceiver(_Receiver):
    """OTLP/HTTP protobuf on ``http://127.0.0.1:<port>/v1/traces``."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        """The status to answer with."""
        self.delay_s = 0.0
        """How long to wait before answering."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay_s)
                if receiver.status != 200:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    data = gzip.decompress(body)
                elif encoding == "deflate":
                    data = zlib.decompress(body)
                else:
                    data = body
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            len(body),
                            request,
                        )
                    )
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.endpoint = f"{self.base_url}/v1/traces"

    def __enter__(self) -> HttpOtlpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcOtlpReceiver(_Receiver):
    """OTLP/gRPC on ``127.0.0.1:<port>``, plaintext unless given TLS credentials.

    It can be told to fail the next requests with a status code, optionally saying
    when to retry (a ``google.rpc.RetryInfo``), to play a failing collector.
    """

    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        super().__init__()
        self.fail_next = 0
        """How many of the next requests to fail."""
        self.fail_code = grpc.StatusCode.UNAVAILABLE
        """The status code they fail with."""
        self.retry_delay_s: float | None = None
        """The delay to ask for in a RetryInfo, if any."""
        self.attempts = 0
        """Requests received, failed ones included."""
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(
                self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
            ) -> trace_service_pb2.ExportTraceServiceResponse:
                headers = dict(context.invocation_metadata())
                with receiver.lock:
                    receiver.attempts += 1
                    fail = receiver.fail_next > 0
                    receiver.fail_next -= fail
                    if not fail:
                        receiver.received.append(
                            Received("Export", headers, request.ByteSize(), request)
                        )
                if fail:
                    if receiver.retry_delay_s is not None:
                        info = RetryInfo()
                        info.retry_delay.FromNanoseconds(int(receiver.retry_delay_s * 1e9))
                        context.set_trailing_metadata(
                            [("google.rpc.retryinfo-bin", info.SerializeToString())]
                        )
                    context.abort(receiver.fail_code, "told to fail")
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        if credentials is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
            self.endpoint = f"http://127.0.0.1:{self.port}"
        else:
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
            self.endpoint = f"https://localhost:{self.port}"

    def __enter__(self) -> GrpcOtlpReceiver:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop(grace=None)
