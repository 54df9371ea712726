"""A discarding OTLP/HTTP receiver that counts spans, per URL path, in its own process.

``python -m bench.receiver`` prints ``port N`` once listening. ``POST <any path>``
decodes the ``ExportTraceServiceRequest`` (plain or gzip), counts its spans under the
path and answers 200 with an empty ``ExportTraceServiceResponse``; ``GET /counts``
answers the counts as JSON. Each benchmark variant exports to its own path
(``/<variant>/v1/traces``), so one receiver tells them apart. With ``--grpc`` it also
takes OTLP/gRPC (plaintext) on a second port, counted under ``grpc``, and prints
``port N grpc M``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: dict[str, int] = {}
        self.requests: dict[str, int] = {}

    def add(self, path: str, spans: int) -> None:
        with self.lock:
            self.spans[path] = self.spans.get(path, 0) + spans
            self.requests[path] = self.requests.get(path, 0) + 1


COUNTS = _Counts()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(
            len(scope_spans.spans)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
        )
        COUNTS.add(self.path, spans)
        self._answer(200, _EMPTY_RESPONSE, "application/x-protobuf")

    def do_GET(self) -> None:
        with COUNTS.lock:
            body = json.dumps({"spans": COUNTS.spans, "requests": COUNTS.requests}).encode()
        self._answer(200, body, "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


def _start_grpc() -> int:
    """Serve OTLP/gRPC's Export on a free port, counting spans under ``grpc``; return it."""
    from concurrent import futures

    import grpc

    def export(request: bytes, _context: object) -> bytes:
        message = ExportTraceServiceRequest.FromString(request)
        COUNTS.add(
            "grpc",
            sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans),
        )
        return _EMPTY_RESPONSE

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},  # raw bytes both ways
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _GRPC_SERVERS.append(server)
    return port


_GRPC_SERVERS: list[object] = []


def main() -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--grpc", action="store_true", help="also take OTLP/gRPC")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    grpc_part = f" grpc {_start_grpc()}" if args.grpc else ""
    sys.stdout.write(f"port {server.server_port}{grpc_part}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
